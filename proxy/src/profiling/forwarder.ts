// The tagging endpoint's way out to Pyroscope: profiles wait in a FIFO whose bodies are capped in
// bytes and are sent one at a time with the sidecar's credentials and tenant. Pyroscope being down
// or slow may cost profiles, never memory or request latency:
//   - enqueue only appends (the send starts on a later turn); past the byte cap the oldest waiting
//     uploads are dropped, so what reaches Pyroscope after an outage is the most recent history;
//   - 5xx, 429, 408, network errors and timeouts are retried with exponential backoff and jitter,
//     the failed upload staying at the head; other answers (4xx, 3xx) are final: retrying the
//     same bytes with the same credentials cannot succeed, so the upload is dropped as `rejected`;
//   - every send, retry and drop is reported through `onEvent` (the app's counters); a failure
//     streak is logged once, and its end once;
//   - no timer keeps the process alive, except close()'s own deadline, which bounds it.
import type { ProfilerLogger } from './profiler.ts';
import { ingestHeaders, ingestUrl } from './ingest.ts';
import type { IngestTarget } from './ingest.ts';
import type { ProfileUpload } from './upload.ts';

/** Where profiles go, and as whom: PYROSCOPE_SERVER_ADDRESS, _AUTH_TOKEN or _BASIC_AUTH_*, _TENANT_ID. */
export interface ForwardTarget {
  readonly serverAddress: string;
  /** Sent as `Authorization: Bearer`; wins over `basicAuth`. */
  readonly authToken?: string | undefined;
  readonly basicAuth?: { readonly user: string; readonly password: string } | undefined;
  /** Sent as `X-Scope-OrgID`. */
  readonly tenantId?: string | undefined;
}

export interface ForwarderBackoff {
  /** The wait after the first failed attempt of a streak; it doubles with each further failure. */
  readonly initialMs: number;
  /** The wait never grows past this, nor does a 429's Retry-After make it. */
  readonly maxMs: number;
  /**
   * The fraction of each wait taken off at random, 0 to 1 (default 0.5), so sidecars that lost
   * Pyroscope together do not come back in step.
   */
  readonly jitter?: number;
}

/**
 * Why an upload was given up: the byte cap was reached (oldest first), Pyroscope refused it with
 * an answer that retrying cannot change, it failed `maxAttempts` times, or close() reached its
 * deadline (or it came after close()).
 */
export type ForwardDropReason = 'queue_full' | 'rejected' | 'retries_exhausted' | 'shutdown';

/** Why an attempt is retried: no connection, no answer in time (or a 408), a 5xx, a 429. */
export type ForwardRetryReason = 'network' | 'timeout' | 'server_error' | 'throttled';

export type ForwarderEvent =
  | { readonly type: 'sent'; readonly bytes: number; readonly attempts: number }
  | { readonly type: 'retried'; readonly reason: ForwardRetryReason; readonly delayMs: number }
  | { readonly type: 'dropped'; readonly reason: ForwardDropReason; readonly bytes: number };

export interface ForwarderOptions {
  readonly target: ForwardTarget;
  /** The most profile bytes held at once, waiting or being sent. */
  readonly maxQueueBytes: number;
  /** One attempt, from connecting to the end of the answer. */
  readonly requestTimeoutMs: number;
  readonly backoff: ForwarderBackoff;
  /**
   * Attempts per upload before it is dropped as `retries_exhausted` (default: unlimited, the byte
   * cap alone bounds an outage). A finite value keeps one upload that Pyroscope always fails with
   * a 5xx from holding the head of the queue for good.
   */
  readonly maxAttempts?: number;
  /** Told about every send, retry and drop, synchronously; what it throws is ignored. */
  readonly onEvent?: (event: ForwarderEvent) => void;
  readonly logger?: ProfilerLogger;
}

