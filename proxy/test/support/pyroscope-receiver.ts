// A real Pyroscope ingest endpoint for tests: a node:http server on 127.0.0.1 that accepts
// `POST /ingest?name=app{k=v,...}&from=&until=&format=pprof&spyName=&sampleRate=` the way
// @pyroscope/nodejs 0.6.4 sends it (a gzipped pprof body as application/octet-stream), decodes the profile with `pprof-format`
// and keeps every sample with its stack and string labels resolved, plus the series name, tags,
// auth header and tenant of the upload.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { serveOnLoopback } from './loopback-server.ts';

export interface DecodedSample {
  /** Function names, leaf first. */
  readonly stack: readonly string[];
  /** One value per sample type, keyed `type/unit` (e.g. `cpu/nanoseconds`). */
  readonly values: Readonly<Record<string, number>>;
  /** String labels (the only kind Pyroscope turns into series or span labels). */
  readonly labels: Readonly<Record<string, string>>;
  /** Numeric labels, kept apart: Pyroscope ignores them. */
  readonly numLabels: Readonly<Record<string, number>>;
}

export interface ReceivedUpload {
  readonly method: string;
  readonly path: string;
  /** The raw `name` parameter: `app{k=v,...}`. */
  readonly name: string;
  /** The application name before `{`. */
  readonly appName: string;
  /** The tags between `{` and `}`. */
  readonly tags: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  readonly from: number;
  readonly until: number;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  /** `X-Scope-OrgID`. */
  readonly tenant: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly receivedAt: number;
  /** `type/unit` of each sample type, in order. */
  readonly sampleTypes: readonly string[];
  /** `wall` when the profile has a wall sample type (Pyroscope stores it under that name), else `heap`/`other`. */
  readonly kind: 'wall' | 'heap' | 'other';
  readonly samples: readonly DecodedSample[];
  readonly profile: Profile;
}

export interface PyroscopeReceiver {
  readonly url: string;
  readonly port: number;
  /** Every decoded upload, in arrival order. */
  readonly uploads: ReceivedUpload[];
  /** Requests that could not be decoded, with the reason. */
  readonly rejected: { url: string; reason: string }[];
  /** Resolves with the uploads once at least `count` (matching `where`) have arrived. */
  waitForUploads(
    count: number,
    options?: { where?: (upload: ReceivedUpload) => boolean; timeoutMs?: number },
  ): Promise<ReceivedUpload[]>;
  /** Answer every upload with this status from now on (default 200). */
  setStatus(status: number): void;
  clear(): void;
  close(): Promise<void>;
}

