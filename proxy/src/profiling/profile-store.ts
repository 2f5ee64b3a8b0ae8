// The embedded default when no Pyroscope server is set: the last few minutes of both processes'
// profiles, kept in memory as the gzipped pprof bodies they arrived as, and served merged by
// filter (the admin port's `GET /debug/pprof`).
//
// Memory is bounded by `maxBytes`: each profile counts its gzipped body plus an estimate of its
// metadata and label index, and the oldest profiles go first when a new one would not fit.
// A body is decoded once on `add`, to refuse what is not pprof and to note which label values its
// samples carry (the index), so a query decodes only the profiles that can match.
import { gzip, gzipSync } from 'node:zlib';
import type { Profile } from 'pprof-format';
import { SpanscopeError } from '../errors.ts';
import { isSpanId, isTraceId } from '../labels.ts';
import {
  DEFAULT_MAX_DECODED_BYTES,
  ProfileFormatError,
  ProfileMerger,
  checkProfile,
  decodePprof,
  decodePprofAsync,
  isGzip,
  sampleTypeLabels,
  sampleTypeNames,
} from './pprof-merge.ts';
import type { SampleLabelFilter, SampleTypeName } from './pprof-merge.ts';
import type { ProfileUpload } from './upload.ts';

/** The label filters of `GET /debug/pprof`, each matching a series tag or a sample label. */
export const PROFILE_FILTER_NAMES = [
  'service_name',
  'handler',
  'route',
  'user_agent',
  'db_operation',
  'span_id',
  'trace_id',
  'method',
  'component',
  'span_name',
] as const;
export type ProfileFilterName = (typeof PROFILE_FILTER_NAMES)[number];

/** Every query parameter `parseProfileQuery` accepts. */
export const PROFILE_QUERY_PARAMETERS = [...PROFILE_FILTER_NAMES, 'from', 'until', 'type'] as const;

/** The profile types a query can ask for; `wall` (with CPU time) is what the profiler uploads. */
export const QUERYABLE_PROFILE_TYPES = ['wall', 'heap'] as const;
export type QueryableProfileType = (typeof QUERYABLE_PROFILE_TYPES)[number];

export interface ProfileQuery {
  /** Label filters, all of which must match (AND). */
  readonly filters: Readonly<Partial<Record<ProfileFilterName, string>>>;
  /** Epoch milliseconds; a profile matches when its window overlaps [from, until]. */
  readonly from?: number | undefined;
  readonly until?: number | undefined;
  readonly type: QueryableProfileType;
}

export interface ProfileQueryResult {
  /** One gzipped pprof profile; valid (and empty) when nothing matched. */
  readonly pprof: Uint8Array;
  /** Distinct samples (stack + labels) in `pprof`: 0 means nothing matched. */
  readonly samples: number;
  /** Stored profiles that contributed at least one sample. */
  readonly profiles: number;
  /**
   * Matching profiles of the asked type left out because their sample types differ from the
   * newest match's (e.g. a wall profile without CPU time next to ones with it).
   */
  readonly skippedProfiles: number;
}

export interface ProfileStoreStats {
  readonly profiles: number;
  /** Bytes held: gzipped bodies plus the estimated metadata and label index. */
  readonly bytes: number;
  /** Profiles dropped so far: past retention, pushed out by the byte cap, or alone larger than it. */
  readonly evicted: number;
}

export interface LocalProfileStoreOptions {
  /** Profiles older than this (since they were added) are dropped. */
  readonly retentionMs: number;
  /** Cap on `stats().bytes`; the oldest profiles are dropped to stay under it. */
  readonly maxBytes: number;
  /** Epoch milliseconds (tests move time); default Date.now. */
  readonly now?: () => number;
  /** Refuse gzipped bodies that inflate beyond this (default 64 MiB). */
  readonly maxDecodedBytes?: number;
}

/** A query parameter that cannot be used: unknown, repeated, empty or malformed. */
export class ProfileQueryError extends SpanscopeError {
  /** The offending parameter, as given. */
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super('SPANSCOPE_ERR_PROFILE_QUERY', message);
    this.name = 'ProfileQueryError';
    this.parameter = parameter;
  }

  override answer(): Record<string, unknown> {
    return { ...super.answer(), parameter: this.parameter };
  }
}

/**
 * The type a profile is stored and queried under: `wall` when it has a `wall` sample type
 * (@datadog/pprof's wall profiler: samples/count, wall/nanoseconds, cpu/nanoseconds), `heap` for
 * heap profiles (inuse_space/…, or @datadog/pprof's objects/count, space/bytes), else the name of
 * its first sample type.
 */
