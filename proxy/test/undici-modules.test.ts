import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(new URL('../src/upstream.ts', import.meta.url));
const UPSTREAM = new URL('../src/upstream.ts', import.meta.url).href;

describe("the upstream's undici modules", () => {
  it("are the very Pool and buildConnector undici's index exports", () => {
    const undici = require('undici') as typeof Undici;
    assert.equal(require('undici/lib/dispatcher/pool.js'), undici.Pool);
    assert.equal(require('undici/lib/core/connect.js'), undici.buildConnector);
  });

  it('are all of undici a fresh process loads for them: not its index, fetch or WebSocket', () => {
    const script = `
      await import(${JSON.stringify(UPSTREAM)});
      const { createRequire } = await import('node:module');
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('/undici/'));
      console.log(JSON.stringify(loaded.map((f) => f.slice(f.indexOf('/undici/') + 8))));`;
    const loaded = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }),
    ) as string[];
    assert.ok(loaded.includes('lib/dispatcher/pool.js'), loaded.join(', '));
    assert.deepEqual(
      loaded.filter((f) => f === 'index.js' || f.startsWith('lib/web/') || f.startsWith('lib/mock/')),
      [],
    );
  });
});
