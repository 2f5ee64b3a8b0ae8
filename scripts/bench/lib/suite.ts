// What a benchmark suite is, for run.ts to dispatch to. A suite declares its own flags (merged with the
// common ones by run.ts) and runs with the parsed values.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';

export interface CommonOptions {
  rounds: number;
  durationS: number;
  quick: boolean;
  /** Names to run, or undefined for every contender of the suite. */
  only: string[] | undefined;
  pin: boolean;
  /** Force the Node load generator even when wrk is installed. */
  nodeLoad: boolean;
  repoRoot: string;
  outDir: string;
}

export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Suite {
  name: string;
  description: string;
  /** Extra flags understood by this suite. */
  options: ParseArgsOptionsConfig;
  /** Lines for --help describing the extra flags. */
  help: string[];
  /** Names accepted by --only. */
  contenders: string[];
  /** Runs the suite; resolves with the path of the JSON file written. */
  run(common: CommonOptions, flags: FlagValues): Promise<string>;
}

/**
 * Writes a suite's results as `<outDir>/<suite>-<UTC time>.json`, headed by what every result file
 * says (the suite, when, which Node); returns the file's path.
 */
export function writeResults(outDir: string, suite: string, result: Record<string, unknown>): string {
  const at = new Date().toISOString();
  const stamp = at.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${suite}-${stamp}.json`);
  writeFileSync(file, JSON.stringify({ suite, at, node: process.version, ...result }, null, 2) + '\n');
  return file;
}
