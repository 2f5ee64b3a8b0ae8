// Writes a TypeScript source tree as plain JavaScript, with Node's own type stripping done ahead of
// time: `node scripts/strip-types.ts <srcDir> <outDir>`.
//
// Why: a process started from `.ts` files keeps Node's TypeScript stripper (swc, compiled to
// WebAssembly) in memory for good, about 25 MiB of the proxy's RSS (README.md, "Memory under
// load"). Stripped beforehand, the proxy starts from `.js` and never loads it.
//
// Node's "strip" mode replaces each type annotation by blanks of the same length, and the relative
// `.ts` specifiers become `.js` (the same length too), so every line and column of the output is
// the line and column of the source: stack traces and profile frames name `dist/x.js:L` for
// `src/x.ts:L`. Only the erasable syntax Node runs anyway is accepted (no enums or namespaces);
// anything else stops the build with the file named.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import path from 'node:path';
import { PROXY_BUILD_DIR, PROXY_SOURCE_DIR } from '../proxy/src/launch-settings.ts';

/** A relative module specifier ending in `.ts`, in a static import/export or a dynamic import(). */
const RELATIVE_TS_SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"\n]*?)\.ts\2/g;

export class StripTypesError extends Error {
  readonly code = 'SPANSCOPE_ERR_STRIP_TYPES';
}

// Node 24 marks the function experimental and says so once per process, which would print on
// every `npm start`; the same stripper runs every `.ts` file Node loads, and it is not experimental there.
function stripQuietly(source: string): string {
  // Put back as it was, unbound, so nothing else notices the swap.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const emitWarning = process.emitWarning;
  process.emitWarning = (warning: string | Error, ...rest: unknown[]) => {
    if (!String(warning).includes('stripTypeScriptTypes'))
      Reflect.apply(emitWarning, process, [warning, ...rest]);
  };
  try {
    return stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** One source file's JavaScript: types blanked out, relative `.ts` imports renamed `.js`. */
export function stripSource(source: string, file: string): string {
  let stripped: string;
  try {
    stripped = stripQuietly(source);
  } catch (error) {
    throw new StripTypesError(`${file}: ${(error as Error).message}`, { cause: error });
  }
  return stripped.replace(
    RELATIVE_TS_SPECIFIER,
    (_all, keyword: string, quote: string, specifier: string) => `${keyword}${quote}${specifier}.js${quote}`,
  );
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * Strips every `.ts` file under `srcDir` into `outDir`, keeping the folder layout, and removes any
 * other file there. Returns the relative paths written.
 *
 * A proxy may be starting from `outDir` meanwhile (`npm start` beside a test run): each file is
 * written aside and renamed into place, so a reader sees the old file or the new one, never half.
 */
export function stripTree(srcDir: string, outDir: string): string[] {
  const files = sourceFiles(srcDir);
  if (files.length === 0) throw new StripTypesError(`${srcDir}: no .ts files to strip`);
  const written: string[] = [];
  for (const file of files) {
    const from = path.join(srcDir, file);
    const to = path.join(outDir, file.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(to), { recursive: true });
    const aside = `${to}.${String(process.pid)}.tmp`;
    writeFileSync(aside, stripSource(readFileSync(from, 'utf8'), from));
    renameSync(aside, to);
    written.push(path.relative(outDir, to));
  }
  const wanted = new Set(written);
  for (const entry of readdirSync(outDir, { recursive: true, withFileTypes: true })) {
    const relative = path.relative(outDir, path.join(entry.parentPath, entry.name));
    if (entry.isFile() && !wanted.has(relative)) rmSync(path.join(outDir, relative), { force: true });
  }
  return written;
}

/** The proxy's sources stripped into the build its launchers run (proxy/src/launch-settings.ts). */
export function stripProxy(proxyDir: string): string[] {
  return stripTree(path.join(proxyDir, PROXY_SOURCE_DIR), path.join(proxyDir, PROXY_BUILD_DIR));
}

if (import.meta.main) {
  const [srcDir, outDir] = process.argv.slice(2);
  if (srcDir === undefined || outDir === undefined) {
    process.stderr.write('usage: node scripts/strip-types.ts <srcDir> <outDir>\n');
    process.exit(2);
  }
  try {
    const written = stripTree(srcDir, outDir);
    process.stdout.write(`strip-types: ${String(written.length)} files, ${srcDir} → ${outDir}\n`);
  } catch (error) {
    process.stderr.write(`strip-types: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