export function profileTypeOf(types: readonly SampleTypeName[]): string {
  if (types.some((t) => t.type === 'wall')) return 'wall';
  if (types.some((t) => HEAP_TYPES.has(t.type))) return 'heap';
  return types[0]?.type ?? 'unknown';
}

const HEAP_TYPES: ReadonlySet<string> = new Set(['inuse_space', 'inuse_objects', 'space', 'objects']);

/** What an empty answer looks like when no stored profile of the type is at hand. */
const EMPTY_SHAPES: Readonly<Record<QueryableProfileType, readonly SampleTypeName[]>> = {
  wall: [
    { type: 'samples', unit: 'count' },
    { type: 'wall', unit: 'nanoseconds' },
    { type: 'cpu', unit: 'nanoseconds' },
  ],
  heap: [
    { type: 'objects', unit: 'count' },
    { type: 'space', unit: 'bytes' },
  ],
};

const FILTER_NAMES: ReadonlySet<string> = new Set(PROFILE_FILTER_NAMES);
// Rough per-entry and per-string costs, so the cap covers the metadata and not only the bodies.
const ENTRY_OVERHEAD_BYTES = 512;
const STRING_OVERHEAD_BYTES = 48;

interface StoredProfile {
  readonly serviceName: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly from: number;
  readonly until: number;
  readonly addedAt: number;
  readonly type: string;
  readonly sampleTypes: readonly SampleTypeName[];
  /** `sampleTypeLabels` joined: the merge group. */
  readonly shape: string;
  /** Distinct values of each filterable sample label in the profile. */
  readonly labelValues: ReadonlyMap<string, ReadonlySet<string>>;
  readonly body: Uint8Array;
  readonly bytes: number;
}

export class LocalProfileStore {
  readonly #retentionMs: number;
  readonly #maxBytes: number;
  readonly #maxDecodedBytes: number;
  readonly #now: () => number;
  /** Oldest first. */
  #entries: StoredProfile[] = [];
  #bytes = 0;
  #evicted = 0;

