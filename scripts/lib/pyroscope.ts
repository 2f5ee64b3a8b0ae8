// Profiles from Pyroscope's query API (Connect protocol, JSON encoding): a unary call is
// `POST /querier.v1.QuerierService/<Method>` with the request message as JSON (protobuf JSON
// names: `profileTypeID`, `labelSelector`, `spanSelector`; times in ms since the epoch) and
// answers the response message as JSON (64-bit integers as strings), or a Connect error
// `{"code","message"}` with a 4xx/5xx status.
import { DecodeError, HttpStatusError } from './errors.ts';
import { baseUrl, httpRequest, splitCredentials } from './http.ts';
import type { ProfileSource, SpanProfile, TimeWindow } from './sources.ts';

/** The Node wall profiler's wall-time profile, the one Grafana's "Profiles for this span" opens. */
export const DEFAULT_PROFILE_TYPE = 'wall:wall:nanoseconds:wall:nanoseconds';

const PROFILE_TYPE = /^[^:\s]+:[^:\s]+:[^:\s]+:[^:\s]+:[^:\s]+$/;

export function isProfileTypeId(value: string): boolean {
  return PROFILE_TYPE.test(value);
}

/** `{service_name="…"}` with the value escaped as PromQL-style selectors want. */
function serviceSelector(service: string): string {
  return `{service_name="${service.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"}`;
}

interface LabelValuesResponse {
  names?: string[];
}

interface ProfileTypesResponse {
  profileTypes?: { ID?: string }[];
}

interface SelectMergeSpanProfileResponse {
  flamegraph?: { total?: string | number };
}

export function createPyroscopeSource(
  rawUrl: string,
  options: { profileType?: string | undefined; tenant?: string | undefined } = {},
): ProfileSource {
  const { url, headers } = splitCredentials(rawUrl);
  const base = baseUrl(url);
  const profileType = options.profileType ?? DEFAULT_PROFILE_TYPE;
  const requestHeaders: Record<string, string> = { 'content-type': 'application/json', ...headers };
  if (options.tenant !== undefined) requestHeaders['x-scope-orgid'] = options.tenant;
  let typeChecked = false;

  const call = async <T>(method: string, message: unknown): Promise<T> => {
    const target = `${base}/querier.v1.QuerierService/${method}`;
    const response = await httpRequest(target, {
      method: 'POST',
      headers: requestHeaders,
      body: JSON.stringify(message),
    });
    const text = await response.text();
    if (!response.ok) {
      let detail = text.trim().slice(0, 200);
      try {
        const { code, message: reason } = JSON.parse(text) as { code?: string; message?: string };
        if (code !== undefined) detail = `${code}: ${reason ?? ''}`;
      } catch {
        // Not a Connect error body: show it as it is.
      }
      throw new HttpStatusError(
        response.status,
        `Pyroscope ${method} answered ${response.status}: ${detail}`,
      );
    }
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new DecodeError(`Pyroscope ${method} answered something other than JSON`, { cause: error });
    }
  };

  // A span profile of a type Pyroscope does not have is empty, which would read as "no samples";
  // checking the type once turns that into the real reason.
  const checkProfileType = async (window: TimeWindow): Promise<void> => {
    if (typeChecked) return;
    const answer = await call<ProfileTypesResponse>('ProfileTypes', {
      start: window.from,
      end: window.until,
    });
    const ids = (answer.profileTypes ?? []).flatMap((t) => t.ID ?? []);
    if (!ids.includes(profileType)) {
      throw new DecodeError(
        `Pyroscope has no ${profileType} profiles in this time range (it has: ${ids.join(', ') || 'none'}); ` +
          'pass --profile-type',
      );
    }
    typeChecked = true;
  };

  return {
    description: `Pyroscope at ${base}`,
    async labelValues(service, labels, window) {
      const values = await Promise.all(
        labels.map(async (name) => {
          const answer = await call<LabelValuesResponse>('LabelValues', {
            name,
            matchers: [serviceSelector(service)],
            start: window.from,
            end: window.until,
          });
          return [name, [...(answer.names ?? [])].sort()] as const;
        }),
      );
      return new Map(values);
    },
    spanIdsWithSamples() {
      // Pyroscope has no API that lists span ids; the caller tries spans one by one.
      return Promise.resolve(undefined);
    },
    async spanProfile(service, spanId, window): Promise<SpanProfile> {
      await checkProfileType(window);
      const answer = await call<SelectMergeSpanProfileResponse>('SelectMergeSpanProfile', {
        profileTypeID: profileType,
        labelSelector: serviceSelector(service),
        spanSelector: [spanId],
        start: window.from,
        end: window.until,
        maxNodes: 16,
      });
      return {
        samples: undefined,
        total: Number(answer.flamegraph?.total ?? 0),
        unit: profileType.split(':')[2] ?? '',
      };
    },
  };
}
