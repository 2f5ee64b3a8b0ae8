// The profiler both processes run: @datadog/pprof's wall profiler with CPU time, sampling at
// 100 Hz, with the label set of the code running kept in Node 24's async context frame (pprof's
// CPED mode), so a request's labels follow it across await, timers and keep-alive callbacks.
// Every PYROSCOPE_UPLOAD_RATE seconds the profile is collected and pushed to Pyroscope's /ingest.
//
// Why pprof directly and not @pyroscope/nodejs's own loop (measured, see profiler.test.ts and
// /work/shared/reference/measurements.md): the SDK starts pprof without `useCPED`, so its labels
// end at the first await; it swallows failed uploads (no log line at all with a 500 or a refused
// connection); and a failure while collecting becomes an unhandled rejection that kills the
// process. Here the wire format is the SDK's, and failures are logged once and never thrown.
//
// Profiling never fails a request: without a server it is off (one log line), a start, label,
// collect or upload failure is logged once, and `run*` then simply run the function.
import type * as Pprof from '@datadog/pprof';
import { fileURLToPath } from 'node:url';
import { LabelError } from '../errors.ts';
import {
  EMPTY_LABELS,
  extendValidatedLabels,
  filterProfileLabels,
  isProfileLabels,
  isSpanId,
  isTraceId,
  labelRecord,
  labelValue,
  mergeProfileLabels,
} from '../labels.ts';
import type { LabelSwitches, ProfileLabels } from '../labels.ts';
import type { ProfilerSettings } from './config.ts';
import { prepareProfile, pushUpload } from './ingest.ts';
import { strippedFrom } from '../launch-settings.ts';
import type { IngestTarget } from './ingest.ts';
import type { ProfileUpload } from './upload.ts';

/** The subset of a pino logger the profiler writes to. */
export interface ProfilerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface StartProfilerOptions extends ProfilerSettings {
  readonly logger: ProfilerLogger;
  /** Extra series tags added to every upload (names must match the label name rule). */
  readonly tags?: Readonly<Record<string, string>>;
  /**
   * Where collected profiles go instead of an HTTP push to `serverAddress`: the proxy hands its
   * own profiles to its tagging endpoint in-process. Rejections are logged like failed uploads.
   */
  readonly sink?: (upload: ProfileUpload) => Promise<void>;
  /** Asked at each collection (ENABLE_CONDITIONAL_PROFILING): false discards the profile. */
  readonly shouldUpload?: () => boolean;
}

/** What the proxy or the backend knows about a request when it starts handling it. */
export interface RequestLabelInput {
  readonly handler: string;
  /** The route template, never the raw path. */
  readonly route: string;
  readonly method: string;
  /** The client category (see user-agent.ts). */
  readonly userAgent?: string | undefined;
  /** The process's local root span for the request; span labels only when it is sampled. */
  readonly span?:
    | {
        readonly spanId: string;
        readonly traceId: string;
        readonly name: string;
        readonly sampled: boolean;
      }
    | undefined;
}

export type ProfilerState = 'off' | 'running' | 'stopped';

export interface ProfilerStatus {
  readonly state: ProfilerState;
  /** Why profiling is off, when it is. */
  readonly reason?: string;
  /** False when the self-test found that labels cannot follow async work (profiles unlabelled). */
  readonly labelling: boolean;
  readonly uploads: number;
  readonly failedUploads: number;
  readonly droppedProfiles: number;
  /** Profiles collected while conditional profiling held uploads back. */
  readonly skippedProfiles: number;
}

export interface Profiler {
  readonly applicationName: string;
  readonly switches: LabelSwitches;
  /** True while samples are being taken and labels follow the code. */
  readonly labelling: boolean;
  status(): ProfilerStatus;
  /**
   * The request's label set under the scheme and the switches: handler, route, method and
   * component=http (ENABLE_ENDPOINT_PROFILING), user_agent (ENABLE_USER_AGENT_PROFILING), span_id
   * and span_name of a sampled span (ENABLE_DYNAMIC_TAGS), trace_id (ENABLE_TRACE_ID_LABEL).
   * Throws a LabelError for values the scheme refuses, also while profiling is off.
   */
  requestLabels(input: RequestLabelInput): ProfileLabels;
  /** Runs `fn` with exactly `labels` (after the switches) on its samples, across its awaits. */
  runWithLabels<T>(labels: ProfileLabels, fn: () => T): T;
  /** Runs `fn` with the current labels plus `labels` (a nested scope). */
  runWithAddedLabels<T>(labels: ProfileLabels, fn: () => T): T;
  /**
   * Runs a database call with `db_operation`=`operation` and `component=database` added for its
   * whole duration, awaits included (ENABLE_DATABASE_PROFILING). Throws a LabelError for a bad name.
   */
  runDatabaseOperation<T>(operation: string, fn: () => T): T;
  /** The labels in effect here, or undefined outside any labelled scope or while off. */
  currentLabels(): ProfileLabels | undefined;
  /** Collects and uploads now (tests, shutdown); resolves when the upload is done or failed. */
  flush(): Promise<void>;
  /** Stops label propagation, then the profiler, then pushes the last profile. Idempotent. */
  stop(): Promise<void>;
}

