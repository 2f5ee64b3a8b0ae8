// A batch span processor that encodes each sampled span into OTLP protobuf the moment it ends and
// keeps only the bytes, instead of queueing span objects until the batch is serialized. It keeps
// the SDK BatchSpanProcessor's behaviour (queue bound in spans, batch size, schedule delay, one
// batch in flight at a time, flush on forceFlush and shutdown), and every span it cannot deliver
// is counted: refused because the queue is full, or lost with a batch the collector did not take.
import { diag } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { EncodedSpanBatch } from './span-encoder.ts';

export type SpanDropReason = 'queue_full' | 'export_failed';

export interface EncodedBatchExporter {
  export(batch: EncodedSpanBatch, resultCallback: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

export interface EncodingBatchProcessorOptions {
  /** OTEL_BSP_MAX_QUEUE_SIZE: spans ended but not yet handed to the exporter. */
  readonly maxQueueSize: number;
  /** Spans per export request (at most the queue size). */
  readonly maxExportBatchSize: number;
  /** OTEL_BSP_SCHEDULE_DELAY: how long a batch that is not full waits for more spans. */
  readonly scheduledDelayMillis: number;
  readonly onDrop: (reason: SpanDropReason, count: number) => void;
}

const SAMPLED = 1;
/** A batch whose export has not called back by then counts as failed (the SDK's default). */
const EXPORT_TIMEOUT_MS = 30_000;

export class EncodingBatchProcessor implements SpanProcessor {
  readonly #exporter: EncodedBatchExporter;
  readonly #maxQueueSize: number;
  readonly #maxBatch: number;
  readonly #delay: number;
  readonly #onDrop: (reason: SpanDropReason, count: number) => void;
  #filling = new EncodedSpanBatch();
  readonly #full: EncodedSpanBatch[] = [];
  #queued = 0;
  #exporting = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #shutdown: Promise<void> | undefined;

  constructor(exporter: EncodedBatchExporter, options: EncodingBatchProcessorOptions) {
    this.#exporter = exporter;
    this.#maxQueueSize = options.maxQueueSize;
    this.#maxBatch = Math.max(1, Math.min(options.maxExportBatchSize, options.maxQueueSize));
    this.#delay = options.scheduledDelayMillis;
    this.#onDrop = options.onDrop;
  }

  onStart(): void {
    // Spans are only of interest once they have ended.
  }

  onEnd(span: ReadableSpan): void {
    if (this.#shutdown !== undefined) return;
    if ((span.spanContext().traceFlags & SAMPLED) === 0) return;
    if (this.#queued >= this.#maxQueueSize) {
      this.#onDrop('queue_full', 1);
      return;
    }
    try {
      this.#filling.add(span);
    } catch (error) {
      diag.warn('spanscope: a span could not be encoded for export; dropped', error);
      this.#onDrop('export_failed', 1);
      return;
    }
    this.#queued++;
    if (this.#filling.count >= this.#maxBatch) {
      this.#full.push(this.#filling);
      this.#filling = new EncodedSpanBatch();
    }
    this.#schedule();
  }

  forceFlush(): Promise<void> {
    this.#clearTimer();
    for (let batch = this.#take(); batch !== undefined; batch = this.#take()) void this.#send(batch);
    return Promise.all(this.#inFlight).then(() => undefined);
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.forceFlush().then(() => this.#exporter.shutdown());
    return this.#shutdown;
  }

  /** Exports a full batch now if none is in flight, or waits up to the delay for a partial one. */
  #schedule(): void {
    if (this.#exporting) return;
    if (this.#full.length > 0) {
      this.#exportNext();
      return;
    }
    if (this.#timer === undefined && this.#filling.count > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#exportNext();
      }, this.#delay);
      this.#timer.unref();
    }
  }

  #exportNext(): void {
    this.#clearTimer();
    const batch = this.#take();
    if (batch === undefined) return;
    this.#exporting = true;
    void this.#send(batch).then(() => {
      this.#exporting = false;
      this.#schedule();
    });
  }

  /** The oldest batch, which leaves the queue (and stops counting against its bound). */
  #take(): EncodedSpanBatch | undefined {
    let batch = this.#full.shift();
    if (batch === undefined && this.#filling.count > 0) {
      batch = this.#filling;
      this.#filling = new EncodedSpanBatch();
    }
    if (batch !== undefined) this.#queued -= batch.count;
    return batch;
  }

  /** Resolves when the batch is delivered or counted as dropped; never rejects. */
  #send(batch: EncodedSpanBatch): Promise<void> {
    const sent = new Promise<void>((resolve) => {
      let settled = false;
      const settle = (delivered: boolean, answered: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        if (!delivered) this.#onDrop('export_failed', batch.count);
        // Without the exporter's answer its request may still be reading the bytes: those buffers
        // are left to the collector rather than reused.
        if (answered) batch.release();
        resolve();
      };
      const guard = setTimeout(() => settle(false, false), EXPORT_TIMEOUT_MS);
      guard.unref();
      try {
        this.#exporter.export(batch, (result) => settle(result.code === ExportResultCode.SUCCESS, true));
      } catch (error) {
        diag.warn('spanscope: span export failed', error);
        settle(false, false);
      }
    });
    this.#inFlight.add(sent);
    void sent.then(() => this.#inFlight.delete(sent));
    return sent;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}