export interface ForwarderStats {
  /** Uploads held: waiting, plus the one being sent. */
  readonly queued: number;
  /** Their body bytes; never above `maxQueueBytes`. */
  readonly queuedBytes: number;
  /** 1 while an attempt is on the wire. */
  readonly inFlight: number;
  readonly sent: number;
  readonly sentBytes: number;
  /** Failed attempts put back to be tried again. */
  readonly retried: number;
  readonly dropped: Readonly<Record<ForwardDropReason, number>>;
  /** From a failed attempt (or a refusal) until the next upload is delivered. */
  readonly failing: boolean;
  /** close() was called: new uploads are dropped as `shutdown`. */
  readonly closed: boolean;
}

export interface Forwarder {
  /** Queues an upload; never blocks, never throws. After close() it is dropped as `shutdown`. */
  enqueue(upload: ProfileUpload): void;
  stats(): ForwarderStats;
  /**
   * Keeps sending what is queued for at most `deadlineMs` milliseconds from now (less when the
   * next retry would come later than that), then aborts the attempt on the wire and drops the
   * rest as `shutdown`. Resolves once nothing is held. Idempotent.
   */
  close(deadlineMs: number): Promise<void>;
}

/**
 * The ingest URL of one upload: `ingestUrl`'s wire format with the upload's own series name,
 * window, sample rate and spy name (a relayed upload keeps its sender's, e.g. `gospy`).
 */
export function uploadIngestUrl(target: ForwardTarget, upload: ProfileUpload): string {
  return ingestUrl(ingestTarget(target, upload, 0), upload);
}

/** `Content-Type`, `Authorization` and `X-Scope-OrgID` as `ingestHeaders` builds them. */
export function uploadIngestHeaders(target: ForwardTarget): Record<string, string> {
  return ingestHeaders(ingestTarget(target, { applicationName: '', tags: {} }, 0));
}

function ingestTarget(
  target: ForwardTarget,
  series: Pick<ProfileUpload, 'applicationName' | 'tags'>,
  timeoutMs: number,
): IngestTarget {
  return {
    serverAddress: target.serverAddress,
    authToken: target.authToken,
    basicAuth: target.basicAuth,
    tenantId: target.tenantId,
    applicationName: series.applicationName,
    tags: series.tags,
    timeoutMs,
  };
}

interface Entry {
  readonly upload: ProfileUpload;
  readonly bytes: number;
  attempts: number;
}

type Outcome =
  | { readonly kind: 'sent' }
  | {
      readonly kind: 'retry';
      readonly reason: ForwardRetryReason;
      readonly detail: string;
      readonly retryAfterMs?: number;
    }
  | { readonly kind: 'rejected'; readonly detail: string }
  | { readonly kind: 'aborted' };

/** Bytes of an answer read at most: enough for an error message, and a reused connection. */
const MAX_ANSWER_BYTES = 4096;
const MAX_DETAIL_CHARS = 200;
const DEFAULT_JITTER = 0.5;

