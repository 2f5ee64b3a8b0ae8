// The operator scripts' command lines, read the same way by each: flags parsed strictly, a bad
// value refused with a UsageError that main() prints before the usage text, exit 2.
import { parseArgs } from 'node:util';
import type { ParseArgsOptionsConfig } from 'node:util';
import { UsageError, errorMessage } from './errors.ts';

/** `argv` against `options`, positionals allowed; an unknown flag or a missing value is a UsageError. */
export function parseFlags<const O extends ParseArgsOptionsConfig>(argv: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...argv], allowPositionals: true, strict: true, options });
  } catch (error) {
    throw new UsageError(errorMessage(error));
  }
}

/** The flag's value as a number above 0 (a whole one when `integer`); undefined when not given. */
export function positiveFlag(flag: string, raw: string | undefined, integer: boolean): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !(value > 0) || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, got "${raw}"`);
  }
  return value;
}

/** `raw` if it is an http:// or https:// URL; `label` names it in the error (`URL`, `--admin`). */
export function httpUrl(label: string, raw: string): string {
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) {
    throw new UsageError(`${label} must be an http:// or https:// URL, got "${raw}"`);
  }
  return raw;
}

/**
 * A script's main(): parses this process's arguments with `parse`, then runs. Bad usage prints
 * `<name>: <why>` and the usage on stderr (exit 2); --help prints the usage on stdout (exit 0).
 * Resolves with the exit code.
 */
export async function runCommand<A>(
  name: string,
  usage: string,
  parse: (argv: readonly string[]) => A | 'help',
  run: (args: A) => Promise<number>,
): Promise<number> {
  let args: A | 'help';
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${name}: ${errorMessage(error)}\n\n${usage}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  return run(args);
}
