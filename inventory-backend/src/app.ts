// Builds the Fastify application: routes, body handling and error shapes. No listening here.
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { profiledRepository } from './db/profiled-repository.ts';
import type { ProductRepository } from './db/repository.ts';
import {
  BODY_LIMIT_BYTES,
  clientErrorHandler,
  errorHandler,
  frameworkErrorHandler,
  notFoundHandler,
} from './http/error-responses.ts';
import { drainConnectionsOnClose } from './http/drain-on-close.ts';
import { registerRequestTelemetry } from './http/request-telemetry.ts';
import { registerMethodNotAllowed, registerProductRoutes } from './http/routes.ts';
import { activeTraceContext } from './telemetry/request-context.ts';
import { telemetryOff } from './telemetry/telemetry.ts';
import type { Telemetry } from './telemetry/telemetry.ts';

export interface BuildAppOptions {
  readonly repository: ProductRepository;
  /** A pino logger; defaults to a silent one. */
  readonly logger?: FastifyBaseLogger;
  /** Tracing and profiler; default: both off. */
  readonly telemetry?: Telemetry;
}

export function buildApp(options: BuildAppOptions): FastifyInstance {
  const logger: FastifyBaseLogger = options.logger ?? pino({ level: 'silent' });
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { ignoreTrailingSlash: true },
    // During shutdown, requests already on an open connection are served (then the connection
    // closes) instead of answered with Fastify's own 503 body.
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  });

  // Bodies are kept as text whatever their Content-Type, as the reference decodes any body as
  // JSON; handlers that take a payload parse and validate it themselves. bodyLimit still applies.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    done(null, body);
  });

  const telemetry = options.telemetry ?? telemetryOff();
  // First, so the request's span and labels cover every later hook, the handler and the database.
  registerRequestTelemetry(app, telemetry);
  drainConnectionsOnClose(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  // Every database call of every route goes through the one traced, labelled wrapper.
  const repository = profiledRepository(options.repository, {
    tracer: telemetry.tracing.tracer,
    profiler: telemetry.profiler,
    activeContext: activeTraceContext,
  });
  registerProductRoutes(app, repository);
  registerMethodNotAllowed(app);
  return app;
}