type TimeApi = typeof Pprof.time;
type HeapApi = typeof Pprof.heap;
type EncodeFn = typeof Pprof.encode;

// Run from the stripped build (launch-settings.ts), the proxy's own frames name its sources.
const STRIPPED_FROM = strippedFrom(fileURLToPath(new URL('../', import.meta.url)));
const MICROS_PER_SECOND = 1_000_000;
const DEFAULT_SAMPLING_INTERVAL_MICROS = 10_000;
/** Label sets of distinct handler/route/method/user_agent combinations (and span names) kept ready; cleared when full. */
const LABEL_CACHE_SIZE = 4096;
const MIN_UPLOAD_TIMEOUT_MS = 5_000;
/** The SDK's heap defaults: a sample every 512 KiB allocated, 64 frames deep. */
const HEAP_INTERVAL_BYTES = 512 * 1024;
const HEAP_STACK_DEPTH = 64;

/** The profiler that is running in this process (pprof is process-wide). */
let active: Engine | undefined;

/** `active`, read through a call: it can change across an await. */
function runningEngine(): Engine | undefined {
  return active;
}

interface Engine {
  readonly time: TimeApi;
  readonly owner: ProfilerHandle;
}

class ProfilerHandle implements Profiler {
  readonly applicationName: string;
  readonly switches: LabelSwitches;
  labelling = false;
  private state: ProfilerState = 'off';
  private reason: string | undefined;
  private time: TimeApi | undefined;
  private readonly logger: ProfilerLogger;
  private readonly requestCache = new Map<string, ProfileLabels>();
  /** The cached request sets: already filtered by the switches. */
  private readonly filteredSets = new Set<object>();
  private readonly spanNames = new Map<string, string>();
  private readonly databaseCache = new Map<string, Readonly<Record<string, string>>>();
  private readonly warned = new Set<string>();
  // Owner only: the collection and upload loop.
  private encode: EncodeFn | undefined;
  private heap: HeapApi | undefined;
  private target: IngestTarget | undefined;
  private send: ((upload: ProfileUpload) => Promise<void>) | undefined;
  private shouldUpload: () => boolean = () => true;
  private detailedStackTraces = true;
  private timer: NodeJS.Timeout | undefined;
  private windowStart = new Date();
  private sampleRate = 100;
  private inFlight: Promise<void> | undefined;
  private uploadFailing = false;
  private uploads = 0;
  private failedUploads = 0;
  private droppedProfiles = 0;
  private skippedProfiles = 0;
  private stopping: Promise<void> | undefined;

  constructor(settings: ProfilerSettings, logger: ProfilerLogger) {
    this.applicationName = settings.applicationName;
    this.switches = Object.freeze({ ...settings.switches });
    this.logger = logger;
  }

  status(): ProfilerStatus {
    return {
      state: this.state,
      ...(this.reason === undefined ? {} : { reason: this.reason }),
      labelling: this.labelling,
      uploads: this.uploads,
      failedUploads: this.failedUploads,
      droppedProfiles: this.droppedProfiles,
      skippedProfiles: this.skippedProfiles,
    };
  }

  off(reason: string): this {
    this.state = 'off';
    this.reason = reason;
    return this;
  }

