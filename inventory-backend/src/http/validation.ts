// Request validation: product ids, paging parameters and product payloads (zod). Every failure is
// a ValidationError whose message is safe to return to the client.
import * as z from 'zod';
import { ValidationError } from '../errors.ts';
import { LIMITS, hasAtMostTwoDecimals } from '../products/product.ts';
import type { ProductInput, ProductPage } from '../products/product.ts';

export const INVALID_PRODUCT_ID = 'invalid product ID';
export const INVALID_PAYLOAD = 'invalid request payload';

/** A positive integer id within the database's INTEGER range; leading zeros are tolerated. */
export function parseProductId(raw: unknown): number {
  if (typeof raw !== 'string' || !/^\d{1,10}$/.test(raw)) throw new ValidationError(INVALID_PRODUCT_ID);
  const id = Number(raw);
  if (id < 1 || id > LIMITS.idMax) throw new ValidationError(INVALID_PRODUCT_ID);
  return id;
}

/** Characters as the databases count them (Unicode code points, not UTF-16 units). */
function codePointLength(text: string): number {
  return Array.from(text).length;
}

function integerParam(min: number, max: number, message: string) {
  return z
    .string({ error: message })
    .regex(/^\d{1,16}$/, { error: message })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { error: message });
}

const pageSchema = z.object({
  count: integerParam(1, LIMITS.pageSizeMax, `count must be an integer between 1 and ${LIMITS.pageSizeMax}`)
    .optional()
    .default(LIMITS.pageSizeMax),
  start: integerParam(0, Number.MAX_SAFE_INTEGER, 'start must be a non-negative integer')
    .optional()
    .default(0),
});

/** `?count=&start=` → a page; absent values mean "from the first, up to the maximum page size". */
export function parseProductPage(query: unknown): ProductPage {
  const result = pageSchema.safeParse(query ?? {});
  if (result.success) return result.data;
  throw new ValidationError(result.error.issues[0]?.message ?? 'invalid paging parameters');
}

/**
 * Marks an issue as structural (wrong type, not an object, unknown field): those all answer the
 * one generic payload message. A missing field instead names the field.
 */
function typeError(field: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? `${field} is required` : INVALID_PAYLOAD;
}

const productInputSchema = z.strictObject(
  {
    name: z
      .string({ error: typeError('name') })
      .trim()
      .refine((name) => name.length > 0, { error: 'name must not be empty', abort: true })
      .refine((name) => codePointLength(name) <= LIMITS.nameMaxChars, {
        error: `name must be at most ${LIMITS.nameMaxChars} characters`,
        abort: true,
      })
      .refine((name) => !name.includes('\u0000'), { error: 'name must not contain NUL characters' }),
    price: z
      .number({ error: typeError('price') })
      .refine((price) => price >= 0, { error: 'price must not be negative', abort: true })
      .refine((price) => price < LIMITS.priceExclusiveMax, {
        error: `price must be below ${LIMITS.priceExclusiveMax}`,
        abort: true,
      })
      .refine(hasAtMostTwoDecimals, { error: 'price must have at most 2 decimal places' }),
    quantity: z
      .number({ error: typeError('quantity') })
      .refine((quantity) => Number.isInteger(quantity) && quantity >= 0 && quantity <= LIMITS.quantityMax, {
        error: `quantity must be an integer between 0 and ${LIMITS.quantityMax}`,
      }),
  },
  { error: () => INVALID_PAYLOAD },
);

/**
 * The raw request body (text, or undefined when there was none) → a validated product input with
 * its name trimmed. Malformed JSON, a non-object, unknown fields or a wrong type → the generic
 * payload message; a bad value → a message naming the field.
 */
export function parseProductInput(rawBody: unknown): ProductInput {
  let json: unknown;
  try {
    json = JSON.parse(typeof rawBody === 'string' ? rawBody : '');
  } catch {
    throw new ValidationError(INVALID_PAYLOAD);
  }
  const result = productInputSchema.safeParse(json);
  if (result.success) return result.data;
  const messages = result.error.issues.map((issue) => issue.message);
  if (messages.includes(INVALID_PAYLOAD)) throw new ValidationError(INVALID_PAYLOAD);
  throw new ValidationError(messages.join('; '));
}
