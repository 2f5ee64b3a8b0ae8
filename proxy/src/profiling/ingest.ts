// Pushing one profile to Pyroscope's `/ingest`, on the wire exactly as @pyroscope/nodejs 0.6.4
// sends it (checked against the SDK in profiler.test.ts): `POST {server}/ingest?format=pprof&from=
// &name=app{tags}&spyName=nodespy&until=&sampleRate=`, a gzipped pprof body as
// application/octet-stream, `Authorization: Bearer|Basic`, `X-Scope-OrgID`. Function names get
// the SDK's `./path:name:line` form so flamegraphs look like any other Node.js service's.
import type * as Pprof from '@datadog/pprof';
import type { ProfileUpload } from './upload.ts';

/** A collected profile, as @datadog/pprof builds it (its own pprof-format copy: CommonJS). */
type Profile = ReturnType<typeof Pprof.time.stop>;

export interface IngestTarget {
  readonly serverAddress: string;
  readonly applicationName: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly authToken?: string | undefined;
  readonly basicAuth?: { readonly user: string; readonly password: string } | undefined;
  readonly tenantId?: string | undefined;
  readonly timeoutMs: number;
}

export interface IngestWindow {
  readonly from: Date;
  readonly until: Date;
  readonly sampleRate: number;
  /** Default `nodespy`; a relayed upload keeps its sender's. */
  readonly spyName?: string;
}

/** `app{k=v,...}`: the series name the ingest API expects. */
export function seriesName(applicationName: string, tags: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(tags).map(([key, value]) => `${key}=${value}`);
  return `${applicationName}{${pairs.join(',')}}`;
}

export function ingestUrl(target: IngestTarget, window: IngestWindow): string {
  const url = new URL(`${target.serverAddress}/ingest`);
  url.searchParams.append('format', 'pprof');
  url.searchParams.append('from', String(Math.floor(window.from.getTime() / 1000)));
  url.searchParams.append('name', seriesName(target.applicationName, target.tags));
  url.searchParams.append('spyName', window.spyName ?? 'nodespy');
  url.searchParams.append('until', String(Math.floor(window.until.getTime() / 1000)));
  url.searchParams.append('sampleRate', String(window.sampleRate));
  return url.toString();
}

export function ingestHeaders(target: IngestTarget): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (target.authToken !== undefined) {
    headers.authorization = `Bearer ${target.authToken}`;
  } else if (target.basicAuth !== undefined) {
    const { user, password } = target.basicAuth;
    headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }
  if (target.tenantId !== undefined) headers['x-scope-orgid'] = target.tenantId;
  return headers;
}

export interface PrepareOptions {
  /**
   * ENABLE_DETAILED_STACK_TRACES. True: `/full/path/file.ts:function:line` (Node 24 runs the
   * TypeScript itself, type stripping keeps every position, so these are the .ts lines). False:
   * the bare function name, file and line cleared, so a function's samples merge into one frame.
   */
  readonly detailed?: boolean;
  /** Stripped from paths in the SDK's `./path` form; unused when `detailed`. */
  readonly cwd?: string;
  /**
   * The process runs stripped JavaScript (launch-settings.ts): frames in `built` name the `.ts`
   * file in `source` it was stripped from, whose lines are the same.
   */
  readonly strippedFrom?: { readonly built: string; readonly source: string } | undefined;
}

/** Go sample-type names, and frame names in the form ENABLE_DETAILED_STACK_TRACES asks for. */
export function prepareProfile(profile: Profile, options: PrepareOptions = {}): Profile {
  const detailed = options.detailed ?? true;
  const strings = profile.stringTable.strings;
  for (const valueType of profile.sampleType) {
    if (strings[Number(valueType.type)] === 'sample') valueType.type = profile.stringTable.dedup('samples');
  }
  const renamed = new Set<unknown>();
  for (const location of profile.location) {
    for (const line of location.line) {
      const fn = profile.function[Number(line.functionId) - 1];
      if (fn === undefined) continue;
      if (!detailed) {
        line.line = 0;
        if (renamed.has(fn)) continue;
        fn.filename = 0;
        fn.startLine = 0;
        renamed.add(fn);
        continue;
      }
      if (renamed.has(fn)) continue;
      const name = strings[Number(fn.name)] ?? '';
      if (name.includes(':') && !name.startsWith('(anonymous')) continue;
      let file = strings[Number(fn.filename)] ?? '';
      if (file.startsWith('file://')) file = file.slice('file://'.length);
      const stripped = options.strippedFrom;
      if (stripped !== undefined && file.startsWith(stripped.built) && file.endsWith('.js')) {
        file = `${stripped.source}${file.slice(stripped.built.length, -'.js'.length)}.ts`;
      }
      if (options.cwd !== undefined) file = file.replace(options.cwd, '.');
      fn.name = profile.stringTable.dedup(`${file}:${name}:${String(line.line)}`);
      renamed.add(fn);
    }
  }
  return profile;
}

/** `POST {server}/ingest?...` with `upload`; rejects with a short reason like `pushProfile`. */
export function pushUpload(target: IngestTarget, upload: ProfileUpload): Promise<void> {
  return pushProfile(
    { ...target, applicationName: upload.applicationName, tags: upload.tags },
    { from: upload.from, until: upload.until, sampleRate: upload.sampleRate, spyName: upload.spyName },
    upload.body,
  );
}

/** POSTs an encoded profile; rejects with a short reason on a network error, timeout or non-2xx answer. */
export async function pushProfile(
  target: IngestTarget,
  window: IngestWindow,
  body: Uint8Array,
): Promise<void> {
  const response = await fetch(ingestUrl(target, window), {
    method: 'POST',
    headers: ingestHeaders(target),
    body,
    signal: AbortSignal.timeout(target.timeoutMs),
  });
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    const detail = text.trim().slice(0, 200);
    throw new Error(`HTTP ${response.status}${detail === '' ? '' : `: ${detail}`}`);
  }
}
