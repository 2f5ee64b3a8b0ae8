// The proxy's sources stripped to JavaScript ahead of time (scripts/strip-types.ts): the same
// lines and columns, imports that resolve, and a proxy that starts and forwards from them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROXY_MALLOC_ENV, PROXY_NODE_FLAGS } from '../../proxy/src/launch-settings.ts';
import { startEchoBackend } from '../../proxy/test/support/echo-backend.ts';
import type { EchoBackend } from '../../proxy/test/support/echo-backend.ts';
import { startProxyProcess } from '../../proxy/test/support/proxy-process.ts';
import type { ProxyProcess } from '../../proxy/test/support/proxy-process.ts';
import { StripTypesError, stripSource, stripTree } from '../strip-types.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const proxySrc = path.join(root, 'proxy', 'src');

describe('stripSource', () => {
  it('blanks types out in place and renames relative .ts imports to .js', () => {
    const source = [
      "import type { A } from './a.ts';",
      "import { b } from '../b.ts';",
      "export { c } from './c.ts';",
      "import './side-effect.ts';",
      "const d = await import('./d.ts');",
      "import pkg from 'pkg.ts';",
      "const text: string = './not-an-import.ts';",
      'function f(x: number, y?: A): number { return x; }',
    ].join('\n');
    const out = stripSource(source, 'example.ts');
    const inLines = source.split('\n');
    const outLines = out.split('\n');
    assert.equal(outLines.length, inLines.length);
    outLines.forEach((line, i) => {
      assert.equal(line.length, inLines[i]?.length, `line ${i + 1} keeps its length: ${line}`);
    });
    assert.match(outLines[0] ?? '', /^\s*$/, 'a type-only import is blanked out');
    assert.equal(outLines[1], "import { b } from '../b.js';");
    assert.equal(outLines[2], "export { c } from './c.js';");
    assert.equal(outLines[3], "import './side-effect.js';");
    assert.equal(outLines[4], "const d = await import('./d.js');");
    assert.equal(outLines[5], "import pkg from 'pkg.ts';", 'a package name is not a relative path');
    assert.equal(outLines[6], "const text         = './not-an-import.ts';", 'a string is not an import');
    assert.equal(outLines[7]?.replace(/\s+/g, ' '), 'function f(x , y ) { return x; }');
  });

  it('keeps a thrown error at the line and column of its source', async () => {
    const source = [
      'interface Options {',
      '  readonly depth: number;',
      '}',
      'export function fail(options: Options): never {',
      '  const message: string = `depth ${String(options.depth)}`;',
      '  throw new Error(message);',
      '}',
    ].join('\n');
    const { fail } = (await import(
      `data:text/javascript,${encodeURIComponent(stripSource(source, 'fail.ts'))}`
    )) as { fail: (options: { depth: number }) => never };
    const stack = (() => {
      try {
        fail({ depth: 1 });
      } catch (error) {
        return (error as Error).stack ?? '';
      }
      return 'fail() returned';
    })();
    const column = (source.split('\n')[5] ?? '').indexOf('new Error') + 1;
    assert.match(stack, new RegExp(`:6:${String(column)}\\)?$`, 'm'), stack);
  });

  it('refuses syntax that needs more than blanking, naming the file', () => {
    assert.throws(
      () => stripSource('enum Color { Red }', 'colors.ts'),
      (error: unknown) => error instanceof StripTypesError && error.message.startsWith('colors.ts: '),
    );
  });
});

describe('the proxy started from its stripped sources', () => {
  // Under node_modules, so the stripped files resolve the proxy's packages as the sources do.
  let outDir: string;
  let written: string[];
  let backend: EchoBackend;
  let proxy: ProxyProcess;

  before(async () => {
    const cache = path.join(root, 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    outDir = mkdtempSync(path.join(cache, 'strip-types-test-'));
    // Left from an earlier build whose source has gone: must not survive this one.
    mkdirSync(path.join(outDir, 'removed'));
    writeFileSync(path.join(outDir, 'removed', 'gone.js'), 'throw new Error("stale");\n');
    written = stripTree(proxySrc, outDir);
    backend = await startEchoBackend();
    proxy = await startProxyProcess(backend.url, PROXY_MALLOC_ENV, {
      argv: [...PROXY_NODE_FLAGS, path.join(outDir, 'main.js')],
    });
  });

  after(async () => {
    await proxy.kill();
    await backend.close();
    rmSync(outDir, { recursive: true, force: true });
  });

  it('writes one .js file per source file, line for line, and nothing else', () => {
    const sources = readdirSync(proxySrc, { recursive: true })
      .map(String)
      .filter((file) => file.endsWith('.ts'))
      .sort();
    assert.deepEqual(
      written,
      sources.map((file) => file.replace(/\.ts$/, '.js')),
    );
    const present = readdirSync(outDir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => path.relative(outDir, path.join(entry.parentPath, entry.name)))
      .sort();
    assert.deepEqual(present, [...written].sort(), 'no stale file, no file written aside');
    for (const file of sources) {
      const source = readFileSync(path.join(proxySrc, file), 'utf8');
      const stripped = readFileSync(path.join(outDir, file.replace(/\.ts$/, '.js')), 'utf8');
      assert.equal(stripped.split('\n').length, source.split('\n').length, file);
      assert.doesNotMatch(stripped, /from\s*'\.{1,2}\/[^']*\.ts'/, `${file} imports no .ts file`);
    }
  });

  it('forwards a request and answers from the stripped files', async () => {
    const res = await fetch(`${proxy.url}/product/7?x=1`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(backend.received.at(-1)?.url, '/product/7?x=1');
    proxy.assertRunning();
  });
});