  /** Starts pprof and the upload loop; on any failure logs one line and stays off. */
  async start(options: StartProfilerOptions): Promise<this> {
    if (options.enabled === false) {
      options.logger.info(
        { profiling: false, application: this.applicationName },
        'profiling off: ENABLE_PROFILING=false',
      );
      return this.off('ENABLE_PROFILING=false');
    }
    if (options.serverAddress === undefined && options.sink === undefined) {
      options.logger.info(
        { profiling: false, application: this.applicationName },
        'profiling off: no server to upload to',
      );
      return this.off('no server to upload to');
    }
    if (active !== undefined) return this.share(active);
    let pprof: typeof Pprof;
    try {
      pprof = await import('@datadog/pprof');
    } catch (error) {
      this.logger.warn({ err: error }, 'profiling off: @datadog/pprof cannot be loaded');
      return this.off('@datadog/pprof cannot be loaded');
    }
    // Another profiler may have started while the module loaded.
    const started = runningEngine();
    if (started !== undefined) return this.share(started);
    const { time } = pprof;
    const intervalMicros = options.samplingIntervalMicros ?? DEFAULT_SAMPLING_INTERVAL_MICROS;
    const startOptions = {
      intervalMicros,
      durationMillis: Math.max(60_000, options.uploadRateSeconds * 1000),
      withContexts: true,
      collectCpuTime: true,
      workaroundV8Bug: true,
    };
    let cped = true;
    let cpedError: unknown;
    try {
      time.start({ ...startOptions, useCPED: true });
    } catch (error) {
      cped = false;
      cpedError = error;
      try {
        time.start(startOptions);
      } catch (plainError) {
        this.logger.warn({ err: plainError }, 'profiling off: the wall profiler failed to start');
        return this.off('the wall profiler failed to start');
      }
    }
    // With AsyncContextFrame off (--no-async-context-frame, Node < 24) CPED starts but drops labels.
    let labelsWork = false;
    if (cped) {
      try {
        const probe = {};
        labelsWork = time.runWithContext(probe, (): unknown => time.getContext()) === probe;
      } catch {
        labelsWork = false;
      }
    }
    if (!labelsWork) {
      this.logger.warn(
        { application: this.applicationName, err: cpedError },
        'profile labels off: they cannot follow async work in this Node.js (is AsyncContextFrame disabled?); profiles are uploaded without labels',
      );
    }
    if (options.heapProfile === true) {
      try {
        pprof.heap.start(HEAP_INTERVAL_BYTES, HEAP_STACK_DEPTH);
        this.heap = pprof.heap;
      } catch (error) {
        this.logger.warn({ err: error }, 'heap profile off: the heap profiler failed to start');
      }
    }
    this.time = time;
    this.encode = pprof.encode;
    this.sampleRate = Math.ceil(MICROS_PER_SECOND / intervalMicros);
    this.detailedStackTraces = options.detailedStackTraces ?? true;
    if (options.shouldUpload !== undefined) this.shouldUpload = options.shouldUpload;
    const target: IngestTarget = {
      serverAddress: options.serverAddress ?? '',
      applicationName: this.applicationName,
      // The SDK's own series tags, so a process reads the same in Pyroscope whichever client sent it.
      tags: {
        'process.runtime.name': 'nodejs',
        'process.runtime.version': process.versions.node,
        ...options.tags,
      },
      authToken: options.authToken,
      basicAuth: options.basicAuth,
      tenantId: options.tenantId,
      timeoutMs: Math.max(MIN_UPLOAD_TIMEOUT_MS, options.uploadRateSeconds * 1000),
    };
    this.target = target;
    this.send = options.sink ?? ((upload) => pushUpload(target, upload));
    this.windowStart = new Date();
    this.timer = setInterval(() => {
      void this.flush();
    }, options.uploadRateSeconds * 1000);
    this.timer.unref();
    active = { time, owner: this };
    this.state = 'running';
    this.labelling = labelsWork;
    this.logger.info(
      {
        profiling: true,
        application: this.applicationName,
        server: options.serverAddress ?? 'in-process',
        heap: this.heap !== undefined,
        upload_rate_s: options.uploadRateSeconds,
        labels: labelsWork,
        switches: this.switches,
      },
      'profiling on',
    );
    return this;
  }

  /** Two processes' worth of profiling in one (tests): labels on the running pprof, no uploads of its own. */
  private share(engine: Engine): this {
    this.time = engine.time;
    this.state = 'running';
    this.labelling = engine.owner.labelling;
    this.logger.warn(
      { application: this.applicationName, uploading_as: engine.owner.applicationName },
      'profiler already running in this process: labels are applied, profiles are uploaded by the first profiler',
    );
    return this;
  }

  private warnOnce(key: string, fields: object, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(fields, message);
  }

