// The one wrapper every database call goes through: `profiledDbOperation(operation, attributes,
// fn)` runs `fn` inside a CLIENT span that follows OpenTelemetry's database semantic conventions,
// with the profile labels `db_operation` and `component=database` on every sample taken until
// `fn` settles, awaits included. `profiledRepository` applies it to each ProductRepository method,
// so no route can reach the database around it.
//
// Product ids are span attributes (`app.product.id`), never profile labels: they are unbounded.
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import type { Profiler } from '@spanscope/proxy';
import { InventoryError } from '../errors.ts';
import { runOutsideRequests } from '../telemetry/request-context.ts';
import type { Product } from '../products/product.ts';
import { DB_OPERATIONS, PRODUCTS_TABLE } from './repository.ts';
import type { DbOperation, ProductRepository, RepositoryMethod } from './repository.ts';

/** Span attribute carrying the product a call reads or writes. */
export const PRODUCT_ID_ATTRIBUTE = 'app.product.id';

export interface DbTelemetry {
  readonly tracer: Tracer;
  readonly profiler: Profiler;
  /** The context to parent CLIENT spans on: the request's, or ROOT_CONTEXT outside requests. */
  readonly activeContext: () => Context;
}

/**
 * Runs one database call. `attributes` must hold `db.operation.name` and `db.collection.name`
 * (they name the span, `{operation} {collection}`); `fn` receives the span to add what it learns
 * (a created id, a row count). A failure ends the span with ERROR status and `error.type` and is
 * rethrown unchanged.
 */
export type ProfiledDbOperation = <T>(
  operation: DbOperation,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
) => Promise<T>;

/** PostgreSQL SQLSTATE codes: five digits or upper-case letters. */
const SQLSTATE = /^[0-9A-Z]{5}$/;

function recordFailure(span: Span, error: unknown): void {
  const type =
    error instanceof InventoryError ? error.name : error instanceof Error ? error.constructor.name : 'Error';
  span.setAttribute('error.type', type);
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string' && SQLSTATE.test(cause.code)) {
    span.setAttribute('db.response.status_code', cause.code);
  }
  // The stable code only: driver messages can quote values.
  span.setStatus({
    code: SpanStatusCode.ERROR,
    ...(error instanceof InventoryError ? { message: error.code } : {}),
  });
}

export function createProfiledDbOperation(telemetry: DbTelemetry): ProfiledDbOperation {
  const { tracer, profiler, activeContext } = telemetry;
  return <T>(operation: DbOperation, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> => {
    const name = `${String(attributes['db.operation.name'])} ${String(attributes['db.collection.name'])}`;
    const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, activeContext());
    // Ending a span can arm the export batch timer, whose callbacks (the export) would then run
    // with this request's labels: end it outside any request.
    const end = (): void => {
      runOutsideRequests(() => {
        span.end();
      });
    };
    let pending: Promise<T>;
    try {
      pending = profiler.runDatabaseOperation(operation, () => fn(span));
    } catch (error) {
      recordFailure(span, error);
      end();
      throw error;
    }
    // Settled outside the db_operation scope: what the caller does next is not database time.
    return pending.then(
      (result) => {
        end();
        return result;
      },
      (error: unknown) => {
        recordFailure(span, error);
        end();
        throw error;
      },
    );
  };
}

/** The attributes of each method's span, computed once per repository. */
function staticAttributes(repository: ProductRepository): Record<RepositoryMethod, Attributes> {
  const { description } = repository;
  const base: Attributes = { 'db.system.name': description.system, 'db.collection.name': PRODUCTS_TABLE };
  if (description.namespace !== undefined) base['db.namespace'] = description.namespace;
  if (description.serverAddress !== undefined) base['server.address'] = description.serverAddress;
  if (description.serverPort !== undefined) base['server.port'] = description.serverPort;
  const result = {} as Record<RepositoryMethod, Attributes>;
  for (const method of Object.keys(DB_OPERATIONS) as RepositoryMethod[]) {
    const query = description.queries[method];
    result[method] = Object.freeze({
      ...base,
      'db.operation.name': query.operation,
      'db.query.text': query.text,
    });
  }
  return result;
}

function withProductId(attributes: Attributes, id: number): Attributes {
  return { ...attributes, [PRODUCT_ID_ATTRIBUTE]: id };
}

/** `repository` with every database method run through `profiledDbOperation`. */
export function profiledRepository(repository: ProductRepository, telemetry: DbTelemetry): ProductRepository {
  const profiledDbOperation = createProfiledDbOperation(telemetry);
  const attributes = staticAttributes(repository);
  const returnedRows = (span: Span, rows: number): void => {
    span.setAttribute('db.response.returned_rows', rows);
  };
  return {
    kind: repository.kind,
    description: repository.description,
    list: (page) =>
      profiledDbOperation(DB_OPERATIONS.list, attributes.list, async (span) => {
        const products = await repository.list(page);
        returnedRows(span, products.length);
        return products;
      }),
    get: (id) =>
      profiledDbOperation(DB_OPERATIONS.get, withProductId(attributes.get, id), async (span) => {
        const product = await repository.get(id);
        returnedRows(span, product === null ? 0 : 1);
        return product;
      }),
    create: (input) =>
      profiledDbOperation(DB_OPERATIONS.create, attributes.create, async (span): Promise<Product> => {
        const product = await repository.create(input);
        span.setAttribute(PRODUCT_ID_ATTRIBUTE, product.id);
        return product;
      }),
    update: (id, input) =>
      profiledDbOperation(DB_OPERATIONS.update, withProductId(attributes.update, id), () =>
        repository.update(id, input),
      ),
    delete: (id) =>
      profiledDbOperation(DB_OPERATIONS.delete, withProductId(attributes.delete, id), () =>
        repository.delete(id),
      ),
    count: () => profiledDbOperation(DB_OPERATIONS.count, attributes.count, () => repository.count()),
    close: () => repository.close(),
  };
}
