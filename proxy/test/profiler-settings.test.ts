// The profiler settings of .env.profiling beyond the label switches, on a real profiler pushing to a
// real ingest receiver: ENABLE_PROFILING, ENABLE_DETAILED_STACK_TRACES, ENABLE_GOROUTINE_PROFILING
// (the heap profile), the conditional gate's hook, and the in-process sink the proxy uses.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startProfiler } from '@spanscope/proxy';
import type { StartProfilerOptions } from '@spanscope/proxy';
import { decodeProfile, startPyroscopeReceiver } from './support/pyroscope-receiver.ts';
import type { PyroscopeReceiver } from './support/pyroscope-receiver.ts';
import type { ProfileUpload } from '../src/profiling/upload.ts';
import { Function as PprofFunction, Line, Location, Profile } from 'pprof-format';
import { strippedFrom } from '../src/launch-settings.ts';
import { prepareProfile } from '../src/profiling/ingest.ts';

const SILENT = { info: () => undefined, warn: () => undefined };

function settings(
  receiver: PyroscopeReceiver | undefined,
  overrides: Partial<StartProfilerOptions> = {},
): StartProfilerOptions {
  return {
    serverAddress: receiver?.url,
    applicationName: 'settings-test',
    uploadRateSeconds: 60,
    switches: { endpoint: true, database: true, userAgent: true, dynamicTags: true, traceId: false },
    logger: SILENT,
    ...overrides,
  };
}

function spin(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 2000; i++) x += Math.sqrt(i + x);
  return x;
}
function burn_named_frame(ms: number): number {
  return spin(ms);
}
/** Keeps allocations alive so the heap profile has something to show. */
const retained: number[][] = [];
function allocate_named_frame(): void {
  for (let i = 0; i < 2000; i++) retained.push(new Array<number>(256).fill(i));
}

function framesOf(body: Uint8Array): string[] {
  return decodeProfile(body).samples.flatMap((sample) => sample.stack);
}