  requestLabels(input: RequestLabelInput): ProfileLabels {
    const { switches } = this;
    const key = `${input.handler}\u0000${input.route}\u0000${input.method}\u0000${input.userAgent ?? ''}`;
    let base = this.requestCache.get(key);
    if (base === undefined) {
      const labels: Record<string, string> = {};
      // Validated even when switched off, so a bad value fails the same way in every setting.
      const handler = labelValue('handler', input.handler);
      const route = labelValue('route', input.route);
      const method = labelValue('method', input.method);
      const userAgent = input.userAgent === undefined ? undefined : labelValue('user_agent', input.userAgent);
      if (switches.endpoint) {
        labels.handler = handler;
        labels.route = route;
        labels.method = method;
        labels.component = 'http';
      }
      if (switches.userAgent && userAgent !== undefined) labels.user_agent = userAgent;
      base = extendValidatedLabels(undefined, labels);
      if (this.requestCache.size >= LABEL_CACHE_SIZE) this.clearRequestCache();
      this.requestCache.set(key, base);
      this.filteredSets.add(base);
    }
    const span = input.span;
    if (span === undefined || !span.sampled) return base;
    // Per request: the span's labels over the cached set, checked cheaply (OTel ids are lowercase hex).
    const spanId = isSpanId(span.spanId) ? span.spanId : labelValue('span_id', span.spanId);
    let spanName = this.spanNames.get(span.name);
    if (spanName === undefined) {
      spanName = labelValue('span_name', span.name);
      if (this.spanNames.size >= LABEL_CACHE_SIZE) this.spanNames.clear();
      this.spanNames.set(span.name, spanName);
    }
    if (!switches.dynamicTags) return base;
    const labels = Object.create(base) as Record<string, string>;
    labels.span_id = spanId;
    labels.span_name = spanName;
    if (switches.traceId) {
      labels.trace_id = isTraceId(span.traceId) ? span.traceId : labelValue('trace_id', span.traceId);
    }
    return labels as unknown as ProfileLabels;
  }

  runWithLabels<T>(labels: ProfileLabels, fn: () => T): T {
    if (!isProfileLabels(labels)) throw notValidated();
    return this.run(this.filter(labels), fn);
  }

  runWithAddedLabels<T>(labels: ProfileLabels, fn: () => T): T {
    if (!isProfileLabels(labels)) throw notValidated();
    if (!this.labelling) return fn();
    const added = this.filter(labels);
    if (added === EMPTY_LABELS) return fn();
    return this.run(mergeProfileLabels(this.currentLabels(), added), fn);
  }

  runDatabaseOperation<T>(operation: string, fn: () => T): T {
    let values = this.databaseCache.get(operation);
    if (values === undefined) {
      values = { db_operation: labelValue('db_operation', operation), component: 'database' };
      if (this.databaseCache.size >= LABEL_CACHE_SIZE) this.databaseCache.clear();
      this.databaseCache.set(operation, values);
    }
    if (!this.switches.database || !this.labelling) return fn();
    return this.run(extendValidatedLabels(this.currentLabels(), values), fn);
  }

  /** `labels` without what the switches turn off; sets this profiler built are filtered already. */
  private filter(labels: ProfileLabels): ProfileLabels {
    if (this.filteredSets.has(labels) || this.filteredSets.has(Object.getPrototypeOf(labels) as object)) {
      return labels;
    }
    return filterProfileLabels(labels, this.switches);
  }

  private clearRequestCache(): void {
    for (const base of this.requestCache.values()) this.filteredSets.delete(base);
    this.requestCache.clear();
  }

  currentLabels(): ProfileLabels | undefined {
    const time = this.time;
    if (!this.labelling || time === undefined || !time.isStarted()) return undefined;
    try {
      const context: unknown = time.getContext();
      return isProfileLabels(context) ? context : undefined;
    } catch (error) {
      this.labelFailure(error);
      return undefined;
    }
  }

  private run<T>(labels: ProfileLabels, fn: () => T): T {
    const time = this.time;
    if (!this.labelling || time === undefined || !time.isStarted()) return fn();
    // Tells a failure of pprof (run unlabelled) from one of `fn` (the caller's to handle).
    let entered = false as boolean;
    try {
      return time.runWithContext(labels, () => {
        entered = true;
        return fn();
      });
    } catch (error) {
      if (entered) throw error;
      this.labelFailure(error);
      return fn();
    }
  }

