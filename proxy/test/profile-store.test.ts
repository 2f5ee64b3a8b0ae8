// The local profile store and its pprof merge: real profiles built with pprof-format (and one from
// @datadog/pprof's wall profiler), gzipped as Pyroscope's ingest API carries them, stored, queried,
// and every export decoded twice (pprof-format and a strict protobufjs decoder of profile.proto)
// to check its exact samples, values, labels and stacks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { setImmediate as nextTurn } from 'node:timers/promises';
import protobuf from 'protobufjs';
import { Profile } from 'pprof-format';
import { SpanscopeError } from '../src/errors.ts';
import {
  ProfileFormatError,
  ProfileMerger,
  SampleTypeMismatchError,
  checkProfile,
  decodePprof,
  mergeProfiles,
} from '../src/profiling/pprof-merge.ts';
import {
  LocalProfileStore,
  PROFILE_FILTER_NAMES,
  PROFILE_QUERY_PARAMETERS,
  ProfileQueryError,
  parseProfileQuery,
  profileTypeOf,
} from '../src/profiling/profile-store.ts';
import type { ProfileQuery } from '../src/profiling/profile-store.ts';
import { HEAP_TYPES, buildProfile, gzipped, upload } from './support/pprof-fixtures.ts';
import type { FixtureSample } from './support/pprof-fixtures.ts';
import { decodeProfile } from './support/pyroscope-receiver.ts';

// ---------------------------------------------------------------------------------------------
// Decoding exports

/** A sample as compared in tests: stack root first, `;`-joined, as flamegraph tools print it. */
interface Flat {
  stack: string;
  values: Record<string, number>;
  labels: Record<string, string>;
  numLabels?: Record<string, number>;
}

function flatten(body: Uint8Array): Flat[] {
  const { samples } = decodeProfile(body);
  return samples
    .map((sample) => {
      const flat: Flat = {
        stack: [...sample.stack].reverse().join(';'),
        values: { ...sample.values },
        labels: { ...sample.labels },
      };
      if (Object.keys(sample.numLabels).length > 0) flat.numLabels = { ...sample.numLabels };
      return flat;
    })
    .sort(compareFlat);
}