  constructor(options: LocalProfileStoreOptions) {
    if (!(options.retentionMs > 0)) throw new RangeError('retentionMs must be > 0');
    if (!(options.maxBytes > 0)) throw new RangeError('maxBytes must be > 0');
    this.#retentionMs = options.retentionMs;
    this.#maxBytes = options.maxBytes;
    this.#maxDecodedBytes = options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Keeps `upload` (gzipped; a raw pprof body is gzipped here). Throws a ProfileFormatError, keeping
   * nothing, when the body is not pprof or the window is not a pair of valid times. A profile larger
   * than the whole cap is not kept and counts as evicted.
   *
   * `decoded`, when the caller has decoded the body already, spares a second decode; it must be
   * exactly what the body holds (it is checked, not compared).
   */
  add(upload: ProfileUpload, decoded?: Profile): void {
    const from = upload.from.getTime();
    const until = upload.until.getTime();
    if (!Number.isFinite(from) || !Number.isFinite(until)) {
      throw new ProfileFormatError('the upload has no valid from/until times');
    }
    let profile: Profile;
    if (decoded === undefined) profile = decodePprof(upload.body, this.#maxDecodedBytes);
    else {
      checkProfile(decoded);
      profile = decoded;
    }
    const sampleTypes = sampleTypeNames(profile);
    const labelValues = indexLabels(profile);
    // A view into a larger buffer (a pooled Buffer) would keep all of it alive: hold a copy.
    const body = isGzip(upload.body)
      ? upload.body.byteLength === upload.body.buffer.byteLength
        ? upload.body
        : upload.body.slice()
      : new Uint8Array(gzipSync(upload.body));
    const tags = Object.freeze({ ...upload.tags });
    let bytes = body.byteLength + ENTRY_OVERHEAD_BYTES + upload.applicationName.length * 2;
    for (const [name, value] of Object.entries(tags))
      bytes += STRING_OVERHEAD_BYTES + (name.length + value.length) * 2;
    for (const values of labelValues.values()) {
      for (const value of values) bytes += STRING_OVERHEAD_BYTES + value.length * 2;
    }
    const now = this.#now();
    this.#expire(now);
    if (bytes > this.#maxBytes) {
      this.#evicted++;
      return;
    }
    while (this.#bytes + bytes > this.#maxBytes) this.#evictOldest();
    this.#entries.push({
      serviceName: upload.applicationName,
      tags,
      from,
      until,
      addedAt: now,
      type: profileTypeOf(sampleTypes),
      sampleTypes,
      shape: sampleTypeLabels(sampleTypes).join(','),
      labelValues,
      body,
      bytes,
    });
    this.#bytes += bytes;
  }

  /**
   * The samples matching `query`, merged into one gzipped pprof. `samples` is 0 when nothing
   * matched; the profile is then empty but valid, with the sample types of the asked type.
   */
  async query(query: ProfileQuery): Promise<ProfileQueryResult> {
    this.#expire(this.#now());
    const filters: [ProfileFilterName, string][] = [];
    for (const name of PROFILE_FILTER_NAMES) {
      const value = query.filters[name];
      if (value !== undefined) filters.push([name, value]);
    }
    const candidates: { entry: StoredProfile; filter: SampleLabelFilter | undefined }[] = [];
    for (const entry of this.#entries) {
      if (entry.type !== query.type) continue;
      if (query.from !== undefined && entry.until < query.from) continue;
      if (query.until !== undefined && entry.from > query.until) continue;
      // A filter the series already satisfies holds for every sample; the rest are checked per sample.
      const open = filters.filter(([name, value]) => seriesValue(entry, name) !== value);
      if (open.some(([name, value]) => entry.labelValues.get(name)?.has(value) !== true)) continue;
      candidates.push({
        entry,
        filter:
          open.length === 0 ? undefined : (labels) => open.every(([name, value]) => labels[name] === value),
      });
    }
    const newest = candidates.at(-1)?.entry;
    const merger = new ProfileMerger({ sampleTypes: newest?.sampleTypes ?? EMPTY_SHAPES[query.type] });
    let profiles = 0;
    let skippedProfiles = 0;
    for (const { entry, filter } of candidates) {
      if (entry.shape !== newest?.shape) {
        skippedProfiles++;
        continue;
      }
      const profile = await decodePprofAsync(entry.body, this.#maxDecodedBytes);
      if (merger.add(profile, filter) > 0) profiles++;
    }
    const merged = merger.result();
    return { pprof: await gzipProfile(merged), samples: merger.samples, profiles, skippedProfiles };
  }

  stats(): ProfileStoreStats {
    this.#expire(this.#now());
    return { profiles: this.#entries.length, bytes: this.#bytes, evicted: this.#evicted };
  }

  #expire(now: number): void {
    let expired = 0;
    for (const entry of this.#entries) {
      if (now - entry.addedAt < this.#retentionMs) break;
      expired++;
      this.#bytes -= entry.bytes;
    }
    if (expired === 0) return;
    this.#entries = this.#entries.slice(expired);
    this.#evicted += expired;
  }

  #evictOldest(): void {
    const oldest = this.#entries.shift();
    if (oldest === undefined) return;
    this.#bytes -= oldest.bytes;
    this.#evicted++;
  }
}

function seriesValue(entry: StoredProfile, name: ProfileFilterName): string | undefined {
  return name === 'service_name' ? entry.serviceName : entry.tags[name];
}

function indexLabels(profile: Profile): Map<string, Set<string>> {
  const strings = profile.stringTable.strings;
  const index = new Map<string, Set<string>>();
  // By string id first: a profile has few distinct label keys and values but many samples.
  const seen = new Set<string>();
  for (const sample of profile.sample) {
    for (const label of sample.label) {
      if (Number(label.str) === 0) continue;
      const id = `${String(label.key)}:${String(label.str)}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const key = strings[Number(label.key)] ?? '';
      if (!FILTER_NAMES.has(key)) continue;
      let values = index.get(key);
      if (values === undefined) index.set(key, (values = new Set()));
      values.add(strings[Number(label.str)] ?? '');
    }
  }
  return index;
}

function gzipProfile(profile: Profile): Promise<Uint8Array> {
  const raw = profile.encode();
  return new Promise((resolve, reject) => {
    gzip(raw, (error, result) => {
      if (error) reject(error);
      else resolve(new Uint8Array(result.buffer, result.byteOffset, result.byteLength));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// `GET /debug/pprof` query strings.

const RELATIVE = /^now(?:-(\d{1,9})([smh]))?$/;
const UNIX_SECONDS = /^\d{1,15}(?:\.\d{1,9})?$/;
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?([Zz]|([+-])(\d{2}):(\d{2}))?)?$/;
// Beyond this a number is milliseconds (or nonsense) rather than seconds: year 5138.
const MAX_UNIX_SECONDS = 1e11;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;
const TIME_FORMS =
  'unix seconds (1718000000), RFC 3339 (2024-06-10T06:13:20Z, 2024-06-10T08:13:20+02:00, 2024-06-10) or now / now-<n>s|m|h (now-15m)';

/**
 * A `GET /debug/pprof` query string as a ProfileQuery. Throws a ProfileQueryError naming the
 * parameter for an unknown or repeated name, an empty value, a malformed span/trace id, a time
 * that is none of the accepted forms, `from` after `until`, or a type other than wall or heap.
 * Relative times are taken from `now` (epoch milliseconds).
 */
export function parseProfileQuery(params: URLSearchParams, now: number = Date.now()): ProfileQuery {
  const seen = new Map<string, string>();
  for (const [name, value] of params) {
    if (!(PROFILE_QUERY_PARAMETERS as readonly string[]).includes(name)) {
      throw new ProfileQueryError(
        name,
        `unknown parameter ${JSON.stringify(name)}; allowed: ${PROFILE_QUERY_PARAMETERS.join(', ')}`,
      );
    }
    if (seen.has(name)) {
      throw new ProfileQueryError(name, `parameter ${name} is given more than once; give each at most once`);
    }
    if (value.trim() === '') {
      throw new ProfileQueryError(name, `parameter ${name} is empty; give a value or leave it out`);
    }
    seen.set(name, value);
  }
  const filters: Partial<Record<ProfileFilterName, string>> = {};
  for (const name of PROFILE_FILTER_NAMES) {
    let value = seen.get(name);
    if (value === undefined) continue;
    if (name === 'span_id' || name === 'trace_id') {
      value = value.toLowerCase();
      const digits = name === 'span_id' ? 16 : 32;
      if (!(name === 'span_id' ? isSpanId : isTraceId)(value)) {
        throw new ProfileQueryError(
          name,
          `parameter ${name} must be ${digits} hex digits, not all zero; got ${JSON.stringify(value)}`,
        );
      }
    }
    filters[name] = value;
  }
  const from = parseTime('from', seen.get('from'), now);
  const until = parseTime('until', seen.get('until'), now);
  if (from !== undefined && until !== undefined && from > until) {
    throw new ProfileQueryError(
      'from',
      `parameter from (${new Date(from).toISOString()}) is after until (${new Date(until).toISOString()})`,
    );
  }
  const type = seen.get('type') ?? 'wall';
  if (!(QUERYABLE_PROFILE_TYPES as readonly string[]).includes(type)) {
    throw new ProfileQueryError(
      'type',
      `parameter type must be one of ${QUERYABLE_PROFILE_TYPES.join(', ')} (default wall); got ${JSON.stringify(type)}`,
    );
  }
  return { filters, from, until, type: type as QueryableProfileType };
}

/** Epoch milliseconds of one of the TIME_FORMS, or a ProfileQueryError. */
export function parseTime(parameter: string, value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const bad = (detail = ''): ProfileQueryError =>
    new ProfileQueryError(
      parameter,
      `parameter ${parameter} ${JSON.stringify(value)} is not a time${detail}; use ${TIME_FORMS}`,
    );
  const relative = RELATIVE.exec(value);
  if (relative !== null) {
    const [, amount, unit] = relative;
    if (amount === undefined || unit === undefined) return now;
    return now - Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  }
  if (UNIX_SECONDS.test(value)) {
    const seconds = Number(value);
    if (seconds >= MAX_UNIX_SECONDS) throw bad(' in unix seconds (milliseconds?)');
    return Math.round(seconds * 1000);
  }
  const match = RFC3339.exec(value);
  if (match === null) throw bad();
  const [, year, month, day, hour, minute, second, fraction, zone, sign, offsetHours, offsetMinutes] = match;
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  const h = Number(hour ?? 0);
  const mi = Number(minute ?? 0);
  const s = Number(second ?? 0);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) throw bad();
  if (hour !== undefined && zone === undefined)
    throw bad(' (a date and time needs Z or an offset such as +02:00)');
  let offset = 0;
  if (sign !== undefined) {
    const oh = Number(offsetHours);
    const om = Number(offsetMinutes);
    if (oh > 23 || om > 59) throw bad();
    offset = (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const millis = fraction === undefined ? 0 : Math.round(Number(fraction) * 1000);
  const utc = new Date(0);
  utc.setUTCFullYear(y, mo - 1, d);
  utc.setUTCHours(h, mi, s, millis);
  return utc.getTime() - offset;
}
