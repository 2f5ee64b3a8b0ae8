// Streamed bodies pass through in socket-read Buffers (up to 64 KiB each) that die young but are
// only freed when V8 next scavenges, and a proxy allocates too little JavaScript per chunk for
// that to come soon: without help, one 100 MiB transfer raised peak RSS by over 50 MiB (the
// streaming test reports the growth). Shrinking the young generation for the whole process fixed
// that, but made every traced request pay for far more frequent scavenges. Instead, a minor GC
// (tens of µs) runs after every 8 MiB of body streamed, which only large transfers ever reach.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const BYTES_BETWEEN_SCAVENGES = 8 * 1024 * 1024;

type Collect = (options: { type: 'minor' | 'major' }) => void;

function exposeGc(): Collect | undefined {
  try {
    setFlagsFromString('--expose-gc');
    // A fresh context is created with the flag in force, so it has `gc` even though this one does not.
    const collect: unknown = runInNewContext('gc');
    return typeof collect === 'function' ? (collect as Collect) : undefined;
  } catch {
    return undefined;
  }
}

const collect = exposeGc();
let streamedSinceScavenge = 0;

/** Counts body bytes the proxy has moved; schedules a minor GC every few MiB. */
export function countStreamedBytes(bytes: number): void {
  streamedSinceScavenge += bytes;
  if (streamedSinceScavenge < BYTES_BETWEEN_SCAVENGES || collect === undefined) return;
  streamedSinceScavenge = 0;
  collect({ type: 'minor' });
}
