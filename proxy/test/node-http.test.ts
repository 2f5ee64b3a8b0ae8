import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const NODE_HTTP = new URL('../src/node-http.ts', import.meta.url).href;

interface Outcome {
  bundledUndiciLoaded: boolean;
  createServer: string;
  webSocket: string;
}

/** A fresh Node process that imports node:http dynamically, as the OTLP exporter does at its first export. */
function importNodeHttp(first: string): Outcome {
  const script = `
    ${first}
    const http = await import('node:http');
    console.log(JSON.stringify({
      bundledUndiciLoaded: process.moduleLoadList.some((m) => m.includes('internal/deps/undici')),
      createServer: typeof http.createServer,
      webSocket: typeof process.getBuiltinModule('node:http').WebSocket,
    }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(out) as Outcome;
}

describe("node:http without Node's bundled undici", () => {
  it('is what an ES module import of node:http costs on this Node: the bundled undici is loaded', () => {
    // If this stops holding on a later Node, proxy/src/node-http.ts can go.
    assert.equal(importNodeHttp('').bundledUndiciLoaded, true);
  });

  it('once the proxy has taken node:http, a later import of it does not load the bundled undici', () => {
    const outcome = importNodeHttp(`await import(${JSON.stringify(NODE_HTTP)});`);
    assert.deepEqual(outcome, {
      bundledUndiciLoaded: false,
      createServer: 'function',
      webSocket: 'function',
    });
  });
});
