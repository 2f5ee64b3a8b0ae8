// Sends batches of already-encoded spans as OTLP/HTTP protobuf. The HTTP side is OpenTelemetry's
// own export machinery, so everything it reads from OTEL_EXPORTER_OTLP_* (headers, compression,
// certificates) and does (keep-alive agent, retries with backoff on 429/502/503/504 and network
// errors, the timeout, the concurrency limit, logging a partial success) stays as it was; only the
// serializer is replaced (see span-encoder.ts for why).
import type { ExportResult } from '@opentelemetry/core';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import {
  convertLegacyHttpOptions,
  createOtlpHttpExportDelegate,
} from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { EncodedSpanBatch } from './span-encoder.ts';

export interface OtlpProtoExporterOptions {
  /** The full traces URL (`…/v1/traces`). */
  readonly url: string;
  /** OTEL_EXPORTER_OTLP_TIMEOUT: one export request, retries included. */
  readonly timeoutMillis: number;
  /** Export requests in flight at once; one more is refused. */
  readonly concurrencyLimit: number;
}

const batchSerializer = {
  serializeRequest: (batch: EncodedSpanBatch): Uint8Array => batch.toRequest(),
  // The collector's answer (a partial success, which the delegate logs) is read by the library.
  deserializeResponse: (data: Uint8Array) => ProtobufTraceSerializer.deserializeResponse(data),
};

// For the exporter's self-observability metrics (off unless a meter provider is given).
const batchCounter = { name: 'span' as const, countItems: (batch: EncodedSpanBatch) => batch.count };

export class OtlpProtoExporter {
  readonly #base: OTLPExporterBase<EncodedSpanBatch>;

  constructor(options: OtlpProtoExporterOptions) {
    // The library's own OTLP exporters build their configuration with this call (user options,
    // then OTEL_EXPORTER_OTLP_* from the environment, then defaults); 0.301 exports no other.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    const http = convertLegacyHttpOptions(
      {
        url: options.url,
        timeoutMillis: options.timeoutMillis,
        concurrencyLimit: options.concurrencyLimit,
      },
      'TRACES',
      'v1/traces',
      { 'Content-Type': 'application/x-protobuf' },
    );
    this.#base = new OTLPExporterBase(
      createOtlpHttpExportDelegate(http, batchSerializer, 'otlp_http_span_exporter', batchCounter, undefined),
    );
  }

  /** Calls back once, with success only when the collector accepted the batch. */
  export(batch: EncodedSpanBatch, resultCallback: (result: ExportResult) => void): void {
    this.#base.export(batch, resultCallback);
  }

  shutdown(): Promise<void> {
    return this.#base.shutdown();
  }
}