/** `app{a=b,c=d}` → `{ appName: 'app', tags: { a: 'b', c: 'd' } }`. */
export function parseSeriesName(name: string): { appName: string; tags: Record<string, string> } {
  const open = name.indexOf('{');
  if (open === -1) return { appName: name, tags: {} };
  if (!name.endsWith('}')) throw new Error(`malformed series name ${JSON.stringify(name)}`);
  const tags: Record<string, string> = {};
  for (const pair of name.slice(open + 1, -1).split(',')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`malformed tag ${JSON.stringify(pair)} in ${JSON.stringify(name)}`);
    tags[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { appName: name.slice(0, open), tags };
}

/** Decodes a (possibly gzipped) pprof body into samples with resolved stacks and labels. */
export function decodeProfile(body: Uint8Array): {
  profile: Profile;
  sampleTypes: string[];
  samples: DecodedSample[];
} {
  const raw = body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body;
  const profile = Profile.decode(raw);
  const strings = profile.stringTable.strings;
  const str = (index: number | bigint): string => strings[Number(index)] ?? '';
  const sampleTypes = profile.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`);
  const functionNames = new Map<string, string>();
  for (const fn of profile.function) functionNames.set(String(fn.id), str(fn.name));
  const locationNames = new Map<string, string[]>();
  for (const location of profile.location) {
    // Lines of one location are innermost first (inlined frames).
    locationNames.set(
      String(location.id),
      location.line.map((line) => functionNames.get(String(line.functionId)) ?? '?'),
    );
  }
  const samples = profile.sample.map((sample): DecodedSample => {
    const stack = sample.locationId.flatMap((id) => locationNames.get(String(id)) ?? ['?']);
    const values: Record<string, number> = {};
    sample.value.forEach((value, i) => {
      values[sampleTypes[i] ?? String(i)] = Number(value);
    });
    const labels: Record<string, string> = {};
    const numLabels: Record<string, number> = {};
    for (const label of sample.label) {
      const key = str(label.key);
      if (Number(label.str) !== 0) labels[key] = str(label.str);
      else numLabels[key] = Number(label.num);
    }
    return { stack, values, labels, numLabels };
  });
  return { profile, sampleTypes, samples };
}

function checkContentType(contentType: string | undefined): void {
  // @pyroscope/nodejs 0.6.4 sends the gzipped pprof bytes raw (older SDKs used multipart/form-data).
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== undefined && mediaType !== 'application/octet-stream') {
    throw new Error(`unsupported Content-Type ${mediaType}`);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

interface Waiter {
  check(): void;
  fail(error: Error): void;
}

export async function startPyroscopeReceiver(): Promise<PyroscopeReceiver> {
  const uploads: ReceivedUpload[] = [];
  const rejected: { url: string; reason: string }[] = [];
  const waiters = new Set<Waiter>();
  let status = 200;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://receiver');
    const reject = (code: number, reason: string): void => {
      rejected.push({ url: req.url ?? '', reason });
      res.writeHead(code, { 'content-type': 'text/plain' }).end(reason);
    };
    if (url.pathname !== '/ingest') {
      reject(404, `no route for ${url.pathname}`);
      return;
    }
    if (req.method !== 'POST') {
      reject(405, 'only POST is accepted');
      return;
    }
    const query = Object.fromEntries(url.searchParams);
    const name = query.name;
    if (name === undefined || name === '') {
      reject(400, 'missing name');
      return;
    }
    let decoded: ReturnType<typeof decodeProfile>;
    let series: ReturnType<typeof parseSeriesName>;
    try {
      series = parseSeriesName(name);
      checkContentType(req.headers['content-type']);
      decoded = decodeProfile(Buffer.concat(chunks));
    } catch (error) {
      reject(400, error instanceof Error ? error.message : String(error));
      return;
    }
    const kind = decoded.sampleTypes.some((t) => t.startsWith('wall/'))
      ? 'wall'
      : decoded.sampleTypes.some((t) => t.startsWith('inuse_') || t.startsWith('space/'))
        ? 'heap'
        : 'other';
    if (status >= 200 && status < 300) {
      uploads.push({
        method: req.method,
        path: url.pathname,
        name,
        appName: series.appName,
        tags: series.tags,
        query,
        from: Number(query.from),
        until: Number(query.until),
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        tenant: headerValue(req.headers['x-scope-orgid']),
        headers: req.headers,
        receivedAt: Date.now(),
        sampleTypes: decoded.sampleTypes,
        kind,
        samples: decoded.samples,
        profile: decoded.profile,
      });
      for (const waiter of waiters) waiter.check();
    }
    res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? '' : 'rejected by test');
  };

  const server = await serveOnLoopback(handle);

  const describe = (): string =>
    `${uploads.length} upload(s) [${uploads.map((u) => `${u.kind}:${u.samples.length}`).join(', ')}]` +
    (rejected.length > 0 ? `, rejected: ${rejected.map((r) => r.reason).join('; ')}` : '');

  return {
    url: server.url,
    port: server.port,
    uploads,
    rejected,
    waitForUploads(count, options = {}) {
      const { where, timeoutMs = 10_000 } = options;
      return new Promise((resolve, reject) => {
        const matching = (): ReceivedUpload[] => (where === undefined ? [...uploads] : uploads.filter(where));
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${count} upload(s); ${describe()}`));
        }, timeoutMs);
        const waiter: Waiter = {
          check() {
            const found = matching();
            if (found.length < count) return;
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve(found);
          },
          fail(error) {
            clearTimeout(timer);
            waiters.delete(waiter);
            reject(error);
          },
        };
        waiters.add(waiter);
        waiter.check();
      });
    },
    setStatus(next) {
      status = next;
    },
    clear() {
      uploads.length = 0;
      rejected.length = 0;
    },
    close() {
      for (const waiter of waiters) waiter.fail(new Error(`Pyroscope receiver closed; ${describe()}`));
      return server.close();
    },
  };
}
