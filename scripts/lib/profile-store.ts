// Profiles from the proxy's local store, for the embedded default (no PYROSCOPE_SERVER_ADDRESS):
// `GET <admin>/debug/pprof?service_name=&span_id=…` answers one gzipped pprof of the matching
// samples, with their labels (handler, user_agent, db_operation, span_id, …) on each sample.
// Times go as RFC 3339; the store keeps a profile when its upload window overlaps [from, until].
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { DecodeError, HttpStatusError, UnreachableError, errorMessage } from './errors.ts';
import { baseUrl, httpRequest, networkReason } from './http.ts';
import type { ProfileSource, SpanProfile, TimeWindow } from './sources.ts';

interface StoreSample {
  readonly labels: Readonly<Record<string, string>>;
  /** One value per sample type. */
  readonly values: readonly number[];
}

interface StoreProfile {
  /** `type/unit` per sample type, e.g. `wall/nanoseconds`. */
  readonly sampleTypes: readonly string[];
  readonly samples: readonly StoreSample[];
}

/** A pprof body (gzipped or not) as samples with their string labels resolved. */
function decodePprof(body: Uint8Array): StoreProfile {
  let profile: Profile;
  try {
    const raw = body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body;
    profile = Profile.decode(raw);
  } catch (error) {
    throw new DecodeError(`not a pprof profile: ${errorMessage(error)}`, { cause: error });
  }
  const strings = profile.stringTable.strings;
  const str = (index: number | bigint): string => strings[Number(index)] ?? '';
  return {
    sampleTypes: profile.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`),
    samples: profile.sample.map((sample) => {
      const labels: Record<string, string> = {};
      for (const label of sample.label) {
        if (Number(label.str) !== 0) labels[str(label.key)] = str(label.str);
      }
      return { labels, values: sample.value.map(Number) };
    }),
  };
}

/** The wall-time column if there is one (what Grafana shows for a Node span), else the last. */
function mainValue(profile: StoreProfile): { index: number; unit: string } {
  const wall = profile.sampleTypes.findIndex((t) => t.startsWith('wall/'));
  const index = wall === -1 ? profile.sampleTypes.length - 1 : wall;
  return { index, unit: profile.sampleTypes[index]?.split('/')[1] ?? '' };
}

function timeParams(window: TimeWindow): { from: string; until: string } {
  return { from: new Date(window.from).toISOString(), until: new Date(window.until).toISOString() };
}

export function createProfileStoreSource(adminUrl: string): ProfileSource {
  const endpoint = `${baseUrl(adminUrl)}/debug/pprof`;
  const query = async (params: Record<string, string>): Promise<StoreProfile> => {
    const target = `${endpoint}?${new URLSearchParams(params).toString()}`;
    let response: Response;
    try {
      response = await httpRequest(target);
    } catch (error) {
      if (!(error instanceof UnreachableError)) throw error;
      throw new UnreachableError(
        target,
        `cannot reach the admin port at ${endpoint}: ${networkReason(error.cause, 10_000)}; ` +
          `is --admin the proxy's admin port (ADMIN_HOST:ADMIN_PORT)?`,
        { cause: error },
      );
    }
    const body = new Uint8Array(await response.arrayBuffer());
    const text = (): string => Buffer.from(body).toString('utf8').trim().slice(0, 200);
    if (response.status === 404) {
      throw new HttpStatusError(
        404,
        `${endpoint} answered 404 ${text()}: no local profile store there. Is --admin the proxy's ` +
          'admin port, and PYROSCOPE_SERVER_ADDRESS unset? With a Pyroscope, pass --pyroscope URL',
      );
    }
    if (!response.ok) {
      throw new HttpStatusError(response.status, `GET ${target} answered ${response.status}: ${text()}`);
    }
    return decodePprof(body);
  };
  return {
    description: `the local store at ${endpoint}`,
    async labelValues(service, labels, window) {
      const profile = await query({ service_name: service, ...timeParams(window) });
      const values = new Map<string, Set<string>>(labels.map((l) => [l, new Set()]));
      for (const sample of profile.samples) {
        for (const label of labels) {
          const value = sample.labels[label];
          if (value !== undefined) values.get(label)?.add(value);
        }
      }
      return new Map([...values].map(([label, set]) => [label, [...set].sort()]));
    },
    async spanIdsWithSamples(service, window) {
      const profile = await query({ service_name: service, ...timeParams(window) });
      return new Set(profile.samples.flatMap((s) => s.labels.span_id ?? []));
    },
    async spanProfile(service, spanId, window): Promise<SpanProfile> {
      const profile = await query({ service_name: service, span_id: spanId, ...timeParams(window) });
      const { index, unit } = mainValue(profile);
      return {
        samples: profile.samples.length,
        total: profile.samples.reduce((sum, s) => sum + (s.values[index] ?? 0), 0),
        unit,
      };
    },
  };
}
