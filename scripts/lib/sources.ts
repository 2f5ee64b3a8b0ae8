// Where `npm run validate` reads what the deployment produced: spans from Tempo or from its own
// OTLP receiver, profiles from Pyroscope or from the proxy's local store. Each check is written
// once against these two interfaces.
import type { Span } from './otlp-spans.ts';

export interface TraceSource {
  /** For messages: `Tempo at http://…`, `the OTLP receiver on 127.0.0.1:4318`. */
  readonly description: string;
  /** How many traces a check may read in one round: every one from memory, a few over HTTP. */
  readonly traceBudget: number;
  /** The spans of a trace that have arrived so far; [] while none has. */
  trace(traceId: string): Promise<Span[]>;
  /** A hint for a failure where no span arrived at all, or undefined. */
  noSpansHint(): string | undefined;
  close(): Promise<void>;
}

/** Milliseconds since the epoch. */
export interface TimeWindow {
  readonly from: number;
  readonly until: number;
}

export interface SpanProfile {
  /** Samples in the profile, where the source reports them (the local store). */
  readonly samples: number | undefined;
  /** Sum of the profile's main value (wall time). */
  readonly total: number;
  /** Unit of `total`, e.g. `nanoseconds`. */
  readonly unit: string;
}

export interface ProfileSource {
  /** For messages: `Pyroscope at http://…`, `the local store at http://127.0.0.1:9901/debug/pprof`. */
  readonly description: string;
  /** The values of each of `labels` in `service`'s profiles; a label with no value maps to []. */
  labelValues(service: string, labels: readonly string[], window: TimeWindow): Promise<Map<string, string[]>>;
  /** The span ids that have samples, where the source can list them (the local store); else undefined. */
  spanIdsWithSamples(service: string, window: TimeWindow): Promise<ReadonlySet<string> | undefined>;
  /** The profile of the span whose `pyroscope.profile.id` is `spanId`. */
  spanProfile(service: string, spanId: string, window: TimeWindow): Promise<SpanProfile>;
}
