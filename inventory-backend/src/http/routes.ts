// The products API routes: handlers validate, call the repository, and shape the response. Each
// route names its handler (`config.handler`): the span attribute and profile label `handler`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ProductRepository } from '../db/repository.ts';
import { ProductNotFoundError } from '../errors.ts';
import type { Product } from '../products/product.ts';
import { toErrorResponse } from './error-responses.ts';
import { parseProductId, parseProductInput, parseProductPage } from './validation.ts';

interface IdParams {
  id: string;
}

export interface HealthBody {
  status: 'ok' | 'error';
  database: 'connected' | 'disconnected';
  error?: string;
}

/** The handler name of a known path asked with a method it does not serve (405). */
export const METHOD_NOT_ALLOWED_HANDLER = 'method_not_allowed';

/** The API's paths and the methods each serves (HEAD comes with GET). */
export const API_ROUTES = {
  '/products': ['GET', 'HEAD'],
  '/product': ['POST'],
  '/product/:id': ['GET', 'HEAD', 'PUT', 'DELETE'],
  '/health': ['GET', 'HEAD'],
} as const satisfies Record<string, readonly string[]>;

export function registerProductRoutes(app: FastifyInstance, repository: ProductRepository): void {
  app.get('/products', { config: { handler: 'get_products' } }, async (request): Promise<Product[]> => {
    const page = parseProductPage(request.query);
    return repository.list(page);
  });

  app.get<{ Params: IdParams }>(
    '/product/:id',
    { config: { handler: 'get_product' } },
    async (request): Promise<Product> => {
      const id = parseProductId(request.params.id);
      const product = await repository.get(id);
      if (product === null) throw new ProductNotFoundError(id);
      return product;
    },
  );

  app.post(
    '/product',
    { config: { handler: 'create_product' } },
    async (request, reply): Promise<Product> => {
      const input = parseProductInput(request.body);
      const product = await repository.create(input);
      void reply.code(201);
      return product;
    },
  );

  app.put<{ Params: IdParams }>(
    '/product/:id',
    { config: { handler: 'update_product' } },
    async (request): Promise<Product> => {
      const id = parseProductId(request.params.id);
      const input = parseProductInput(request.body);
      const product = await repository.update(id, input);
      if (product === null) throw new ProductNotFoundError(id);
      return product;
    },
  );

  app.delete<{ Params: IdParams }>(
    '/product/:id',
    { config: { handler: 'delete_product' } },
    async (request) => {
      const id = parseProductId(request.params.id);
      const deleted = await repository.delete(id);
      if (!deleted) throw new ProductNotFoundError(id);
      return { result: 'success', message: `Product with ID ${id} deleted` };
    },
  );

  app.get('/health', { config: { handler: 'health' } }, async (request, reply): Promise<HealthBody> => {
    try {
      await repository.count();
      return { status: 'ok', database: 'connected' };
    } catch (error) {
      request.log.warn({ err: error }, 'health check: database unreachable');
      void reply.code(503);
      return { status: 'error', database: 'disconnected', error: toErrorResponse(error).body.error };
    }
  });
}

/**
 * For each known path, every other HTTP method answers 405 with an `Allow` header. It answers in
 * onRequest, before any body is read, so a body never changes the verdict.
 */
export function registerMethodNotAllowed(app: FastifyInstance): void {
  for (const [url, allowed] of Object.entries(API_ROUTES)) {
    const refused = app.supportedMethods.filter((method) => !(allowed as readonly string[]).includes(method));
    const allow = allowed.join(', ');
    app.route({
      method: refused,
      url,
      exposeHeadRoute: false,
      config: { handler: METHOD_NOT_ALLOWED_HANDLER },
      onRequest: (request: FastifyRequest, reply: FastifyReply, done) => {
        request.log.info({ allow }, 'method not allowed');
        void reply
          .code(405)
          .header('allow', allow)
          .send({ error: `method ${request.method} not allowed` });
        done();
      },
      handler: () => undefined,
    });
  }
}
