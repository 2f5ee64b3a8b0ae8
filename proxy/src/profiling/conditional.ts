// The conditional-profiling gate (ENABLE_CONDITIONAL_PROFILING): profiles are uploaded only while
// the process's CPU or memory use is above its threshold.
//
// Two things keep it from flapping around a threshold:
// - a hysteresis band in absolute percentage points: it opens above the threshold and closes only
//   once both resources are below `threshold - hysteresisPercent`. Points rather than a fraction
//   of the threshold because the noise of a CPU sample is absolute (a GC or a burst of requests
//   moves it by a few points whatever the level): a fraction would give a 10% threshold a 2-point
//   band, inside the noise, and a 90% threshold an 18-point one. For small thresholds the band is
//   capped at half the threshold, so the closing level stays above zero and can be reached.
// - a minimum hold: once open it stays open at least `minHoldMs`, so a profile window that
//   started is uploaded whole. There is no hold on the closed side: a new spike is profiled from
//   its start, and a full open/closed cycle still takes at least `minHoldMs`.
import { ConfigError } from '../errors.ts';
import { createResourceUsageReader } from './resource-usage.ts';
import type { ResourceUsage, ResourceUsageReader } from './resource-usage.ts';

export type ProfilingGateReason =
  /** ENABLE_CONDITIONAL_PROFILING=false: always open. */
  | 'disabled'
  /** Enabled, no usage read yet: closed. */
  | 'starting'
  | 'cpu_above_threshold'
  | 'memory_above_threshold'
  | 'cpu_and_memory_above_threshold'
  | 'usage_below_threshold';

export type ProfilingGatePosition = 'open' | 'closed';

export interface ProfilingGateState {
  readonly enabled: boolean;
  readonly open: boolean;
  /** Why it is in its current position. */
  readonly reason: ProfilingGateReason;
  /** Date.now() of the last switch (of creation before the first one). */
  readonly since: number;
  /** Switches to open and to closed since creation. */
  readonly opened: number;
  readonly closed: number;
  /** The usage the last evaluation saw (undefined before the first, and when disabled). */
  readonly lastUsage: ResourceUsage | undefined;
}

export interface ProfilingGateOptions {
  /** ENABLE_CONDITIONAL_PROFILING. False: the gate is always open and reads nothing. */
  readonly enabled: boolean;
  /** CPU_THRESHOLD_FOR_PROFILING, percent of the allowed cores. */
  readonly cpuThresholdPercent: number;
  /** MEMORY_THRESHOLD_FOR_PROFILING, percent of the memory limit. */
  readonly memoryThresholdPercent: number;
  /** Width of the band below each threshold, in percentage points (default 5). */
  readonly hysteresisPercent?: number;
  /** Shortest time the gate stays open once opened (default 60 000 ms). */
  readonly minHoldMs?: number;
  /** How often usage is read (default 5 000 ms). */
  readonly intervalMs?: number;
  /** Default: `createResourceUsageReader()` on the real cgroupfs. */
  readonly reader?: ResourceUsageReader;
  /** Called on every switch (not on evaluations that keep the position). Meant for the log line. */
  readonly onChange?: (
    state: ProfilingGatePosition,
    reason: ProfilingGateReason,
    usage: ResourceUsage,
  ) => void;
  /** A failed usage read or a throwing `onChange`; the gate keeps its position. */
  readonly onError?: (error: unknown) => void;
  /** Clock for the hold time (default Date.now). */
  readonly now?: () => number;
}

export interface ProfilingGate {
  /** Whether profiles may be uploaded now. */
  isOpen(): boolean;
  state(): ProfilingGateState;
  /** Reads usage and switches if due, now, instead of waiting for the timer. */
  evaluate(): Promise<ProfilingGateState>;
  /** Stops the timer; the position stays as it was. */
  close(): void;
}

const DEFAULT_HYSTERESIS_PERCENT = 5;
const DEFAULT_MIN_HOLD_MS = 60_000;
const DEFAULT_INTERVAL_MS = 5_000;

