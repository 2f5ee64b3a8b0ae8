// Every error the API answers is `{"error": "..."}` with a message fit for a client: no stack
// trace, no SQL, no internal detail. Details go to the log only.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InventoryError } from '../errors.ts';
import { INVALID_PAYLOAD } from './validation.ts';

export const BODY_LIMIT_BYTES = 1024 * 1024;

export interface ErrorBody {
  error: string;
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { statusCode } = error as { statusCode?: unknown };
  return typeof statusCode === 'number' && statusCode >= 400 && statusCode <= 599 ? statusCode : undefined;
}

/** Maps an error to its HTTP status and public body, so no internal message can leak. */
export function toErrorResponse(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof InventoryError) {
    return { status: error.statusCode, body: { error: error.publicMessage } };
  }
  const status = statusOf(error);
  if (status === 413) {
    return { status, body: { error: `request body too large (limit ${BODY_LIMIT_BYTES} bytes)` } };
  }
  if (status === 400) return { status, body: { error: INVALID_PAYLOAD } };
  if (status !== undefined && status < 500) {
    return { status, body: { error: (STATUS_CODES[status] ?? 'request refused').toLowerCase() } };
  }
  return { status: 500, body: { error: 'internal server error' } };
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body } = toErrorResponse(error);
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  else request.log.info({ err: error, statusCode: status }, 'request refused');
  return reply.code(status).send(body);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  request.log.info('route not found');
  return reply.code(404).send({ error: 'route not found' });
}

/** Errors Fastify raises before routing (e.g. a URL that does not decode). */
export function frameworkErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  request.log.info({ err: error }, 'malformed request');
  const status = statusOf(error) ?? 400;
  void reply.code(status).send({ error: status === 400 ? 'malformed request URL' : 'bad request' });
}

/** Malformed HTTP on a connection (what Node's parser rejects): answer JSON, then close. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = 408;
  else if (error.code === 'HPE_HEADER_OVERFLOW') status = 431;
  const body = JSON.stringify({ error: (STATUS_CODES[status] ?? 'bad request').toLowerCase() });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