export function createForwarder(options: ForwarderOptions): Forwarder {
  const { target, maxQueueBytes, requestTimeoutMs, backoff, onEvent, logger } = options;
  const jitter = backoff.jitter ?? DEFAULT_JITTER;
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  const server = checkOptions(options, jitter, maxAttempts);
  const headers = uploadIngestHeaders(target);

  const waiting: Entry[] = [];
  let inFlight: Entry | undefined;
  let heldBytes = 0;
  let sent = 0;
  let sentBytes = 0;
  let retried = 0;
  const dropped: Record<ForwardDropReason, number> = {
    queue_full: 0,
    rejected: 0,
    retries_exhausted: 0,
    shutdown: 0,
  };
  /** Failed attempts since the last delivery: the backoff exponent. */
  let failures = 0;
  let failing = false;
  /** What this failure streak cost, for the one line that ends it. */
  let streak = { retried: 0, dropped: 0 };
  const warned = new Set<string>();
  let pumpScheduled = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryAt = 0;
  let closed = false;
  let closing: { deadlineAt: number; timer: NodeJS.Timeout; resolve: () => void } | undefined;
  let closePromise: Promise<void> | undefined;
  /** Ends the attempt on the wire, if any. */
  let abortInFlight: ((by: 'shutdown') => void) | undefined;

  const emit = (event: ForwarderEvent): void => {
    if (onEvent === undefined) return;
    try {
      onEvent(event);
    } catch (error) {
      warnOnce('on_event', { err: error }, 'profile forwarder: onEvent threw; ignored');
    }
  };

  function warnOnce(key: string, fields: object, message: string): void {
    if (warned.has(key)) return;
    warned.add(key);
    logger?.warn({ pyroscope: server, ...fields }, message);
  }

  const drop = (entry: Entry, reason: ForwardDropReason): void => {
    heldBytes -= entry.bytes;
    dropped[reason] += 1;
    if (failing) streak.dropped += 1;
    emit({ type: 'dropped', reason, bytes: entry.bytes });
  };

  /** Drops the oldest waiting uploads until what is held fits; the one on the wire is left alone. */
  const enforceCap = (): void => {
    let count = 0;
    while (heldBytes > maxQueueBytes) {
      const oldest = waiting.shift();
      if (oldest === undefined) break;
      drop(oldest, 'queue_full');
      count += 1;
    }
    if (count > 0) {
      warnOnce(
        'queue_full',
        { maxQueueBytes, queued: waiting.length + (inFlight === undefined ? 0 : 1), queuedBytes: heldBytes },
        'profile forward queue full: dropping the oldest profiles',
      );
    }
  };

  const schedulePump = (): void => {
    if (pumpScheduled) return;
    pumpScheduled = true;
    // A later turn: the caller (a request handler) never pays for starting a send.
    setImmediate(() => {
      pumpScheduled = false;
      pump();
    }).unref();
  };

  function pump(): void {
    if (inFlight !== undefined || retryTimer !== undefined) return;
    const entry = waiting.shift();
    if (entry === undefined) {
      finishCloseIfIdle();
      return;
    }
    inFlight = entry;
    entry.attempts += 1;
    void attempt(entry.upload).then((outcome) => {
      settle(entry, outcome);
    });
  }

  async function attempt(upload: ProfileUpload): Promise<Outcome> {
    let url: string;
    try {
      url = uploadIngestUrl(target, upload);
    } catch (error) {
      return { kind: 'rejected', detail: `no ingest URL: ${errorText(error)}` };
    }
    const controller = new AbortController();
    let abortedBy: 'timeout' | 'shutdown' | undefined;
    const abort = (by: 'timeout' | 'shutdown'): void => {
      abortedBy ??= by;
      controller.abort();
    };
    const timer = setTimeout(abort, requestTimeoutMs, 'timeout').unref();
    abortInFlight = abort;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: upload.body,
        // A POST redirected would arrive as a GET; the answer is reported instead.
        redirect: 'manual',
        signal: controller.signal,
      });
      const answer = await readAnswer(response);
      const { status } = response;
      if (status >= 200 && status < 300) return { kind: 'sent' };
      const location = response.headers.get('location');
      const detail =
        `HTTP ${status}` +
        (location === null ? '' : ` to ${location}`) +
        (answer === '' ? '' : `: ${answer}`);
      if (status === 429) {
        const retryAfterMs = retryAfter(response.headers.get('retry-after'));
        return {
          kind: 'retry',
          reason: 'throttled',
          detail,
          ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        };
      }
      if (status === 408) return { kind: 'retry', reason: 'timeout', detail };
      if (status >= 500) return { kind: 'retry', reason: 'server_error', detail };
      return { kind: 'rejected', detail };
    } catch (error) {
      if (abortedBy === 'shutdown') return { kind: 'aborted' };
      if (abortedBy === 'timeout') {
        return { kind: 'retry', reason: 'timeout', detail: `no answer within ${requestTimeoutMs} ms` };
      }
      return { kind: 'retry', reason: 'network', detail: errorText(error) };
    } finally {
      clearTimeout(timer);
      abortInFlight = undefined;
    }
  }

  function settle(entry: Entry, outcome: Outcome): void {
    inFlight = undefined;
    switch (outcome.kind) {
      case 'sent': {
        heldBytes -= entry.bytes;
        sent += 1;
        sentBytes += entry.bytes;
        emit({ type: 'sent', bytes: entry.bytes, attempts: entry.attempts });
        if (warned.has('failing')) {
          logger?.info(
            { pyroscope: server, ...streak, queued: waiting.length, queuedBytes: heldBytes },
            'profiles reach Pyroscope again',
          );
        }
        failures = 0;
        failing = false;
        streak = { retried: 0, dropped: 0 };
        warned.clear();
        break;
      }
      case 'rejected': {
        failing = true;
        drop(entry, 'rejected');
        warnOnce(
          'rejected',
          { error: outcome.detail },
          'Pyroscope refused a profile: dropped, not retried (logged once until a profile is delivered)',
        );
        break;
      }
      case 'aborted': {
        drop(entry, 'shutdown');
        break;
      }
      case 'retry': {
        failing = true;
        failures += 1;
        const delayMs = backoffDelay(outcome.retryAfterMs);
        if (entry.attempts >= maxAttempts) {
          drop(entry, 'retries_exhausted');
        } else {
          // Back at the head, where the byte cap can still drop it if newer profiles need the room.
          waiting.unshift(entry);
          retried += 1;
          streak.retried += 1;
          emit({ type: 'retried', reason: outcome.reason, delayMs });
        }
        warnOnce(
          'failing',
          { reason: outcome.reason, error: outcome.detail, retryInMs: delayMs },
          'profiles cannot reach Pyroscope: retrying with backoff, the oldest dropped past the byte cap (logged once until they do)',
        );
        if (closing !== undefined && (waiting.length === 0 || Date.now() + delayMs >= closing.deadlineAt)) {
          // Nothing left, or the next try would come after close()'s deadline: no point waiting.
          shutdownNow();
          return;
        }
        retryAt = Date.now() + delayMs;
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          pump();
        }, delayMs).unref();
        return;
      }
    }
    pump();
  }

  function backoffDelay(retryAfterMs: number | undefined): number {
    const exponential = backoff.initialMs * 2 ** Math.min(failures - 1, 52);
    const base = Math.min(backoff.maxMs, Math.max(exponential, retryAfterMs ?? 0));
    return Math.round(base * (1 - jitter * Math.random()));
  }

  function shutdownNow(): void {
    if (retryTimer !== undefined) {
      clearTimeout(retryTimer);
      retryTimer = undefined;
    }
    for (const entry of waiting.splice(0)) drop(entry, 'shutdown');
    // The attempt on the wire settles as `aborted`, which drops it and finishes the close.
    abortInFlight?.('shutdown');
    finishCloseIfIdle();
  }

  function finishCloseIfIdle(): void {
    if (closing === undefined || inFlight !== undefined || waiting.length > 0) return;
    if (retryTimer !== undefined) {
      clearTimeout(retryTimer);
      retryTimer = undefined;
    }
    clearTimeout(closing.timer);
    closing.resolve();
  }

  return {
    enqueue(upload) {
      try {
        const entry: Entry = { upload, bytes: upload.body.byteLength, attempts: 0 };
        heldBytes += entry.bytes;
        if (closed) {
          drop(entry, 'shutdown');
          return;
        }
        if (entry.bytes > maxQueueBytes) {
          // It could never fit: the queue keeps what it has rather than emptying itself for nothing.
          drop(entry, 'queue_full');
          warnOnce(
            'too_big',
            { bytes: entry.bytes, maxQueueBytes },
            'profile forward queue: a profile bigger than the whole byte cap was dropped',
          );
          return;
        }
        waiting.push(entry);
        enforceCap();
        schedulePump();
      } catch (error) {
        warnOnce('enqueue', { err: error }, 'profile forwarder: an upload could not be queued');
      }
    },

    stats() {
      return {
        queued: waiting.length + (inFlight === undefined ? 0 : 1),
        queuedBytes: heldBytes,
        inFlight: inFlight === undefined ? 0 : 1,
        sent,
        sentBytes,
        retried,
        dropped: { ...dropped },
        failing,
        closed,
      };
    },

    close(deadlineMs) {
      if (closePromise !== undefined) return closePromise;
      closed = true;
      const deadline = Number.isFinite(deadlineMs) ? Math.max(0, deadlineMs) : 0;
      closePromise = new Promise<void>((resolve) => {
        // Referenced on purpose: the caller asked to wait, and the deadline bounds it.
        const timer = setTimeout(shutdownNow, deadline);
        closing = { deadlineAt: Date.now() + deadline, timer, resolve };
      });
      if (retryTimer !== undefined && retryAt >= Date.now() + deadline) shutdownNow();
      else if (inFlight === undefined && retryTimer === undefined) pump();
      return closePromise;
    },
  };
}

