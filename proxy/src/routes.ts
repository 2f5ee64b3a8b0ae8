// Names each request by method and path: the handler and route template used for span names,
// metrics and profile labels. Unmatched requests all share one name, so scanning random paths
// cannot mint new label values.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { RoutesFileError } from './errors.ts';

export interface RouteMatch {
  readonly handler: string;
  /** The template (`/product/{id}`), never the raw path. */
  readonly route: string;
  readonly matched: boolean;
}

export interface RouteDefinition {
  /** An HTTP method, or `*` for any. */
  readonly method: string;
  /** A path template: literal segments and `{name}` placeholders, each matching one segment. */
  readonly path: string;
  readonly handler: string;
}

export const UNMATCHED: RouteMatch = Object.freeze({
  handler: 'unmatched',
  route: 'unmatched',
  matched: false,
});

/** The reference inventory service's API. */
export const INVENTORY_ROUTES: readonly RouteDefinition[] = Object.freeze([
  { method: 'GET', path: '/products', handler: 'get_products' },
  { method: 'POST', path: '/product', handler: 'create_product' },
  { method: 'GET', path: '/product/{id}', handler: 'get_product' },
  { method: 'PUT', path: '/product/{id}', handler: 'update_product' },
  { method: 'DELETE', path: '/product/{id}', handler: 'delete_product' },
  { method: 'GET', path: '/health', handler: 'health' },
]);

const LABEL_VALUE = /^[A-Za-z0-9_.:/{}-]{1,128}$/;
const HANDLER_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

const routeSchema = z.strictObject({
  method: z
    .string()
    .regex(/^([A-Za-z]+|\*)$/, 'method must be an HTTP method name or *')
    .transform((m) => m.toUpperCase()),
  path: z
    .string()
    .startsWith('/', 'path must start with /')
    .regex(LABEL_VALUE, 'path may hold only letters, digits and _ . : / { } -, at most 128 characters'),
  handler: z.string().regex(HANDLER_NAME, 'handler must match [A-Za-z_][A-Za-z0-9_]*, at most 64 characters'),
});
const routesFileSchema = z.array(routeSchema).max(1000, 'at most 1000 routes');

interface CompiledRoute {
  readonly method: string;
  readonly segments: readonly (string | null)[];
  readonly match: RouteMatch;
}

export interface RouteTable {
  match(method: string, path: string): RouteMatch;
  readonly definitions: readonly RouteDefinition[];
}

export function createRouteTable(definitions: readonly RouteDefinition[]): RouteTable {
  const exact = new Map<string, RouteMatch>();
  const templated: CompiledRoute[] = [];
  for (const definition of definitions) {
    const { method, path, handler } = routeSchema.parse(definition);
    const match: RouteMatch = Object.freeze({ handler, route: path, matched: true });
    const segments = path.split('/').map((segment) => (/^\{[^{}/]+\}$/.test(segment) ? null : segment));
    // Exact paths take a map look-up; only templates pay for a segment walk.
    if (segments.every((s) => s !== null) && method !== '*') {
      const key = `${method} ${path}`;
      if (!exact.has(key)) exact.set(key, match);
    } else {
      templated.push({ method, segments, match });
    }
  }
  return {
    definitions: Object.freeze([...definitions]),
    match(method, rawPath) {
      const path = pathOnly(rawPath);
      const hit = exact.get(`${method} ${path}`) ?? exact.get(`${method} ${trimSlash(path)}`);
      if (hit) return hit;
      if (templated.length === 0) return UNMATCHED;
      const segments = trimSlash(path).split('/');
      for (const route of templated) {
        if (route.method !== '*' && route.method !== method) continue;
        if (route.segments.length !== segments.length) continue;
        let ok = true;
        for (let i = 0; i < segments.length; i++) {
          const expected = route.segments[i];
          const actual = segments[i];
          if (expected === null ? actual === '' : expected !== actual) {
            ok = false;
            break;
          }
        }
        if (ok) return route.match;
      }
      return UNMATCHED;
    },
  };
}

/** Loads `ROUTES_FILE`: a JSON array of `{ "method", "path", "handler" }`. */
export function loadRouteTable(routesFile: string | undefined): RouteTable {
  if (routesFile === undefined) return createRouteTable(INVENTORY_ROUTES);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(routesFile, 'utf8'));
  } catch (error) {
    throw new RoutesFileError(
      `ROUTES_FILE=${JSON.stringify(routesFile)} is invalid: cannot read it as JSON (${(error as Error).message})`,
      { cause: error },
    );
  }
  const parsed = routesFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RoutesFileError(
      `ROUTES_FILE=${JSON.stringify(routesFile)} is invalid: entry ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'bad entry'}`,
    );
  }
  return createRouteTable(parsed.data);
}

function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

function trimSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}