describe('profiler settings', () => {
  it('ENABLE_PROFILING=false: off, nothing sampled or sent', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      const profiler = await startProfiler(settings(receiver, { enabled: false }));
      assert.equal(profiler.status().state, 'off');
      assert.equal(profiler.status().reason, 'ENABLE_PROFILING=false');
      await profiler.flush();
      await profiler.stop();
      assert.equal(receiver.uploads.length, 0);
    } finally {
      await receiver.close();
    }
  });

  it('ENABLE_DETAILED_STACK_TRACES=true: /full/path/file.ts:function:line frames', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      const profiler = await startProfiler(settings(receiver, { detailedStackTraces: true }));
      burn_named_frame(300);
      await profiler.stop();
      const [upload] = await receiver.waitForUploads(1);
      assert.ok(upload);
      const frame = upload.samples.flatMap((s) => s.stack).find((name) => name.includes('burn_named_frame'));
      assert.match(frame ?? '', /^\/.+\/proxy\/test\/profiler-settings\.test\.ts:burn_named_frame:\d+$/);
      // Node 24 runs the TypeScript itself: the line is the .ts line of the function.
      const line = Number((frame ?? '').split(':').pop());
      const source = readFileSync(new URL(import.meta.url), 'utf8').split('\n');
      assert.equal(line, source.indexOf('function burn_named_frame(ms: number): number {') + 1);
    } finally {
      await receiver.close();
    }
  });

  it('ENABLE_DETAILED_STACK_TRACES=true from the stripped build: frames name the .ts source', () => {
    const profile = new Profile();
    const strings = profile.stringTable;
    const frames = [
      ['forward', 'file:///app/proxy/dist/upstream.js', 42],
      ['encode', '/app/proxy/dist/otlp/span-encoder.js', 7],
      ['request', '/app/node_modules/undici/lib/dispatcher/pool.js', 9],
    ] as const;
    frames.forEach(([name, file, line], i) => {
      profile.function.push(
        new PprofFunction({ id: i + 1, name: strings.dedup(name), filename: strings.dedup(file) }),
      );
      profile.location.push(new Location({ id: i + 1, line: [new Line({ functionId: i + 1, line })] }));
    });
    // The shape @datadog/pprof builds, from the pprof-format package it bundles.
    prepareProfile(profile as unknown as Parameters<typeof prepareProfile>[0], {
      strippedFrom: strippedFrom('/app/proxy/dist/'),
    });
    assert.deepEqual(
      profile.function.map((fn) => strings.strings[Number(fn.name)]),
      [
        '/app/proxy/src/upstream.ts:forward:42',
        '/app/proxy/src/otlp/span-encoder.ts:encode:7',
        '/app/node_modules/undici/lib/dispatcher/pool.js:request:9',
      ],
    );
    assert.equal(strippedFrom('/app/proxy/src/'), undefined, 'the sources themselves are named as they are');
  });

  it('ENABLE_DETAILED_STACK_TRACES=false: bare function names, no file or line', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      const profiler = await startProfiler(settings(receiver, { detailedStackTraces: false }));
      burn_named_frame(300);
      await profiler.stop();
      const [upload] = await receiver.waitForUploads(1);
      assert.ok(upload);
      const frames = upload.samples.flatMap((s) => s.stack);
      assert.ok(frames.includes('burn_named_frame'), 'the bare name is there');
      assert.ok(!frames.some((name) => name.includes('profiler-settings.test.ts')), 'no file names');
      const strings = upload.profile.stringTable.strings;
      for (const fn of upload.profile.function) assert.equal(strings[Number(fn.filename)], '');
      for (const location of upload.profile.location) {
        for (const line of location.line) assert.equal(Number(line.line), 0);
      }
    } finally {
      await receiver.close();
    }
  });

  it('ENABLE_GOROUTINE_PROFILING: a heap profile after each wall profile, same series', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      const profiler = await startProfiler(settings(receiver, { heapProfile: true }));
      allocate_named_frame();
      burn_named_frame(100);
      await profiler.stop();
      const uploads = await receiver.waitForUploads(2);
      assert.deepEqual(
        uploads.map((u) => u.kind),
        ['wall', 'heap'],
      );
      const heap = uploads[1];
      assert.ok(heap);
      assert.equal(heap.name, uploads[0]?.name, 'the same series name');
      assert.deepEqual(heap.sampleTypes, ['objects/count', 'space/bytes']);
      assert.ok(
        heap.samples.some((s) => s.stack.some((frame) => frame.includes('allocate_named_frame'))),
        'the retained allocations are in the heap profile',
      );
    } finally {
      await receiver.close();
    }
  });

  it('without ENABLE_GOROUTINE_PROFILING: wall only', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      const profiler = await startProfiler(settings(receiver));
      burn_named_frame(50);
      await profiler.stop();
      await receiver.waitForUploads(1);
      assert.deepEqual(
        receiver.uploads.map((u) => u.kind),
        ['wall'],
      );
    } finally {
      await receiver.close();
    }
  });

  it('shouldUpload false (conditional profiling closed): profiles are collected and discarded', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      let open = false;
      const profiler = await startProfiler(settings(receiver, { shouldUpload: () => open }));
      burn_named_frame(50);
      await profiler.flush();
      await profiler.flush();
      assert.equal(profiler.status().skippedProfiles, 2);
      assert.equal(receiver.uploads.length, 0);
      open = true;
      burn_named_frame(50);
      await profiler.stop();
      await receiver.waitForUploads(1);
      assert.equal(profiler.status().uploads, 1);
      assert.equal(profiler.status().skippedProfiles, 2);
    } finally {
      await receiver.close();
    }
  });

  it('a sink takes the uploads in-process: no server needed', async () => {
    const received: ProfileUpload[] = [];
    const profiler = await startProfiler(
      settings(undefined, {
        sink: (upload) => {
          received.push(upload);
          return Promise.resolve();
        },
      }),
    );
    assert.equal(profiler.status().state, 'running');
    burn_named_frame(100);
    await profiler.stop();
    assert.equal(received.length, 1);
    const [upload] = received;
    assert.ok(upload);
    assert.equal(upload.applicationName, 'settings-test');
    assert.equal(upload.spyName, 'nodespy');
    assert.equal(upload.sampleRate, 100);
    assert.equal(upload.tags['process.runtime.name'], 'nodejs');
    assert.ok(upload.from.getTime() <= upload.until.getTime());
    assert.ok(framesOf(upload.body).some((frame) => frame.includes('burn_named_frame')));
  });

  it('a failing sink is counted as a failed upload, never thrown', async () => {
    const profiler = await startProfiler(
      settings(undefined, { sink: () => Promise.reject(new Error('store full')) }),
    );
    burn_named_frame(20);
    await profiler.flush();
    await profiler.stop();
    assert.equal(profiler.status().failedUploads, 2);
    assert.equal(profiler.status().uploads, 0);
  });
});
