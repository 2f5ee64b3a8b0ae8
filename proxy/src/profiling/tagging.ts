// The pod's tagging endpoint: every profile of the pod passes here on its way out, the backend's
// over HTTP (`POST /ingest` on the admin port, Pyroscope's ingest API as @pyroscope/nodejs speaks
// it) and the proxy's own in-process. Three steps, in order:
//   1. read it: the query string and a (gzipped) pprof body, refused whole when malformed;
//   2. police it: series tags and sample labels outside the label scheme are dropped, `trace_id`
//      unless ENABLE_TRACE_ID_LABEL, span and trace ids that are not hex; every drop counted;
//   3. tag it: the pod's shared tags (namespace, environment, version, pod, namespace, node) added
//      to the series name, overriding what the sender claimed, then handed to the sink (the
//      forwarder to Pyroscope, or the local store).
// Credentials never come from the sender: the sink adds the sidecar's own.
import { gzipSync } from 'node:zlib';
import type { Profile } from 'pprof-format';
import { SpanscopeError } from '../errors.ts';
import { LABEL_NAMES, SERIES_LABEL_NAMES, isSpanId, isTraceId } from '../labels.ts';
import { ProfileFormatError, decodePprof } from './pprof-merge.ts';
import type { ProfileUpload } from './upload.ts';

/** Pyroscope's own per-profile limit; bigger bodies are answered 413 before they are read whole. */
export const MAX_INGEST_BYTES = 4 * 1024 * 1024;
const DEFAULT_SAMPLE_RATE = 100;

/** Series tags the sidecar sets for every profile of the pod. */
export const SHARED_TAG_NAMES = [
  'service_namespace',
  'environment',
  'version',
  'k8s_pod_name',
  'k8s_namespace_name',
  'k8s_node_name',
] as const;
export type SharedTagName = (typeof SHARED_TAG_NAMES)[number];

/** The series tags @pyroscope/nodejs adds by itself (Pyroscope turns the dots into `_`). */
export const SDK_TAG_NAMES = ['process.runtime.name', 'process.runtime.version'] as const;

const SERIES_TAGS: ReadonlySet<string> = new Set<string>([
  ...SERIES_LABEL_NAMES,
  ...SHARED_TAG_NAMES,
  ...SDK_TAG_NAMES,
]);
const SAMPLE_LABELS: ReadonlySet<string> = new Set<string>(LABEL_NAMES);
const SERIES_DELIMITERS = /[{},=]/g;

export type IngestStatus = 400 | 413;

/** A request the endpoint refuses; nothing of it is forwarded or stored. */
export class IngestError extends SpanscopeError {
  readonly status: IngestStatus;
  constructor(status: IngestStatus, message: string) {
    super('SPANSCOPE_ERR_INGEST', message);
    this.name = 'IngestError';
    this.status = status;
  }
}

/** A profile read from the wire (or handed over in-process), decoded once. */
export interface IngestedProfile {
  readonly upload: ProfileUpload;
  readonly profile: Profile;
}

export interface LabelDrop {
  readonly label: string;
  /** `series`: a tag of the series name; `sample`: labels on that many samples. */
  readonly where: 'series' | 'sample';
  readonly count: number;
}

export interface TaggingPolicy {
  /** Added to every series name; the sidecar's values win over the sender's (see sharedTagsFrom). */
  readonly sharedTags: Readonly<Partial<Record<SharedTagName, string>>>;
  /** ENABLE_TRACE_ID_LABEL: keep `trace_id` sample labels. */
  readonly traceIdLabel: boolean;
}

