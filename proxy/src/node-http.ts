// node:http for the proxy's own servers, reached without its ES module facade.
//
// Node builds the facade of a built-in module by reading every export, and three of node:http's
// exports (WebSocket, CloseEvent, MessageEvent) are getters that load Node's bundled copy of
// undici, a second undici beside the one the proxy forwards with. So the proxy takes node:http
// through `process.getBuiltinModule`, and those three getters are made non-enumerable before any
// facade is built: the OpenTelemetry exporter imports node:http dynamically at its first export,
// and a facade lists enumerable exports only. `http.WebSocket` and the others still work; only
// `import { WebSocket } from 'node:http'` would not, and nothing in the proxy's process does that.
// What it saves, and the command that measures it: README.md, "Memory under load".
const http = process.getBuiltinModule('node:http');

/** The exports of node:http that load Node's bundled undici when read. */
const UNDICI_BACKED_EXPORTS = ['WebSocket', 'CloseEvent', 'MessageEvent'] as const;

for (const name of UNDICI_BACKED_EXPORTS) {
  const descriptor = Object.getOwnPropertyDescriptor(http, name);
  if (descriptor?.configurable === true && descriptor.enumerable === true) {
    Object.defineProperty(http, name, { ...descriptor, enumerable: false });
  }
}

export const { createServer } = http;
