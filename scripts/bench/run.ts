// Benchmark entry point: `npm run bench -- [--suite NAME] [flags]`. Runs every suite by default.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsOptionsConfig } from 'node:util';
import { installCleanupHandlers, isStopping } from './lib/proc.ts';
import type { CommonOptions, Suite } from './lib/suite.ts';
import { profilingSuite } from './profiling-suite.ts';
import { proxySuite } from './proxy-suite.ts';
import { hotPathSuite } from './hot-path-suite.ts';
import { instructionsSuite } from './instructions-suite.ts';

const SUITES: Suite[] = [proxySuite, profilingSuite, hotPathSuite, instructionsSuite];

const COMMON: ParseArgsOptionsConfig = {
  suite: { type: 'string' },
  quick: { type: 'boolean', default: false },
  rounds: { type: 'string' },
  duration: { type: 'string' },
  only: { type: 'string' },
  'no-pin': { type: 'boolean', default: false },
  'node-load': { type: 'boolean', default: false },
  out: { type: 'string' },
  list: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

function usage(): string {
  return [
    'usage: npm run bench -- [options]',
    '',
    '  --suite NAME[,NAME] suites to run (default: all): ' + SUITES.map((s) => s.name).join(', '),
    '  --quick             1 round × 2 s per load (instead of 3 rounds × 5 s)',
    '  --rounds N          rounds (default 3; 1 with --quick)',
    '  --duration S        seconds per load per contender per round (default 5; 2 with --quick)',
    '  --only a,b          run only these contenders (see --list)',
    '  --no-pin            do not pin processes to CPUs with taskset',
    '  --node-load         use the Node closed-loop generator even when wrk is installed',
    '  --out DIR           where to write the JSON results (default bench-results/)',
    '  --list              list suites and their contenders',
    '',
    ...SUITES.flatMap((s) => [`${s.name} suite — ${s.description}:`, ...s.help.map((h) => `  ${h}`)]),
  ].join('\n');
}

function positive(name: string, v: string | undefined, dflt: number, integer: boolean): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0) || (integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  }
  return n;
}

async function main(): Promise<number> {
  const options: ParseArgsOptionsConfig = { ...COMMON };
  for (const s of SUITES) Object.assign(options, s.options);
  const { values } = parseArgs({ options, strict: true, allowPositionals: false });
  if (values.help === true) {
    console.log(usage());
    return 0;
  }
  if (values.list === true) {
    for (const s of SUITES) console.log(`${s.name}: ${s.contenders.join(', ')}`);
    return 0;
  }
  const str = (k: string): string | undefined => {
    const v = values[k];
    return typeof v === 'string' ? v : undefined;
  };
  const wanted = str('suite')?.split(',').filter(Boolean);
  const suites = wanted ? SUITES.filter((s) => wanted.includes(s.name)) : SUITES;
  const unknownSuite = wanted?.filter((w) => !SUITES.some((s) => s.name === w)) ?? [];
  if (unknownSuite.length > 0) throw new Error(`unknown suite(s): ${unknownSuite.join(', ')}\n\n${usage()}`);
  const only = str('only')
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const known = new Set(suites.flatMap((s) => s.contenders));
  const unknown = only?.filter((o) => !known.has(o)) ?? [];
  if (unknown.length > 0) {
    throw new Error(`unknown contender(s): ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  }
  const quick = values.quick === true;
  const repoRoot = path.resolve(import.meta.dirname, '..', '..');
  const common: CommonOptions = {
    quick,
    rounds: positive('rounds', str('rounds'), quick ? 1 : 3, true),
    durationS: positive('duration', str('duration'), quick ? 2 : 5, false),
    only,
    pin: values['no-pin'] !== true,
    nodeLoad: values['node-load'] === true,
    repoRoot,
    outDir: path.resolve(str('out') ?? path.join(repoRoot, 'bench-results')),
  };
  installCleanupHandlers();
  for (const suite of suites) {
    const file = await suite.run(common, values);
    console.log(`\nresults: ${path.relative(process.cwd(), file) || file}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(isStopping() ? 130 : 1);
  },
);
