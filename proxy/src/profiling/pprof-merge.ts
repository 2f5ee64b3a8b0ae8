// pprof profiles checked on the way in and merged on the way out, with pprof-format's classes.
//
// Merging is by content, not by id: every input has its own string table and its own ids, so
// strings are re-interned into one table, and mappings, functions and locations are keyed by what
// they say (names, files, lines) after that. Two samples are one when they have the same stack and
// the same labels (string and numeric); their values are summed. Only what a kept sample refers to
// is copied, so a narrow filter gives a small profile.
//
// Profiles are merged only when their sample types (the `type/unit` list, in order) are the same:
// summing columns that mean different things would give a profile that lies. A caller holding
// several shapes groups them first; `ProfileMerger.add` throws a SampleTypeMismatchError otherwise.
//
// pprof-format's decoder is lenient (it skips what it does not know and never checks references),
// so `decodePprof` also checks the structure: a body that decodes into nonsense is refused here
// rather than turned into a profile `go tool pprof` cannot open.
import { gunzip, gunzipSync } from 'node:zlib';
import {
  Function as PprofFunction,
  Label,
  Line,
  Location,
  Mapping,
  Profile,
  Sample,
  ValueType,
} from 'pprof-format';
import type { StringTable } from 'pprof-format';
import { SpanscopeError } from '../errors.ts';

type Numeric = number | bigint;

/**
 * A body that is not a (gzipped) pprof profile, or one with broken references: what the local
 * store refuses (`SPANSCOPE_ERR_PROFILE_STORE`; the ingest endpoint answers 400).
 */
export class ProfileFormatError extends SpanscopeError {
  constructor(message: string, options?: ErrorOptions) {
    super('SPANSCOPE_ERR_PROFILE_STORE', message, options);
    this.name = 'ProfileFormatError';
  }
}

/** Profiles with different sample types handed to one merge (`SPANSCOPE_ERR_PROFILE_MERGE`). */
export class SampleTypeMismatchError extends SpanscopeError {
  /** `type/unit` of the merge so far, and of the profile refused. */
  readonly expected: readonly string[];
  readonly actual: readonly string[];
  constructor(expected: readonly string[], actual: readonly string[]) {
    super(
      'SPANSCOPE_ERR_PROFILE_MERGE',
      `cannot merge a profile with sample types [${actual.join(', ')}] into one with [${expected.join(', ')}]; ` +
        'group profiles by sample types first',
    );
    this.name = 'SampleTypeMismatchError';
    this.expected = expected;
    this.actual = actual;
  }
}

/** Decides from a sample's string labels (numeric ones are not passed) whether it is kept. */
export type SampleLabelFilter = (labels: Readonly<Record<string, string>>) => boolean;

export interface SampleTypeName {
  readonly type: string;
  readonly unit: string;
}

/** Beyond this a gzipped body is refused rather than inflated (a 4 MiB body of zeros inflates to GiBs). */
export const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

export function isGzip(body: Uint8Array): boolean {
  return body.length >= 2 && body[0] === GZIP_MAGIC_0 && body[1] === GZIP_MAGIC_1;
}

/** The sample types of `profile` as `{ type, unit }` strings, in order. */
export function sampleTypeNames(profile: Profile): SampleTypeName[] {
  const strings = profile.stringTable.strings;
  return profile.sampleType.map((valueType) => ({
    type: strings[Number(valueType.type)] ?? '',
    unit: strings[Number(valueType.unit)] ?? '',
  }));
}

/** `type/unit` per sample type: the identity two profiles must share to be merged. */
export function sampleTypeLabels(types: readonly SampleTypeName[]): string[] {
  return types.map(({ type, unit }) => `${type}/${unit}`);
}

/**
 * Decodes a pprof body (gzipped, as Pyroscope's ingest API carries it, or raw) and checks that it
 * is one; throws a ProfileFormatError saying what is wrong otherwise.
 */
export function decodePprof(body: Uint8Array, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES): Profile {
  let raw: Uint8Array = body;
  if (isGzip(body)) {
    try {
      raw = gunzipSync(body, { maxOutputLength: maxDecodedBytes });
    } catch (error) {
      throw new ProfileFormatError(`the body is not valid gzip: ${reason(error)}`, { cause: error });
    }
  }
  return decodeRaw(raw);
}

