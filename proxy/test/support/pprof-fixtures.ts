// Hand-built pprof profiles for tests, made with pprof-format the way profilers make them: one
// string table, functions, locations and samples referring to each other by id. `idBase` and
// `reverse` lay the same content out with other ids and another order, so a merge that matched by
// id instead of by content would show it.
import { gzipSync } from 'node:zlib';
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, ValueType } from 'pprof-format';
import type { ProfileUpload } from '../../src/profiling/upload.ts';

const WALL_TYPES: readonly (readonly [string, string])[] = [
  ['samples', 'count'],
  ['wall', 'nanoseconds'],
  ['cpu', 'nanoseconds'],
];
export const HEAP_TYPES: readonly (readonly [string, string])[] = [
  ['objects', 'count'],
  ['space', 'bytes'],
];

export interface FixtureSample {
  /** Function names, leaf first. */
  readonly stack: readonly string[];
  readonly values: readonly (number | bigint)[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly numLabels?: Readonly<Record<string, number>>;
}

export interface FixtureOptions {
  readonly sampleTypes?: readonly (readonly [string, string])[];
  readonly samples: readonly FixtureSample[];
  /** Epoch nanoseconds of the profile's start. */
  readonly timeNanos?: bigint;
  readonly durationNanos?: bigint;
  /** First id of functions and locations (default 1). */
  readonly idBase?: number;
  /** Declare functions and locations in reverse order, and put unused strings first. */
  readonly reverse?: boolean;
}

const FILE = '/srv/app/handlers.js';

export function buildProfile(options: FixtureOptions): Profile {
  const profile = new Profile();
  const strings = profile.stringTable;
  if (options.reverse === true) {
    strings.dedup('unused string');
    strings.dedup('another unused string');
  }
  const base = options.idBase ?? 1;
  profile.sampleType = (options.sampleTypes ?? WALL_TYPES).map(
    ([type, unit]) => new ValueType({ type: strings.dedup(type), unit: strings.dedup(unit) }),
  );
  let names = [...new Set(options.samples.flatMap((sample) => sample.stack))];
  if (options.reverse === true) names = names.reverse();
  const ids = new Map<string, number>();
  names.forEach((name, i) => {
    const id = base + i * 3;
    ids.set(name, id);
    profile.function.push(
      new PprofFunction({
        id,
        name: strings.dedup(name),
        systemName: strings.dedup(name),
        filename: strings.dedup(FILE),
      }),
    );
    // One location per function, with the function's own id: what @datadog/pprof does too.
    profile.location.push(new Location({ id, line: [new Line({ functionId: id, line: 10 + name.length })] }));
  });
  profile.sample = options.samples.map(
    (sample) =>
      new Sample({
        locationId: sample.stack.map((name) => ids.get(name) ?? 0),
        value: [...sample.values],
        label: [
          ...Object.entries(sample.labels ?? {}).map(
            ([key, value]) => new Label({ key: strings.dedup(key), str: strings.dedup(value) }),
          ),
          ...Object.entries(sample.numLabels ?? {}).map(
            ([key, value]) =>
              new Label({ key: strings.dedup(key), num: value, numUnit: strings.dedup('bytes') }),
          ),
        ],
      }),
  );
  profile.timeNanos = options.timeNanos ?? 1_700_000_000_000_000_000n;
  profile.durationNanos = options.durationNanos ?? 10_000_000_000n;
  profile.periodType = new ValueType({ type: strings.dedup('wall'), unit: strings.dedup('nanoseconds') });
  profile.period = 10_000_000;
  return profile;
}

export function gzipped(profile: Profile): Uint8Array {
  return new Uint8Array(gzipSync(profile.encode()));
}

export function upload(
  applicationName: string,
  tags: Readonly<Record<string, string>>,
  fromSeconds: number,
  untilSeconds: number,
  body: Uint8Array,
): ProfileUpload {
  return {
    applicationName,
    tags,
    from: new Date(fromSeconds * 1000),
    until: new Date(untilSeconds * 1000),
    sampleRate: 100,
    spyName: 'nodespy',
    body,
  };
}