function compareFlat(a: Flat, b: Flat): number {
  const ka = `${a.stack}|${JSON.stringify(Object.entries(a.labels).sort())}`;
  const kb = `${b.stack}|${JSON.stringify(Object.entries(b.labels).sort())}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function sorted(samples: Flat[]): Flat[] {
  return [...samples].sort(compareFlat);
}

// profile.proto (github.com/google/pprof/proto/profile.proto), the fields go tool pprof reads.
const PROFILE_PROTO = `
syntax = "proto3";
package perftools.profiles;
message Profile {
  repeated ValueType sample_type = 1; repeated Sample sample = 2; repeated Mapping mapping = 3;
  repeated Location location = 4; repeated Function function = 5; repeated string string_table = 6;
  int64 drop_frames = 7; int64 keep_frames = 8; int64 time_nanos = 9; int64 duration_nanos = 10;
  ValueType period_type = 11; int64 period = 12; repeated int64 comment = 13; int64 default_sample_type = 14;
}
message ValueType { int64 type = 1; int64 unit = 2; }
message Sample { repeated uint64 location_id = 1; repeated int64 value = 2; repeated Label label = 3; }
message Label { int64 key = 1; int64 str = 2; int64 num = 3; int64 num_unit = 4; }
message Mapping {
  uint64 id = 1; uint64 memory_start = 2; uint64 memory_limit = 3; uint64 file_offset = 4; int64 filename = 5;
  int64 build_id = 6; bool has_functions = 7; bool has_filenames = 8; bool has_line_numbers = 9; bool has_inline_frames = 10;
}
message Location { uint64 id = 1; uint64 mapping_id = 2; uint64 address = 3; repeated Line line = 4; bool is_folded = 5; }
message Line { uint64 function_id = 1; int64 line = 2; int64 column = 3; }
message Function { uint64 id = 1; int64 name = 2; int64 system_name = 3; int64 filename = 4; int64 start_line = 5; }
`;
const ProfileMessage = protobuf.parse(PROFILE_PROTO).root.lookupType('perftools.profiles.Profile');

interface StrictProfile {
  sampleType: { type: string; unit: string }[];
  sample: { locationId: string[]; value: string[]; label: { key: string; str: string; num: string }[] }[];
  location: { id: string; line: { functionId: string; line: string }[] }[];
  function: { id: string; name: string; systemName: string; filename: string; startLine: string }[];
  mapping: { id: string }[];
  stringTable: string[];
  timeNanos: string;
  durationNanos: string;
}

/**
 * Decodes with protobufjs, strictly, and checks what go tool pprof's parser checks: string 0 is
 * "", ids are unique and non-zero, every reference resolves, one value per sample type, and (our
 * promise) no duplicated string, function, location or sample.
 */
function checkStrictly(gz: Uint8Array): StrictProfile {
  assert.equal(gz[0], 0x1f, 'the export is gzipped');
  const raw = new Uint8Array(gunzipSync(gz));
  const decoded = ProfileMessage.toObject(ProfileMessage.decode(raw), {
    longs: String,
    arrays: true,
    defaults: true,
  }) as StrictProfile;
  const strings = decoded.stringTable;
  assert.equal(strings[0], '');
  assert.equal(new Set(strings).size, strings.length, 'every string once');
  const ids = (list: { id: string }[], what: string): Set<string> => {
    const set = new Set(list.map((item) => item.id));
    assert.equal(set.size, list.length, `${what} ids are unique`);
    assert.ok(!set.has('0'), `no ${what} id is 0`);
    return set;
  };
  const functionIds = ids(decoded.function, 'function');
  const locationIds = ids(decoded.location, 'location');
  ids(decoded.mapping, 'mapping');
  const functionKeys = decoded.function.map(
    (fn) => `${fn.name}|${fn.systemName}|${fn.filename}|${fn.startLine}`,
  );
  assert.equal(new Set(functionKeys).size, functionKeys.length, 'every function once');
  const locationKeys = decoded.location.map((l) =>
    l.line.map((line) => `${line.functionId}:${line.line}`).join(','),
  );
  assert.equal(new Set(locationKeys).size, locationKeys.length, 'every location once');
  for (const location of decoded.location) {
    for (const line of location.line) assert.ok(functionIds.has(line.functionId));
  }
  const sampleKeys = new Set<string>();
  for (const sample of decoded.sample) {
    assert.equal(sample.value.length, decoded.sampleType.length);
    for (const id of sample.locationId) assert.ok(locationIds.has(id), `location ${id} exists`);
    for (const label of sample.label) assert.ok(Number(label.key) > 0 && Number(label.key) < strings.length);
    const key = `${sample.locationId.join(',')}|${sample.label
      .map((l) => `${l.key}=${l.str}/${l.num}`)
      .sort()
      .join(',')}`;
    assert.ok(!sampleKeys.has(key), 'identical samples are merged');
    sampleKeys.add(key);
  }
  return decoded;
}

// ---------------------------------------------------------------------------------------------
// The data: two processes of a pod, two upload windows

const T0 = 1_700_000_000; // unix seconds
const NS = 1_000_000_000n;
const MS = 1_000_000;
const S1 = '00f067aa0ba902b7';
const S2 = '1111111111111111';
const S3 = 'b7ad6b7169203331';
const S4 = '2222222222222222';
const T1 = '4bf92f3577b34da6a3ce929d0e0e4736';

const PRODUCTS_LABELS = {
  handler: 'get_products',
  route: '/products',
  method: 'GET',
  component: 'http',
  user_agent: 'curl',
  span_name: 'GET /products',
};
const A_LABELS = { ...PRODUCTS_LABELS, span_id: S1, trace_id: T1 };
const B_LABELS = {
  handler: 'get_product',
  route: '/product/{id}',
  method: 'GET',
  component: 'http',
  user_agent: 'browser',
  span_id: S2,
  span_name: 'GET /product/{id}',
};
const G_LABELS = { ...PRODUCTS_LABELS, span_id: S4 };

const ALPHA = ['burn_alpha', 'handle', 'main'];
const BETA = ['burn_beta', 'handle', 'main'];

/** The proxy's first window, [T0, T0+10]: A twice (merged), B, an unlabelled idle sample. */
const proxyFirst: FixtureSample[] = [
  { stack: ALPHA, values: [3, 30 * MS, 20 * MS], labels: A_LABELS },
  { stack: BETA, values: [2, 20 * MS, 10 * MS], labels: B_LABELS },
  { stack: ['idle'], values: [5, 50 * MS, 0] },
  { stack: ALPHA, values: [1, 10 * MS, 5 * MS], labels: A_LABELS },
];
/** The proxy's second window, [T0+10, T0+20], laid out with other ids: A again, and G (another span). */
const proxySecond: FixtureSample[] = [
  { stack: ALPHA, values: [2, 20 * MS, 10 * MS], labels: A_LABELS },
  { stack: ALPHA, values: [7, 70 * MS, 60 * MS], labels: G_LABELS },
];
/** The backend, [T0+2, T0+12], with `handler` as a series tag and db labels per sample. */
const backendSamples: FixtureSample[] = [
  {
    stack: ['query_db', 'get_products_handler'],
    values: [4, 40 * MS, 30 * MS],
    labels: { db_operation: 'get_products', component: 'database', span_id: S3 },
  },
  { stack: ['serialize', 'get_products_handler'], values: [1, 10 * MS, 10 * MS], labels: { span_id: S3 } },
];
const heapSamples: FixtureSample[] = [
  { stack: ['alloc_buffer', 'main'], values: [10, 4096], labels: { handler: 'get_products' } },
];

const wall = (samples: number, wallMs: number, cpuMs: number): Record<string, number> => ({
  'samples/count': samples,
  'wall/nanoseconds': wallMs * MS,
  'cpu/nanoseconds': cpuMs * MS,
});

// What each query should export, by name.
const A_MERGED_ALL: Flat = { stack: 'main;handle;burn_alpha', values: wall(6, 60, 35), labels: A_LABELS };
const A_FIRST: Flat = { stack: 'main;handle;burn_alpha', values: wall(4, 40, 25), labels: A_LABELS };
const A_SECOND: Flat = { stack: 'main;handle;burn_alpha', values: wall(2, 20, 10), labels: A_LABELS };
const B: Flat = { stack: 'main;handle;burn_beta', values: wall(2, 20, 10), labels: B_LABELS };
const IDLE: Flat = { stack: 'idle', values: wall(5, 50, 0), labels: {} };
const G: Flat = { stack: 'main;handle;burn_alpha', values: wall(7, 70, 60), labels: G_LABELS };
const E: Flat = {
  stack: 'get_products_handler;query_db',
  values: wall(4, 40, 30),
  labels: { db_operation: 'get_products', component: 'database', span_id: S3 },
};
const F: Flat = { stack: 'get_products_handler;serialize', values: wall(1, 10, 10), labels: { span_id: S3 } };
const HEAP: Flat = {
  stack: 'main;alloc_buffer',
  values: { 'objects/count': 10, 'space/bytes': 4096 },
  labels: { handler: 'get_products' },
};

function filledStore(now = (): number => (T0 + 30) * 1000): LocalProfileStore {
  const store = new LocalProfileStore({ retentionMs: 15 * 60_000, maxBytes: 10 * 1024 * 1024, now });
  store.add(
    upload(
      'spanscope-proxy',
      {},
      T0,
      T0 + 10,
      gzipped(buildProfile({ samples: proxyFirst, timeNanos: BigInt(T0) * NS })),
    ),
  );
  store.add(
    upload(
      'inventory-backend',
      { handler: 'get_products', 'process.runtime.name': 'nodejs' },
      T0 + 2,
      T0 + 12,
      gzipped(buildProfile({ samples: backendSamples, timeNanos: BigInt(T0 + 2) * NS, idBase: 40 })),
    ),
  );
  store.add(
    upload(
      'spanscope-proxy',
      {},
      T0 + 10,
      T0 + 20,
      gzipped(
        buildProfile({ samples: proxySecond, timeNanos: BigInt(T0 + 10) * NS, idBase: 100, reverse: true }),
      ),
    ),
  );
  store.add(
    upload(
      'spanscope-proxy',
      {},
      T0,
      T0 + 10,
      gzipped(buildProfile({ samples: heapSamples, sampleTypes: HEAP_TYPES, timeNanos: BigInt(T0) * NS })),
    ),
  );
  return store;
}

function query(params: Record<string, string>): ProfileQuery {
  return parseProfileQuery(new URLSearchParams(params), (T0 + 30) * 1000);
}

async function exported(store: LocalProfileStore, params: Record<string, string>): Promise<Flat[]> {
  const result = await store.query(query(params));
  checkStrictly(result.pprof);
  const samples = flatten(result.pprof);
  assert.equal(result.samples, samples.length, 'samples counts the exported samples');
  return samples;
}

// ---------------------------------------------------------------------------------------------

describe('local profile store: filters', () => {
  const store = filledStore();

  const cases: [string, Record<string, string>, Flat[]][] = [
    [
      'no filter: every wall sample, identical ones summed across profiles',
      {},
      [A_MERGED_ALL, B, IDLE, G, E, F],
    ],
    ['service_name (the series name)', { service_name: 'inventory-backend' }, [E, F]],
    [
      'handler: sample labels, and the series tag of the backend',
      { handler: 'get_products' },
      [A_MERGED_ALL, G, E, F],
    ],
    ['route', { route: '/product/{id}' }, [B]],
    ['user_agent', { user_agent: 'curl' }, [A_MERGED_ALL, G]],
    ['db_operation', { db_operation: 'get_products' }, [E]],
    ['span_id of the proxy', { span_id: S1 }, [A_MERGED_ALL]],
    ['span_id of the backend', { span_id: S3 }, [E, F]],
    ['span_id in upper case', { span_id: S3.toUpperCase() }, [E, F]],
    ['trace_id', { trace_id: T1 }, [A_MERGED_ALL]],
    ['method', { method: 'GET' }, [A_MERGED_ALL, B, G]],
    ['component=http', { component: 'http' }, [A_MERGED_ALL, B, G]],
    ['component=database', { component: 'database' }, [E]],
    ['span_name', { span_name: 'GET /product/{id}' }, [B]],
    ['handler AND component', { handler: 'get_products', component: 'database' }, [E]],
    [
      'service_name AND handler',
      { service_name: 'spanscope-proxy', handler: 'get_products' },
      [A_MERGED_ALL, G],
    ],
    ['handler AND span_id', { handler: 'get_products', span_id: S4 }, [G]],
    ['from: only windows ending at or after it', { from: String(T0 + 13) }, [A_SECOND, G]],
    ['until: only windows starting at or before it', { until: String(T0 + 1) }, [A_FIRST, B, IDLE]],
    [
      'from and until: windows overlapping the range',
      { from: String(T0 + 11), until: String(T0 + 11) },
      [A_SECOND, G, E, F],
    ],
    ['time AND label', { from: String(T0 + 13), span_id: S1 }, [A_SECOND]],
    ['type=heap', { type: 'heap' }, [HEAP]],
    ['type=heap AND handler', { type: 'heap', handler: 'get_products' }, [HEAP]],
    ['type=wall explicitly', { type: 'wall', route: '/products' }, [A_MERGED_ALL, G]],
  ];
  for (const [name, params, expected] of cases) {
    it(name, async () => {
      assert.deepEqual(await exported(store, params), sorted(expected));
    });
  }

  it('reports how many stored profiles contributed', async () => {
    const all = await store.query(query({}));
    assert.equal(all.profiles, 3);
    assert.equal(all.skippedProfiles, 0);
    const backend = await store.query(query({ span_id: S3 }));
    assert.equal(backend.profiles, 1);
  });

  it('spans the earliest start to the latest end, keeps the period, dedups strings and frames', async () => {
    const result = await store.query(query({}));
    const { profile } = decodeProfile(result.pprof);
    assert.equal(BigInt(profile.timeNanos), BigInt(T0) * NS);
    assert.equal(BigInt(profile.durationNanos), 20n * NS);
    assert.equal(Number(profile.period), 10_000_000);
    const strings = profile.stringTable.strings;
    assert.equal(strings[Number(profile.periodType?.type)], 'wall');
    // burn_alpha, burn_beta, handle, main, idle, query_db, serialize, get_products_handler.
    assert.equal(profile.function.length, 8);
    assert.equal(profile.location.length, 8);
    assert.deepEqual(decodeProfile(result.pprof).sampleTypes, [
      'samples/count',
      'wall/nanoseconds',
      'cpu/nanoseconds',
    ]);
  });

  it('answers "nothing matched" with samples 0 and an empty but valid profile of the asked type', async () => {
    const misses: Record<string, string>[] = [
      { span_id: 'ffffffffffffffff' },
      { handler: 'get_products', service_name: 'inventory-backend', span_id: S1 },
      { service_name: 'nobody' },
      { from: String(T0 + 100) },
    ];
    for (const params of misses) {
      const result = await store.query(query(params));
      assert.equal(result.samples, 0, JSON.stringify(params));
      assert.equal(result.profiles, 0);
      const strict = checkStrictly(result.pprof);
      assert.equal(strict.sample.length, 0);
      assert.deepEqual(decodeProfile(result.pprof).sampleTypes, [
        'samples/count',
        'wall/nanoseconds',
        'cpu/nanoseconds',
      ]);
    }
    const empty = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024 });
    const heap = await empty.query(query({ type: 'heap' }));
    assert.equal(heap.samples, 0);
    checkStrictly(heap.pprof);
    assert.deepEqual(decodeProfile(heap.pprof).sampleTypes, ['objects/count', 'space/bytes']);
  });

  it('keeps numeric labels and keeps string ones apart from them', async () => {
    const own = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024, now: () => T0 * 1000 });
    const samples: FixtureSample[] = [
      { stack: ['a'], values: [1, 1, 1], labels: { handler: 'h' }, numLabels: { bytes: 512 } },
      { stack: ['a'], values: [1, 1, 1], labels: { handler: 'h' }, numLabels: { bytes: 512 } },
      { stack: ['a'], values: [1, 1, 1], labels: { handler: 'h' }, numLabels: { bytes: 1024 } },
    ];
    own.add(upload('svc', {}, T0, T0 + 10, gzipped(buildProfile({ samples }))));
    const result = await own.query(query({ handler: 'h' }));
    checkStrictly(result.pprof);
    assert.deepEqual(flatten(result.pprof), [
      {
        stack: 'a',
        values: { 'samples/count': 2, 'wall/nanoseconds': 2, 'cpu/nanoseconds': 2 },
        labels: { handler: 'h' },
        numLabels: { bytes: 512 },
      },
      {
        stack: 'a',
        values: { 'samples/count': 1, 'wall/nanoseconds': 1, 'cpu/nanoseconds': 1 },
        labels: { handler: 'h' },
        numLabels: { bytes: 1024 },
      },
    ]);
  });

  it('exports only the newest sample-type shape of a type and counts the others as skipped', async () => {
    const own = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024, now: () => T0 * 1000 });
    const noCpu = [
      ['samples', 'count'],
      ['wall', 'nanoseconds'],
    ] as const;
    own.add(
      upload(
        'svc',
        {},
        T0,
        T0 + 10,
        gzipped(buildProfile({ samples: [{ stack: ['old'], values: [1, 5] }], sampleTypes: noCpu })),
      ),
    );
    own.add(
      upload(
        'svc',
        {},
        T0 + 10,
        T0 + 20,
        gzipped(buildProfile({ samples: [{ stack: ['new'], values: [1, 5, 3] }] })),
      ),
    );
    const result = await own.query(query({}));
    assert.equal(result.skippedProfiles, 1);
    assert.equal(result.profiles, 1);
    assert.deepEqual(flatten(result.pprof), [{ stack: 'new', values: wall(1, 5 / MS, 3 / MS), labels: {} }]);
  });

  it('accepts a raw (not gzipped) pprof body and serves it gzipped', async () => {
    const own = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024, now: () => T0 * 1000 });
    own.add(upload('svc', {}, T0, T0 + 10, buildProfile({ samples: proxySecond }).encode()));
    const result = await own.query(query({ span_id: S4 }));
    checkStrictly(result.pprof);
    assert.deepEqual(flatten(result.pprof), [G]);
  });
});

describe('local profile store: retention and the byte cap', () => {
  const body = (stack: string): Uint8Array =>
    gzipped(buildProfile({ samples: [{ stack: [stack], values: [1, 10, 10], labels: { handler: stack } }] }));
  const stacksOf = async (store: LocalProfileStore): Promise<string[]> =>
    flatten((await store.query(query({}))).pprof).map((s) => s.stack);

  it('drops profiles once they are older than the retention, by the store clock', async () => {
    let now = 1_000_000;
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024, now: () => now });
    store.add(upload('svc', {}, T0, T0 + 10, body('first')));
    now += 30_000;
    store.add(upload('svc', {}, T0, T0 + 10, body('second')));
    assert.deepEqual(await stacksOf(store), ['first', 'second']);
    now += 29_999;
    assert.equal(store.stats().profiles, 2);
    now += 1; // first is 60 s old
    assert.deepEqual(await stacksOf(store), ['second']);
    assert.equal(store.stats().profiles, 1);
    assert.equal(store.stats().evicted, 1);
    now += 30_000;
    const stats = store.stats();
    assert.deepEqual(stats, { profiles: 0, bytes: 0, evicted: 2 });
  });

  it('drops the oldest profiles first to stay under maxBytes', async () => {
    const probe = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024 });
    probe.add(upload('svc', {}, T0, T0 + 10, body('p0')));
    const one = probe.stats().bytes;
    assert.ok(one > body('p0').byteLength, 'metadata and label index count too');

    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: one * 3 + one / 2 });
    for (const name of ['p1', 'p2', 'p3']) store.add(upload('svc', {}, T0, T0 + 10, body(name)));
    assert.deepEqual(store.stats(), { profiles: 3, bytes: one * 3, evicted: 0 });
    store.add(upload('svc', {}, T0, T0 + 10, body('p4')));
    assert.deepEqual(store.stats(), { profiles: 3, bytes: one * 3, evicted: 1 });
    assert.deepEqual(await stacksOf(store), ['p2', 'p3', 'p4']);
    store.add(upload('svc', {}, T0, T0 + 10, body('p5')));
    assert.deepEqual(await stacksOf(store), ['p3', 'p4', 'p5']);
    assert.ok(store.stats().bytes <= one * 3 + one / 2);
    assert.equal(store.stats().evicted, 2);
  });

  it('does not keep a profile larger than the whole cap, and counts it', async () => {
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 600 });
    store.add(upload('svc', {}, T0, T0 + 10, body('huge')));
    assert.deepEqual(store.stats(), { profiles: 0, bytes: 0, evicted: 1 });
    assert.deepEqual(await stacksOf(store), []);
  });

  it('holds its own copy of a body that is a view into a larger buffer', async () => {
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024 });
    const gz = body('view');
    const pool = new Uint8Array(gz.length + 100);
    pool.set(gz, 50);
    const view = pool.subarray(50, 50 + gz.length);
    store.add(upload('svc', {}, T0, T0 + 10, view));
    pool.fill(0);
    assert.deepEqual(await stacksOf(store), ['view']);
  });
});

describe('local profile store: bodies that are not pprof', () => {
  const good = buildProfile({ samples: proxyFirst });

  function brokenProfile(breakIt: (profile: Profile) => void): Uint8Array {
    const profile = buildProfile({ samples: proxyFirst });
    breakIt(profile);
    return gzipped(profile);
  }

  const bad: [string, Uint8Array, RegExp][] = [
    ['an empty body', new Uint8Array(), /empty/],
    ['JSON', new TextEncoder().encode('{"not":"pprof"}'), /not a (valid )?pprof profile/],
    ['gzipped text', new Uint8Array(gzipSync('hello, world')), /not a (valid )?pprof profile/],
    ['truncated gzip', gzipped(good).subarray(0, 40), /not valid gzip/],
    ['a gzip header and garbage', new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]), /not valid gzip/],
    [
      'a profile without sample types',
      brokenProfile((p) => {
        p.sampleType = [];
      }),
      /no sample types/,
    ],
    [
      'a sample pointing at a missing location',
      brokenProfile((p) => {
        p.location.pop();
      }),
      /refers to location \d+, which is missing/,
    ],
    [
      'a location pointing at a missing function',
      brokenProfile((p) => {
        p.function.shift();
      }),
      /refers to function \d+, which is missing/,
    ],
    [
      'a sample with too few values',
      brokenProfile((p) => {
        p.sample[0]?.value.pop();
      }),
      /sample 0 has 2 values for 3 sample types/,
    ],
    [
      'a label pointing past the string table',
      brokenProfile((p) => {
        const label = p.sample[0]?.label[0];
        if (label !== undefined) label.str = 10_000;
      }),
      /refers to string 10000/,
    ],
  ];
  for (const [name, body, message] of bad) {
    it(`refuses ${name} with a ProfileFormatError and keeps nothing`, () => {
      const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024 });
      assert.throws(
        () => {
          store.add(upload('svc', {}, T0, T0 + 10, body));
        },
        (error: unknown) => {
          assert.ok(error instanceof ProfileFormatError, String(error));
          assert.ok(error instanceof SpanscopeError);
          assert.equal(error.code, 'SPANSCOPE_ERR_PROFILE_STORE');
          assert.match(error.message, message);
          return true;
        },
      );
      assert.deepEqual(store.stats(), { profiles: 0, bytes: 0, evicted: 0 });
    });
  }

  it('refuses a body that inflates beyond maxDecodedBytes', () => {
    const store = new LocalProfileStore({
      retentionMs: 60_000,
      maxBytes: 1024 * 1024,
      maxDecodedBytes: 1000,
    });
    const bomb = new Uint8Array(gzipSync(new Uint8Array(1_000_000)));
    assert.throws(() => {
      store.add(upload('svc', {}, T0, T0 + 10, bomb));
    }, /not valid gzip: .*(buffer|length|size)/i);
  });

  it('takes a profile the caller decoded already, and still checks it', async () => {
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024, now: () => T0 * 1000 });
    const body = gzipped(good);
    store.add(upload('svc', {}, T0, T0 + 10, body), decodePprof(body));
    assert.deepEqual(flatten((await store.query(query({ span_id: S2 }))).pprof), [B]);
    const broken = decodePprof(body);
    broken.location.pop();
    assert.throws(() => {
      store.add(upload('svc', {}, T0, T0 + 10, body), broken);
    }, /refers to location \d+, which is missing/);
    assert.equal(store.stats().profiles, 1);
  });

  it('refuses an upload with invalid times', () => {
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 1024 * 1024 });
    assert.throws(() => {
      store.add({ ...upload('svc', {}, T0, T0 + 10, gzipped(good)), from: new Date(Number.NaN) });
    }, ProfileFormatError);
  });
});

describe('pprof merge', () => {
  it('merges by content: same stacks under other ids and orders become one', () => {
    const first = buildProfile({ samples: proxySecond });
    const second = buildProfile({ samples: proxySecond, idBase: 500, reverse: true });
    const merged = mergeProfiles([first, second]);
    checkProfile(merged);
    const gz = new Uint8Array(gzipSync(merged.encode()));
    checkStrictly(gz);
    assert.deepEqual(
      flatten(gz),
      sorted([
        { ...A_SECOND, values: wall(4, 40, 20) },
        { ...G, values: wall(14, 140, 120) },
      ]),
    );
    assert.equal(merged.function.length, 3);
    assert.equal(merged.location.length, 3);
    assert.ok(!merged.stringTable.strings.includes('unused string'), 'only strings in use are copied');
  });

  it('drops samples the filter refuses, and what only they referred to', () => {
    const merged = mergeProfiles(
      [buildProfile({ samples: proxyFirst })],
      (labels) => labels.handler === 'get_product',
    );
    const gz = new Uint8Array(gzipSync(merged.encode()));
    assert.deepEqual(flatten(gz), [B]);
    assert.deepEqual(merged.function.map((fn) => merged.stringTable.strings[Number(fn.name)]).sort(), [
      'burn_beta',
      'handle',
      'main',
    ]);
  });

  it('passes the filter resolved string labels only', () => {
    const seen: Record<string, string>[] = [];
    mergeProfiles(
      [
        buildProfile({
          samples: [{ stack: ['a'], values: [1, 1, 1], labels: { handler: 'h' }, numLabels: { n: 3 } }],
        }),
      ],
      (labels) => {
        seen.push({ ...labels });
        return true;
      },
    );
    assert.deepEqual(seen, [{ handler: 'h' }]);
  });

  it('sums values beyond 2^53 exactly and keeps negative ones', () => {
    const big = 2n ** 60n;
    const profile = (value: bigint): Profile =>
      buildProfile({ samples: [{ stack: ['a'], values: [1, value, -5] }] });
    const merged = mergeProfiles([profile(big), profile(big + 1n)]);
    const [sample] = Profile.decode(merged.encode()).sample;
    assert.equal(BigInt(sample?.value[1] ?? 0), 2n * big + 1n);
    assert.equal(BigInt.asIntN(64, BigInt(sample?.value[2] ?? 0)), -10n);
  });

  it('refuses to merge profiles with different sample types', () => {
    const merger = new ProfileMerger();
    merger.add(buildProfile({ samples: proxyFirst }));
    assert.throws(
      () => merger.add(buildProfile({ samples: heapSamples, sampleTypes: HEAP_TYPES })),
      (error: unknown) => {
        assert.ok(error instanceof SampleTypeMismatchError);
        assert.ok(error instanceof SpanscopeError);
        assert.equal(error.code, 'SPANSCOPE_ERR_PROFILE_MERGE');
        assert.deepEqual(error.expected, ['samples/count', 'wall/nanoseconds', 'cpu/nanoseconds']);
        assert.deepEqual(error.actual, ['objects/count', 'space/bytes']);
        return true;
      },
    );
    assert.equal(merger.profiles, 1, 'the refused profile added nothing');
    assert.equal(merger.samples, 3);
  });

  it('decodes what it encodes (round trip through decodePprof)', () => {
    const merged = mergeProfiles([buildProfile({ samples: proxyFirst })]);
    const again = decodePprof(new Uint8Array(gzipSync(merged.encode())));
    assert.equal(again.sample.length, 3);
  });

  it('names the profile type from the sample types', () => {
    const types = (...pairs: [string, string][]) => pairs.map(([type, unit]) => ({ type, unit }));
    assert.equal(profileTypeOf(types(['sample', 'count'], ['wall', 'nanoseconds'])), 'wall');
    assert.equal(
      profileTypeOf(types(['samples', 'count'], ['wall', 'nanoseconds'], ['cpu', 'nanoseconds'])),
      'wall',
    );
    assert.equal(profileTypeOf(types(['objects', 'count'], ['space', 'bytes'])), 'heap');
    assert.equal(profileTypeOf(types(['alloc_objects', 'count'], ['inuse_space', 'bytes'])), 'heap');
    assert.equal(profileTypeOf(types(['cpu', 'nanoseconds'])), 'cpu');
  });
});

describe('parseProfileQuery', () => {
  const NOW = Date.UTC(2024, 5, 10, 6, 13, 20); // 2024-06-10T06:13:20Z = 1718000000 s
  const parse = (query: string): ProfileQuery => parseProfileQuery(new URLSearchParams(query), NOW);

  it('accepts exactly the documented parameters', () => {
    assert.deepEqual(PROFILE_QUERY_PARAMETERS, [...PROFILE_FILTER_NAMES, 'from', 'until', 'type']);
    const all = new URLSearchParams();
    for (const name of PROFILE_FILTER_NAMES) {
      all.set(name, name === 'span_id' ? S1 : name === 'trace_id' ? T1 : `v_${name}`);
    }
    all.set('from', 'now-15m');
    all.set('until', 'now');
    all.set('type', 'heap');
    const q = parseProfileQuery(all, NOW);
    assert.equal(Object.keys(q.filters).length, PROFILE_FILTER_NAMES.length);
    assert.equal(q.filters.handler, 'v_handler');
    assert.equal(q.filters.span_id, S1);
    assert.equal(q.from, NOW - 15 * 60_000);
    assert.equal(q.until, NOW);
    assert.equal(q.type, 'heap');
  });

  it('defaults to wall profiles over all time', () => {
    assert.deepEqual(parse(''), { filters: {}, from: undefined, until: undefined, type: 'wall' });
  });

  it('reads every time form', () => {
    const cases: [string, number][] = [
      ['1718000000', NOW],
      ['1718000000.25', NOW + 250],
      ['2024-06-10T06:13:20Z', NOW],
      ['2024-06-10t06:13:20z', NOW],
      ['2024-06-10 06:13:20Z', NOW],
      ['2024-06-10T06:13:20.5Z', NOW + 500],
      ['2024-06-10T06:13:20.123456789Z', NOW + 123],
      ['2024-06-10T08:13:20+02:00', NOW],
      ['2024-06-10T01:13:20-05:00', NOW],
      ['2024-06-10T06:13Z', NOW - 20_000],
      ['2024-06-10', Date.UTC(2024, 5, 10)],
      ['2024-02-29', Date.UTC(2024, 1, 29)],
      ['now', NOW],
      ['now-30s', NOW - 30_000],
      ['now-15m', NOW - 900_000],
      ['now-2h', NOW - 7_200_000],
    ];
    for (const [value, expected] of cases) {
      assert.equal(parse(`from=${encodeURIComponent(value)}`).from, expected, value);
      assert.equal(parse(`until=${encodeURIComponent(value)}`).until, expected, value);
    }
  });

  function assertQueryError(query: string, parameter: string, message: RegExp): void {
    assert.throws(
      () => parse(query),
      (error: unknown) => {
        assert.ok(
          error instanceof ProfileQueryError,
          `${query}: expected a ProfileQueryError, got ${String(error)}`,
        );
        assert.ok(error instanceof SpanscopeError);
        assert.equal(error.code, 'SPANSCOPE_ERR_PROFILE_QUERY');
        assert.equal(error.name, 'ProfileQueryError');
        assert.equal(error.parameter, parameter, query);
        assert.match(error.message, message, query);
        return true;
      },
    );
  }

  it('refuses unknown parameters, naming the allowed ones', () => {
    assertQueryError(
      'user_id=7',
      'user_id',
      /unknown parameter "user_id"; allowed: service_name, handler, route, user_agent, db_operation, span_id, trace_id, method, component, span_name, from, until, type/,
    );
    assertQueryError('handler=a&Handler=b', 'Handler', /unknown parameter "Handler"/);
    assertQueryError('seconds=30', 'seconds', /unknown parameter/);
  });

  it('refuses a repeated parameter', () => {
    assertQueryError('handler=a&handler=b', 'handler', /parameter handler is given more than once/);
    assertQueryError('from=now&from=now', 'from', /given more than once/);
  });

  it('refuses empty values', () => {
    for (const name of PROFILE_QUERY_PARAMETERS) {
      assertQueryError(`${name}=`, name, new RegExp(`parameter ${name} is empty`));
    }
    assertQueryError('route=%20', 'route', /parameter route is empty/);
  });

  it('refuses malformed span and trace ids', () => {
    assertQueryError(
      'span_id=123',
      'span_id',
      /parameter span_id must be 16 hex digits, not all zero; got "123"/,
    );
    assertQueryError('span_id=zzzzzzzzzzzzzzzz', 'span_id', /16 hex digits/);
    assertQueryError(`span_id=${'0'.repeat(16)}`, 'span_id', /not all zero/);
    assertQueryError(`trace_id=${S1}`, 'trace_id', /parameter trace_id must be 32 hex digits/);
  });

  it('refuses times in none of the forms', () => {
    const bad: [string, RegExp][] = [
      ['yesterday', /parameter from "yesterday" is not a time; use unix seconds/],
      ['1718000000000', /in unix seconds \(milliseconds\?\)/],
      ['-5', /is not a time/],
      ['now-15', /is not a time/],
      ['now-15d', /is not a time/],
      ['now+5m', /is not a time/],
      ['2024-06-10T06:13:20', /needs Z or an offset/],
      ['2024-02-30', /is not a time/],
      ['2023-02-29', /is not a time/],
      ['2024-13-01', /is not a time/],
      ['2024-06-10T24:00:00Z', /is not a time/],
      ['2024-06-10T06:60:00Z', /is not a time/],
      ['2024-06-10T06:13:20+25:00', /is not a time/],
      ['10/06/2024', /is not a time/],
    ];
    for (const [value, message] of bad)
      assertQueryError(`from=${encodeURIComponent(value)}`, 'from', message);
    assertQueryError('until=soon', 'until', /parameter until "soon" is not a time/);
  });

  it('refuses from after until', () => {
    assertQueryError(
      'from=now&until=now-1h',
      'from',
      /parameter from \(2024-06-10T06:13:20.000Z\) is after until \(2024-06-10T05:13:20.000Z\)/,
    );
  });

  it('refuses profile types other than wall and heap', () => {
    assertQueryError(
      'type=cpu',
      'type',
      /parameter type must be one of wall, heap \(default wall\); got "cpu"/,
    );
    assertQueryError('type=WALL', 'type', /must be one of wall, heap/);
  });
});

// ---------------------------------------------------------------------------------------------
// A real wall profile from @datadog/pprof, started as profiler.ts starts it.

function spin(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 2000; i++) x += Math.sqrt(i + x);
  return x;
}
function store_burn_alpha(ms: number): number {
  return spin(ms);
}
function store_burn_beta(ms: number): number {
  return spin(ms);
}

describe('a real @datadog/pprof wall profile through the store', () => {
  it('is stored as wall and filtered by the labels its samples carry', async () => {
    const { time, encode } = await import('@datadog/pprof');
    time.start({
      intervalMicros: 1000,
      durationMillis: 60_000,
      withContexts: true,
      collectCpuTime: true,
      useCPED: true,
      workaroundV8Bug: true,
    });
    let body: Uint8Array;
    try {
      // Labels must follow the code across an await (CPED), as in the proxy.
      await time.runWithContext({ handler: 'alpha', span_id: S1 }, async () => {
        await nextTurn();
        store_burn_alpha(150);
      });
      await time.runWithContext({ handler: 'beta', span_id: S2 }, async () => {
        await nextTurn();
        store_burn_beta(150);
      });
    } finally {
      const profile = time.stop(false, (args) => {
        const context = args.context?.context;
        return context !== undefined && typeof context === 'object'
          ? (context as Record<string, string>)
          : {};
      });
      body = await encode(profile);
    }
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 16 * 1024 * 1024 });
    const now = Math.floor(Date.now() / 1000);
    store.add(upload('spanscope-proxy', {}, now - 5, now, body));
    const result = await store.query(parseProfileQuery(new URLSearchParams({ handler: 'alpha' })));
    const beta = await store.query(parseProfileQuery(new URLSearchParams({ span_id: S2, type: 'wall' })));
    const none = await store.query(parseProfileQuery(new URLSearchParams({ handler: 'gamma' })));

    checkStrictly(result.pprof);
    const alphaSamples = flatten(result.pprof);
    assert.ok(alphaSamples.length > 0, 'samples labelled handler=alpha');
    for (const sample of alphaSamples) assert.equal(sample.labels.handler, 'alpha');
    assert.ok(
      alphaSamples.some((s) => s.stack.includes('store_burn_alpha')),
      'alpha burnt CPU in its own function',
    );
    assert.ok(alphaSamples.every((s) => !s.stack.includes('store_burn_beta')));
    const wallTotal = alphaSamples.reduce((sum, s) => sum + (s.values['wall/nanoseconds'] ?? 0), 0);
    assert.ok(wallTotal > 0);

    const betaSamples = flatten(beta.pprof);
    assert.ok(betaSamples.some((s) => s.stack.includes('store_burn_beta')));
    for (const sample of betaSamples) assert.deepEqual(sample.labels, { handler: 'beta', span_id: S2 });
    assert.equal(none.samples, 0);

    const { sampleTypes } = decodeProfile(result.pprof);
    assert.ok(
      sampleTypes.includes('wall/nanoseconds') && sampleTypes.includes('cpu/nanoseconds'),
      String(sampleTypes),
    );
  });

  it('a real heap profile is stored as heap', async () => {
    const { heap, encode } = await import('@datadog/pprof');
    heap.start(64 * 1024, 64);
    // About 6 MB of live JS objects: many samples at one per 64 KiB on average.
    const keep: { j: number }[][] = [];
    for (let i = 0; i < 200; i++) keep.push(Array.from({ length: 1000 }, (_, j) => ({ j })));
    const profile = heap.profile();
    heap.stop();
    const store = new LocalProfileStore({ retentionMs: 60_000, maxBytes: 16 * 1024 * 1024 });
    const now = Math.floor(Date.now() / 1000);
    store.add(upload('spanscope-proxy', {}, now - 5, now, await encode(profile)));
    assert.equal(
      (await store.query(parseProfileQuery(new URLSearchParams()))).samples,
      0,
      'not a wall profile',
    );
    const result = await store.query(parseProfileQuery(new URLSearchParams({ type: 'heap' })));
    checkStrictly(result.pprof);
    assert.ok(result.samples > 0);
    assert.deepEqual(decodeProfile(result.pprof).sampleTypes, ['objects/count', 'space/bytes']);
    assert.ok(keep.length > 0);
  });
});