/** `decodePprof` with the inflating off the event loop, for bodies already known to be good. */
export async function decodePprofAsync(
  body: Uint8Array,
  maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES,
): Promise<Profile> {
  if (!isGzip(body)) return decodeRaw(body);
  const raw = await new Promise<Uint8Array>((resolve, reject) => {
    gunzip(body, { maxOutputLength: maxDecodedBytes }, (error, result) => {
      if (error)
        reject(new ProfileFormatError(`the body is not valid gzip: ${reason(error)}`, { cause: error }));
      else resolve(result);
    });
  });
  return decodeRaw(raw);
}

function decodeRaw(raw: Uint8Array): Profile {
  if (raw.length === 0) throw new ProfileFormatError('the body is empty, not a pprof profile');
  let profile: Profile;
  try {
    profile = Profile.decode(raw);
  } catch (error) {
    throw new ProfileFormatError(`the body is not a pprof profile: ${reason(error)}`, { cause: error });
  }
  checkProfile(profile);
  return profile;
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Throws a ProfileFormatError when `profile` breaks the rules of profile.proto that merging relies on. */
export function checkProfile(profile: Profile): void {
  const fail = (what: string): never => {
    throw new ProfileFormatError(`the body is not a valid pprof profile: ${what}`);
  };
  const strings = profile.stringTable.strings;
  if (strings.length === 0 || strings[0] !== '') fail('its string table does not start with ""');
  const checkString = (index: Numeric, where: string): void => {
    if (!(Number(index) >= 0 && Number(index) < strings.length)) {
      fail(`${where} refers to string ${String(index)} of ${strings.length}`);
    }
  };
  if (profile.sampleType.length === 0) fail('it has no sample types');
  profile.sampleType.forEach((valueType, i) => {
    checkString(valueType.type, `sample type ${i}`);
    checkString(valueType.unit, `sample type ${i}`);
  });
  if (profile.periodType !== undefined) {
    checkString(profile.periodType.type, 'the period type');
    checkString(profile.periodType.unit, 'the period type');
  }
  for (const index of profile.comment) checkString(index, 'a comment');
  checkString(profile.dropFrames, 'drop_frames');
  checkString(profile.keepFrames, 'keep_frames');
  checkString(profile.defaultSampleType, 'default_sample_type');
  checkString(profile.docUrl, 'doc_url');

  const mappingIds = new Set<string>();
  for (const mapping of profile.mapping) {
    if (Number(mapping.id) === 0) fail('a mapping has id 0');
    checkString(mapping.filename, `mapping ${String(mapping.id)}`);
    checkString(mapping.buildId, `mapping ${String(mapping.id)}`);
    mappingIds.add(String(mapping.id));
  }
  const functionIds = new Set<string>();
  for (const fn of profile.function) {
    if (Number(fn.id) === 0) fail('a function has id 0');
    checkString(fn.name, `function ${String(fn.id)}`);
    checkString(fn.systemName, `function ${String(fn.id)}`);
    checkString(fn.filename, `function ${String(fn.id)}`);
    functionIds.add(String(fn.id));
  }
  const locationIds = new Set<string>();
  for (const location of profile.location) {
    if (Number(location.id) === 0) fail('a location has id 0');
    if (Number(location.mappingId) !== 0 && !mappingIds.has(String(location.mappingId))) {
      fail(
        `location ${String(location.id)} refers to mapping ${String(location.mappingId)}, which is missing`,
      );
    }
    for (const line of location.line) {
      if (!functionIds.has(String(line.functionId))) {
        fail(
          `location ${String(location.id)} refers to function ${String(line.functionId)}, which is missing`,
        );
      }
    }
    locationIds.add(String(location.id));
  }
  const width = profile.sampleType.length;
  profile.sample.forEach((sample, i) => {
    if (sample.value.length !== width) {
      fail(`sample ${i} has ${sample.value.length} values for ${width} sample types`);
    }
    for (const id of sample.locationId) {
      if (!locationIds.has(String(id)))
        fail(`sample ${i} refers to location ${String(id)}, which is missing`);
    }
    for (const label of sample.label) {
      if (Number(label.key) === 0) fail(`sample ${i} has a label without a key`);
      checkString(label.key, `a label of sample ${i}`);
      checkString(label.str, `a label of sample ${i}`);
      checkString(label.numUnit, `a label of sample ${i}`);
    }
  });
}

/** The string labels of a sample, resolved (what filters see). */
export function sampleStringLabels(profile: Profile, sample: Sample): Record<string, string> {
  const strings = profile.stringTable.strings;
  const labels = Object.create(null) as Record<string, string>;
  for (const label of sample.label) {
    if (Number(label.str) !== 0) labels[strings[Number(label.key)] ?? ''] = strings[Number(label.str)] ?? '';
  }
  return labels;
}

// int64 values arrive as unsigned 64-bit bigints when negative or when 5+ varint bytes long
// (pprof-format's decoding). They are kept as numbers while safe, else as signed 64-bit bigints,
// so sums are exact and the common case stays off BigInt arithmetic.
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

function int64(value: Numeric): bigint {
  return BigInt.asIntN(64, BigInt(value));
}

function numeric(value: bigint): Numeric {
  return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

function normalized(value: Numeric): Numeric {
  return typeof value === 'number' ? value : numeric(BigInt.asIntN(64, value));
}

function sum(a: Numeric, b: Numeric): Numeric {
  if (typeof a === 'number' && typeof b === 'number') {
    const total = a + b;
    if (Number.isSafeInteger(total)) return total;
  }
  return numeric(BigInt.asIntN(64, BigInt(a) + BigInt(b)));
}

interface MergedSample {
  readonly locationId: number[];
  readonly label: Label[];
  readonly value: Numeric[];
}

/** The id maps of one input profile into the merge (its ids mean nothing outside it). */
class SourceProfile {
  readonly strings: readonly string[];
  readonly functions = new Map<string, PprofFunction>();
  readonly locations = new Map<string, Location>();
  readonly mappings = new Map<string, Mapping>();
  readonly stringIds: Int32Array;
  readonly locationIds = new Map<string, number>();
  readonly functionIds = new Map<string, number>();
  readonly mappingIds = new Map<string, number>();

  constructor(profile: Profile) {
    this.strings = profile.stringTable.strings;
    this.stringIds = new Int32Array(this.strings.length).fill(-1);
    for (const fn of profile.function) this.functions.set(String(fn.id), fn);
    for (const location of profile.location) this.locations.set(String(location.id), location);
    for (const mapping of profile.mapping) this.mappings.set(String(mapping.id), mapping);
  }
}

export interface ProfileMergerOptions {
  /** The sample types every profile must have; also those of the result when no profile is added. */
  readonly sampleTypes?: readonly SampleTypeName[];
}

/**
 * Merges profiles one at a time, so a caller can decode, add and drop each input in turn. Inputs
 * must share their sample types (see the module comment); the time span is the union of theirs,
 * the period and period type those of the first.
 */
export class ProfileMerger {
  readonly #profile = new Profile();
  readonly #strings: StringTable = this.#profile.stringTable;
  #sampleTypes: string[] | undefined;
  readonly #samples = new Map<string, MergedSample>();
  readonly #functionIds = new Map<string, number>();
  readonly #locationIds = new Map<string, number>();
  readonly #mappingIds = new Map<string, number>();
  readonly #comments = new Set<number>();
  #start: bigint | undefined;
  #end: bigint | undefined;
  #profiles = 0;
  #keptSamples = 0;
  #first = true;

  constructor(options: ProfileMergerOptions = {}) {
    if (options.sampleTypes !== undefined) this.#setSampleTypes(options.sampleTypes);
  }

  /** Profiles added so far. */
  get profiles(): number {
    return this.#profiles;
  }

  /** Input samples that passed the filter so far (before identical ones are combined). */
  get keptSamples(): number {
    return this.#keptSamples;
  }

  /** Distinct samples (stack + labels) in the merge so far. */
  get samples(): number {
    return this.#samples.size;
  }

  #setSampleTypes(types: readonly SampleTypeName[]): void {
    this.#sampleTypes = sampleTypeLabels(types);
    this.#profile.sampleType = types.map(
      ({ type, unit }) => new ValueType({ type: this.#strings.dedup(type), unit: this.#strings.dedup(unit) }),
    );
  }

  /**
   * Adds the samples of `profile` whose string labels pass `filter`; returns how many it kept.
   * Throws a SampleTypeMismatchError, adding nothing, when its sample types differ from the merge's.
   */
  add(profile: Profile, filter?: SampleLabelFilter): number {
    const types = sampleTypeNames(profile);
    const labels = sampleTypeLabels(types);
    if (this.#sampleTypes === undefined) this.#setSampleTypes(types);
    else if (labels.join('\u0000') !== this.#sampleTypes.join('\u0000')) {
      throw new SampleTypeMismatchError(this.#sampleTypes, labels);
    }
    const source = new SourceProfile(profile);
    this.#profiles++;
    this.#mergeHeader(profile, source);
    let kept = 0;
    for (const sample of profile.sample) {
      if (filter !== undefined && !filter(sampleStringLabels(profile, sample))) continue;
      kept++;
      this.#addSample(source, sample);
    }
    this.#keptSamples += kept;
    return kept;
  }

  #mergeHeader(profile: Profile, source: SourceProfile): void {
    const start = int64(profile.timeNanos);
    if (start > 0n) {
      const end = start + (int64(profile.durationNanos) > 0n ? int64(profile.durationNanos) : 0n);
      if (this.#start === undefined || start < this.#start) this.#start = start;
      if (this.#end === undefined || end > this.#end) this.#end = end;
    }
    for (const comment of profile.comment) this.#comments.add(this.#string(source, comment));
    if (!this.#first) return;
    this.#first = false;
    const target = this.#profile;
    if (profile.periodType !== undefined) {
      target.periodType = new ValueType({
        type: this.#string(source, profile.periodType.type),
        unit: this.#string(source, profile.periodType.unit),
      });
    }
    target.period = profile.period;
    target.dropFrames = this.#string(source, profile.dropFrames);
    target.keepFrames = this.#string(source, profile.keepFrames);
    target.defaultSampleType = this.#string(source, profile.defaultSampleType);
    target.docUrl = this.#string(source, profile.docUrl);
  }

  #string(source: SourceProfile, index: Numeric): number {
    const i = Number(index);
    if (i === 0) return 0;
    let id = source.stringIds[i] ?? -1;
    if (id === -1) {
      id = this.#strings.dedup(source.strings[i] ?? '');
      source.stringIds[i] = id;
    }
    return id;
  }

  #addSample(source: SourceProfile, sample: Sample): void {
    // The key is built from merged ids first; objects are made only for a sample not seen before.
    const locationId = sample.locationId.map((id) => this.#location(source, id));
    let key = locationId.join(',');
    if (sample.label.length > 0) {
      const labelKeys = sample.label.map((l) =>
        Number(l.str) === 0
          ? `${this.#string(source, l.key)}#${String(normalized(l.num))}#${this.#string(source, l.numUnit)}`
          : `${this.#string(source, l.key)}=${this.#string(source, l.str)}`,
      );
      // Label order carries no meaning: samples that list the same labels differently are one.
      if (labelKeys.length > 1) labelKeys.sort();
      key += `|${labelKeys.join(',')}`;
    }
    const merged = this.#samples.get(key);
    if (merged !== undefined) {
      const values = merged.value;
      sample.value.forEach((value, i) => {
        values[i] = sum(values[i] ?? 0, value);
      });
      return;
    }
    const label = sample.label.map((l) =>
      Number(l.str) === 0
        ? new Label({
            key: this.#string(source, l.key),
            num: normalized(l.num),
            numUnit: this.#string(source, l.numUnit),
          })
        : new Label({ key: this.#string(source, l.key), str: this.#string(source, l.str) }),
    );
    this.#samples.set(key, { locationId, label, value: sample.value.map(normalized) });
  }

  #location(source: SourceProfile, id: Numeric): number {
    const known = source.locationIds.get(String(id));
    if (known !== undefined) return known;
    // checkProfile guarantees it exists for decoded profiles; a hand-built one may still lack it.
    const location = source.locations.get(String(id));
    if (location === undefined)
      throw new ProfileFormatError(`a sample refers to location ${String(id)}, which is missing`);
    const mappingId = Number(location.mappingId) === 0 ? 0 : this.#mapping(source, location.mappingId);
    const line = location.line.map(
      (l) => new Line({ functionId: this.#function(source, l.functionId), line: l.line, column: l.column }),
    );
    const key = `${mappingId}|${String(location.address)}|${location.isFolded ? 1 : 0}|${line
      .map((l) => `${String(l.functionId)}:${String(l.line)}:${String(l.column)}`)
      .join(';')}`;
    let merged = this.#locationIds.get(key);
    if (merged === undefined) {
      merged = this.#profile.location.length + 1;
      this.#profile.location.push(
        new Location({ id: merged, mappingId, address: location.address, line, isFolded: location.isFolded }),
      );
      this.#locationIds.set(key, merged);
    }
    source.locationIds.set(String(id), merged);
    return merged;
  }

  #function(source: SourceProfile, id: Numeric): number {
    const known = source.functionIds.get(String(id));
    if (known !== undefined) return known;
    const fn = source.functions.get(String(id));
    if (fn === undefined)
      throw new ProfileFormatError(`a location refers to function ${String(id)}, which is missing`);
    const name = this.#string(source, fn.name);
    const systemName = this.#string(source, fn.systemName);
    const filename = this.#string(source, fn.filename);
    const key = `${name}|${systemName}|${filename}|${String(fn.startLine)}`;
    let merged = this.#functionIds.get(key);
    if (merged === undefined) {
      merged = this.#profile.function.length + 1;
      this.#profile.function.push(
        new PprofFunction({ id: merged, name, systemName, filename, startLine: fn.startLine }),
      );
      this.#functionIds.set(key, merged);
    }
    source.functionIds.set(String(id), merged);
    return merged;
  }

  #mapping(source: SourceProfile, id: Numeric): number {
    const known = source.mappingIds.get(String(id));
    if (known !== undefined) return known;
    const mapping = source.mappings.get(String(id));
    if (mapping === undefined)
      throw new ProfileFormatError(`a location refers to mapping ${String(id)}, which is missing`);
    const filename = this.#string(source, mapping.filename);
    const buildId = this.#string(source, mapping.buildId);
    const flags = [
      mapping.hasFunctions,
      mapping.hasFilenames,
      mapping.hasLineNumbers,
      mapping.hasInlineFrames,
    ]
      .map((flag) => (flag ? 1 : 0))
      .join('');
    const key = `${String(mapping.memoryStart)}|${String(mapping.memoryLimit)}|${String(mapping.fileOffset)}|${filename}|${buildId}|${flags}`;
    let merged = this.#mappingIds.get(key);
    if (merged === undefined) {
      merged = this.#profile.mapping.length + 1;
      this.#profile.mapping.push(
        new Mapping({
          id: merged,
          memoryStart: mapping.memoryStart,
          memoryLimit: mapping.memoryLimit,
          fileOffset: mapping.fileOffset,
          filename,
          buildId,
          hasFunctions: mapping.hasFunctions,
          hasFilenames: mapping.hasFilenames,
          hasLineNumbers: mapping.hasLineNumbers,
          hasInlineFrames: mapping.hasInlineFrames,
        }),
      );
      this.#mappingIds.set(key, merged);
    }
    source.mappingIds.set(String(id), merged);
    return merged;
  }

  /**
   * The merged profile. With nothing added it is empty but valid: the sample types given to the
   * constructor (or none), no samples.
   */
  result(): Profile {
    const profile = this.#profile;
    profile.sample = [...this.#samples.values()].map(
      (merged) => new Sample({ locationId: merged.locationId, label: merged.label, value: merged.value }),
    );
    profile.comment = [...this.#comments];
    if (this.#start !== undefined && this.#end !== undefined) {
      profile.timeNanos = numeric(this.#start);
      profile.durationNanos = numeric(this.#end - this.#start);
    }
    return profile;
  }
}

/**
 * `profiles` merged into one (see the module comment), keeping only samples whose string labels
 * pass `filter`. All must have the same sample types, else a SampleTypeMismatchError is thrown.
 * With no profiles the result is an empty profile without sample types.
 */
export function mergeProfiles(profiles: readonly Profile[], filter?: SampleLabelFilter): Profile {
  const merger = new ProfileMerger();
  for (const profile of profiles) merger.add(profile, filter);
  return merger.result();
}