/** Validates the options a programmer passed (env values are checked in config.ts); returns the server's origin. */
function checkOptions(options: ForwarderOptions, jitter: number, maxAttempts: number): string {
  const positive = (name: string, value: number): void => {
    if (!(Number.isFinite(value) && value > 0)) {
      throw new RangeError(`createForwarder: ${name} must be a positive number, got ${String(value)}`);
    }
  };
  positive('maxQueueBytes', options.maxQueueBytes);
  positive('requestTimeoutMs', options.requestTimeoutMs);
  positive('backoff.initialMs', options.backoff.initialMs);
  positive('backoff.maxMs', options.backoff.maxMs);
  if (options.backoff.maxMs < options.backoff.initialMs) {
    throw new RangeError('createForwarder: backoff.maxMs must be at least backoff.initialMs');
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`createForwarder: backoff.jitter must be between 0 and 1, got ${String(jitter)}`);
  }
  if (!(maxAttempts >= 1)) {
    throw new RangeError(`createForwarder: maxAttempts must be at least 1, got ${String(maxAttempts)}`);
  }
  let url: URL;
  try {
    url = new URL(`${options.target.serverAddress}/ingest`);
  } catch {
    throw new RangeError(
      `createForwarder: target.serverAddress ${JSON.stringify(options.target.serverAddress)} is not a URL`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RangeError(`createForwarder: target.serverAddress must be http or https, got ${url.protocol}`);
  }
  // fetch refuses URLs with credentials, which would fail every attempt, and they must not be logged.
  if (url.username !== '' || url.password !== '') {
    throw new RangeError(
      'createForwarder: target.serverAddress must not carry credentials; use target.basicAuth',
    );
  }
  return url.origin;
}

/** At most MAX_ANSWER_BYTES of the answer, as one trimmed line; the rest is not read. */
async function readAnswer(response: Response): Promise<string> {
  // undici types the body as ReadableStream<any>; it is bytes.
  const body = response.body as ReadableStream<Uint8Array> | null;
  if (body === null) return '';
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_ANSWER_BYTES) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks)
    .subarray(0, MAX_ANSWER_BYTES)
    .toString('utf8')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, MAX_DETAIL_CHARS);
}

/** `Retry-After` in seconds (the HTTP-date form is rare for 429 and ignored). */
function retryAfter(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

/** fetch's `fetch failed` says nothing; its cause (ECONNREFUSED, ENOTFOUND, …) does. */
function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause: unknown = error.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code === undefined ? `${error.message}: ${cause.message}` : `${error.message}: ${code}`;
  }
  return error.message;
}