/** `app{a=b,c=d}` → application name and tags; an IngestError when it is not that shape. */
export function parseSeriesName(name: string): { applicationName: string; tags: Record<string, string> } {
  const open = name.indexOf('{');
  const applicationName = (open === -1 ? name : name.slice(0, open)).trim();
  if (applicationName === '' || /[{},=\s]/.test(applicationName)) {
    throw new IngestError(400, `name=${JSON.stringify(name)}: expected app{key=value,...}`);
  }
  const tags: Record<string, string> = {};
  if (open === -1) return { applicationName, tags };
  if (!name.endsWith('}')) throw new IngestError(400, `name=${JSON.stringify(name)}: missing closing }`);
  for (const pair of name.slice(open + 1, -1).split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new IngestError(400, `name=${JSON.stringify(name)}: tag ${JSON.stringify(pair)} has no key`);
    tags[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return { applicationName, tags };
}

/** Unix time as Pyroscope reads it: seconds, or ms / µs / ns told apart by magnitude. */
function parseTime(name: string, raw: string | null, fallback: Date): Date {
  if (raw === null || raw === '') return fallback;
  if (!/^\d{1,20}$/.test(raw))
    throw new IngestError(400, `${name}=${JSON.stringify(raw)}: expected unix time`);
  let value = Number(raw);
  while (value > 1e11) value /= 1000;
  return new Date(value * 1000);
}

/** Gunzips when gzipped and decodes; an IngestError(400) unless it is a pprof profile. */
export function decodeIngestBody(body: Uint8Array): Profile {
  try {
    return decodePprof(body);
  } catch (error) {
    if (error instanceof ProfileFormatError)
      throw new IngestError(400, `body is not pprof: ${error.message}`);
    throw error;
  }
}

/** Reads `POST /ingest?name=&from=&until=&format=pprof&sampleRate=&spyName=` and its body. */
export function readIngestRequest(
  query: URLSearchParams,
  contentType: string | undefined,
  body: Uint8Array,
  now: Date = new Date(),
): IngestedProfile {
  const format = query.get('format') ?? 'pprof';
  if (format !== 'pprof') {
    throw new IngestError(400, `format=${JSON.stringify(format)}: only pprof is accepted`);
  }
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType === 'multipart/form-data') {
    throw new IngestError(
      400,
      'multipart uploads are not accepted: send the gzipped pprof as the body (as @pyroscope/nodejs does)',
    );
  }
  const name = query.get('name');
  if (name === null || name === '')
    throw new IngestError(400, 'name is missing: expected app{key=value,...}');
  const { applicationName, tags } = parseSeriesName(name);
  const until = parseTime('until', query.get('until'), now);
  const from = parseTime('from', query.get('from'), until);
  const rateRaw = query.get('sampleRate');
  const sampleRate = rateRaw === null || rateRaw === '' ? DEFAULT_SAMPLE_RATE : Number(rateRaw);
  if (!Number.isFinite(sampleRate) || sampleRate <= 0) {
    throw new IngestError(400, `sampleRate=${JSON.stringify(rateRaw)}: expected a positive number`);
  }
  const profile = decodeIngestBody(body);
  return {
    upload: {
      applicationName,
      tags,
      from,
      until,
      sampleRate,
      spyName: query.get('spyName') ?? 'unknown',
      body,
    },
    profile,
  };
}

/** The in-process path: the proxy's own profile, read as if it had come over the wire. */
export function ingestLocal(upload: ProfileUpload): IngestedProfile {
  return { upload, profile: decodeIngestBody(upload.body) };
}

function sampleLabelAllowed(policy: TaggingPolicy, name: string, value: string): boolean {
  if (!SAMPLE_LABELS.has(name)) return false;
  if (name === 'trace_id' && !policy.traceIdLabel) return false;
  if (name === 'span_id') return isSpanId(value);
  if (name === 'trace_id') return isTraceId(value);
  return true;
}

/**
 * Steps 2 and 3: the upload policed and tagged, with every drop. The body is re-encoded only
 * when a sample label went; otherwise the sender's bytes travel on unchanged.
 */
export function policeAndTag(
  ingested: IngestedProfile,
  policy: TaggingPolicy,
): { upload: ProfileUpload; drops: LabelDrop[] } {
  const { upload, profile } = ingested;
  const drops: LabelDrop[] = [];
  const tags: Record<string, string> = {};
  for (const [name, value] of Object.entries(upload.tags)) {
    if (SERIES_TAGS.has(name) && value !== '') tags[name] = value;
    else drops.push({ label: name, where: 'series', count: 1 });
  }
  for (const [name, value] of Object.entries(policy.sharedTags)) {
    tags[name] = value;
  }

  const strings = profile.stringTable.strings;
  const sampleDrops = new Map<string, number>();
  for (const sample of profile.sample) {
    if (sample.label.length === 0) continue;
    const kept = sample.label.filter((label) => {
      const name = strings[Number(label.key)] ?? '';
      const value = strings[Number(label.str)] ?? '';
      if (sampleLabelAllowed(policy, name, value)) return true;
      sampleDrops.set(name, (sampleDrops.get(name) ?? 0) + 1);
      return false;
    });
    if (kept.length !== sample.label.length) sample.label = kept;
  }
  for (const [label, count] of sampleDrops) drops.push({ label, where: 'sample', count });
  const body = sampleDrops.size === 0 ? upload.body : gzipSync(profile.encode());
  return { upload: { ...upload, tags, body }, drops };
}

/**
 * The shared tags from the OpenTelemetry resource and the Downward API variables: the same values
 * the pod's spans carry, under Pyroscope's label-name rule.
 */
export function sharedTagsFrom(
  resourceAttributes: Readonly<Record<string, string>>,
  env: {
    readonly POD_NAME?: string | undefined;
    readonly POD_NAMESPACE?: string | undefined;
    readonly NODE_NAME?: string | undefined;
  },
): Partial<Record<SharedTagName, string>> {
  const candidates: Record<SharedTagName, string | undefined> = {
    service_namespace: resourceAttributes['service.namespace'],
    environment:
      resourceAttributes['deployment.environment.name'] ?? resourceAttributes['deployment.environment'],
    version: resourceAttributes['service.version'],
    k8s_pod_name: env.POD_NAME ?? resourceAttributes['k8s.pod.name'],
    k8s_namespace_name: env.POD_NAMESPACE ?? resourceAttributes['k8s.namespace.name'],
    k8s_node_name: env.NODE_NAME ?? resourceAttributes['k8s.node.name'],
  };
  const tags: Partial<Record<SharedTagName, string>> = {};
  for (const name of SHARED_TAG_NAMES) {
    const value = candidates[name]?.trim();
    if (value !== undefined && value !== '') tags[name] = value.replace(SERIES_DELIMITERS, '_');
  }
  return tags;
}