  private labelFailure(error: unknown): void {
    this.warnOnce('label', { err: error }, 'applying profile labels failed; requests continue unlabelled');
  }

  flush(): Promise<void> {
    return this.collectAndPush(true);
  }

  private collectAndPush(restart: boolean): Promise<void> {
    const time = this.time;
    const encode = this.encode;
    const send = this.send;
    const target = this.target;
    if (active?.owner !== this || time === undefined || encode === undefined || send === undefined) {
      return Promise.resolve();
    }
    const window = { from: this.windowStart, until: new Date(), sampleRate: this.sampleRate };
    const profiles: { profile: ReturnType<TimeApi['stop']>; sampleRate: number }[] = [];
    try {
      profiles.push({ profile: time.stop(restart, generateLabels), sampleRate: window.sampleRate });
      // The heap profile is a snapshot of live allocations; its "rate" is the SDK's constant.
      if (this.heap !== undefined) profiles.push({ profile: this.heap.profile(), sampleRate: 100 });
    } catch (error) {
      this.warnOnce('collect', { err: error }, 'collecting the profile failed; profiling continues');
      if (profiles.length === 0) return Promise.resolve();
    }
    this.windowStart = window.until;
    if (!this.shouldUpload()) {
      this.skippedProfiles++;
      return Promise.resolve();
    }
    if (this.inFlight !== undefined) {
      // The previous upload has not finished within an upload period: keep memory bounded.
      this.droppedProfiles++;
      this.warnOnce(
        'dropped',
        { from: window.from.toISOString(), until: window.until.toISOString() },
        'profile dropped: the previous upload is still in flight (Pyroscope slow?)',
      );
      return this.inFlight;
    }
    const server = target?.serverAddress === '' ? 'in-process' : target?.serverAddress;
    const upload = (async () => {
      try {
        for (const { profile, sampleRate } of profiles) {
          const body = await encode(
            prepareProfile(profile, { detailed: this.detailedStackTraces, strippedFrom: STRIPPED_FROM }),
          );
          await send({
            applicationName: this.applicationName,
            tags: target?.tags ?? {},
            from: window.from,
            until: window.until,
            sampleRate,
            spyName: 'nodespy',
            body,
          });
          this.uploads++;
        }
        if (this.uploadFailing) {
          this.uploadFailing = false;
          this.logger.info({ server }, 'profile uploads succeed again');
        }
      } catch (error) {
        this.failedUploads++;
        if (!this.uploadFailing) {
          this.uploadFailing = true;
          this.logger.warn(
            { err: error, server },
            'profile upload failed; further failures are not logged until an upload succeeds',
          );
        }
      } finally {
        this.inFlight = undefined;
      }
    })();
    this.inFlight = upload;
    return upload;
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    // Labels first: nothing may call into pprof once it is stopped.
    this.labelling = false;
    if (this.state !== 'running') return;
    this.state = 'stopped';
    if (active?.owner !== this) return;
    clearInterval(this.timer);
    this.timer = undefined;
    while (this.inFlight !== undefined) await this.inFlight;
    await this.collectAndPush(false);
    if (this.heap !== undefined) {
      try {
        this.heap.stop();
      } catch {
        // Already stopped: nothing left to release.
      }
    }
    active = undefined;
  }
}

/** pprof asks for each sample's labels at collection time: nested sets are flattened only then. */
const generateLabels: NonNullable<Parameters<TimeApi['stop']>[1]> = (args) => {
  const context = args.context?.context;
  return isProfileLabels(context) ? labelRecord(context) : {};
};

function notValidated(): LabelError {
  return new LabelError(
    '(label set)',
    'profile labels must be built with profileLabels() or profiler.requestLabels()',
  );
}

/**
 * Starts profiling for this process. Never throws for profiling trouble: without a server, or when
 * the profiler cannot start, it logs one line and returns a profiler that is off (its `run*` just
 * call the function, and label validation still applies).
 */
export async function startProfiler(options: StartProfilerOptions): Promise<Profiler> {
  return new ProfilerHandle(options, options.logger).start(options);
}

/** A profiler that is off: labels are validated, `run*` call the function directly. */
export function disabledProfiler(
  settings: Pick<ProfilerSettings, 'applicationName' | 'switches'>,
  logger: ProfilerLogger,
): Profiler {
  return new ProfilerHandle({ ...settings, serverAddress: undefined, uploadRateSeconds: 10 }, logger).off(
    'disabled',
  );
}