function checkPercent(variable: string, value: number): void {
  if (!Number.isFinite(value) || value < 0 || value > 100) {
    throw new ConfigError(
      variable,
      `${variable}=${JSON.stringify(value)} is invalid: expected a percentage 0-100`,
    );
  }
}

function checkMs(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(
      name,
      `${name}=${JSON.stringify(value)} is invalid: expected a whole number >= ${min}`,
    );
  }
}

/** The level a resource must fall below before the gate closes. */
export function closingLevel(thresholdPercent: number, hysteresisPercent: number): number {
  return Math.max(thresholdPercent - hysteresisPercent, thresholdPercent / 2);
}

export function createProfilingGate(options: ProfilingGateOptions): ProfilingGate {
  const now = options.now ?? Date.now;
  let state: ProfilingGateState = Object.freeze({
    enabled: options.enabled,
    open: !options.enabled,
    reason: options.enabled ? 'starting' : 'disabled',
    since: now(),
    opened: 0,
    closed: 0,
    lastUsage: undefined,
  });

  if (!options.enabled) {
    return {
      isOpen: () => true,
      state: () => state,
      evaluate: () => Promise.resolve(state),
      close: () => undefined,
    };
  }

  checkPercent('CPU_THRESHOLD_FOR_PROFILING', options.cpuThresholdPercent);
  checkPercent('MEMORY_THRESHOLD_FOR_PROFILING', options.memoryThresholdPercent);
  const hysteresis = options.hysteresisPercent ?? DEFAULT_HYSTERESIS_PERCENT;
  if (!Number.isFinite(hysteresis) || hysteresis < 0) {
    throw new ConfigError('hysteresisPercent', `hysteresisPercent=${hysteresis} is invalid: expected >= 0`);
  }
  const minHoldMs = options.minHoldMs ?? DEFAULT_MIN_HOLD_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  checkMs('minHoldMs', minHoldMs, 0);
  checkMs('intervalMs', intervalMs, 1);
  const cpuOff = closingLevel(options.cpuThresholdPercent, hysteresis);
  const memoryOff = closingLevel(options.memoryThresholdPercent, hysteresis);
  const reader = options.reader ?? createResourceUsageReader();
  const report = (error: unknown): void => {
    options.onError?.(error);
  };

  const decide = (usage: ResourceUsage): void => {
    const cpuHigh = usage.cpuPercent > options.cpuThresholdPercent;
    const memoryHigh = usage.memoryPercent > options.memoryThresholdPercent;
    const at = now();
    let next: { open: boolean; reason: ProfilingGateReason } | undefined;
    if (!state.open && (cpuHigh || memoryHigh)) {
      next = {
        open: true,
        reason:
          cpuHigh && memoryHigh
            ? 'cpu_and_memory_above_threshold'
            : cpuHigh
              ? 'cpu_above_threshold'
              : 'memory_above_threshold',
      };
    } else if (
      state.open &&
      usage.cpuPercent < cpuOff &&
      usage.memoryPercent < memoryOff &&
      at - state.since >= minHoldMs
    ) {
      next = { open: false, reason: 'usage_below_threshold' };
    }
    if (next === undefined) {
      state = Object.freeze({ ...state, lastUsage: usage });
      return;
    }
    state = Object.freeze({
      ...state,
      ...next,
      since: at,
      opened: state.opened + (next.open ? 1 : 0),
      closed: state.closed + (next.open ? 0 : 1),
      lastUsage: usage,
    });
    try {
      options.onChange?.(next.open ? 'open' : 'closed', next.reason, usage);
    } catch (error) {
      report(error);
    }
  };

  // One read at a time: a slow filesystem must not pile up reads behind the timer.
  let inFlight: Promise<ProfilingGateState> | undefined;
  const evaluate = (): Promise<ProfilingGateState> => {
    inFlight ??= reader
      .read()
      .then(decide, report)
      .then(() => state)
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  const timer = setInterval(() => {
    void evaluate();
  }, intervalMs);
  timer.unref();

  return {
    isOpen: () => state.open,
    state: () => state,
    evaluate,
    close() {
      clearInterval(timer);
    },
  };
}
