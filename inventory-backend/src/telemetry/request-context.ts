// Async context of requests, beyond what the profiler keeps itself.
//
// - The OpenTelemetry context of the request being handled, in an AsyncLocalStorage, so the
//   database wrapper can parent its CLIENT spans on the request's SERVER span without every
//   repository call carrying it. Private to this service on purpose: no global OpenTelemetry
//   context manager is registered, so nothing else in the process (a proxy in the same process in
//   tests, other libraries) changes behaviour. On Node 24 AsyncLocalStorage lives in the async
//   context frame, like the profiler's labels, so both follow a request across the same awaits.
// - A way out of any request's context: a timer, socket or other resource created inside a
//   request keeps that request's context for all its later callbacks, so their CPU would carry
//   that request's labels (its span_id included) long after it ended. Work that belongs to no
//   request (span export batches, pooled database connections) is started outside them.
import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';

const store = new AsyncLocalStorage<Context>();

// Taken when the module loads, at start-up: no request, no labels.
const outsideRequestsFrame = AsyncLocalStorage.snapshot();

/** The context of the request running here; ROOT_CONTEXT outside requests. */
export function activeTraceContext(): Context {
  return store.getStore() ?? ROOT_CONTEXT;
}

/** Runs `fn` (and everything it schedules) with `context` as the active request context. */
export function runInTraceContext<T>(context: Context, fn: () => T): T {
  return store.run(context, fn);
}

/** Runs `fn` in the async context of start-up: no request's trace context or profile labels. */
export function runOutsideRequests<T>(fn: () => T): T {
  return outsideRequestsFrame(fn);
}
