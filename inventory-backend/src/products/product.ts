// The product model shared by the HTTP layer and the repositories, with the limits the API enforces.

export interface Product {
  readonly id: number;
  readonly name: string;
  /** Decimal price with at most two fractional digits, exactly as the client sent it. */
  readonly price: number;
  readonly quantity: number;
}

/** What a client sends to create or replace a product (already validated and trimmed). */
export interface ProductInput {
  readonly name: string;
  readonly price: number;
  readonly quantity: number;
}

export interface ProductPage {
  /** How many products to return (1..MAX_PAGE_SIZE). */
  readonly count: number;
  /** How many products (ordered by id) to skip. */
  readonly start: number;
}

export const LIMITS = {
  nameMaxChars: 255,
  /** Prices are NUMERIC(10,2): below 10^8, two decimals. */
  priceExclusiveMax: 100_000_000,
  quantityMax: 2_147_483_647,
  /** Product ids are the database's INTEGER. */
  idMax: 2_147_483_647,
  pageSizeMax: 100,
} as const;

/** True when `price` is exactly some decimal with at most two fractional digits. */
export function hasAtMostTwoDecimals(price: number): boolean {
  return Number.isFinite(price) && Number(price.toFixed(2)) === price;
}

/** Exact integer cents of a validated price (11.22 → 1122). */
export function priceToCents(price: number): number {
  return Math.round(price * 100);
}

/** The price for integer cents; division is correctly rounded, so 1122 → 11.22 exactly. */
export function centsToPrice(cents: number): number {
  return cents / 100;
}

/** A validated price as the decimal text a NUMERIC(10,2) column takes ("11.22"). */
export function priceToDecimalText(price: number): string {
  return price.toFixed(2);
}

/** A NUMERIC value as returned by the database ("11.22") back to a number. */
export function decimalTextToPrice(text: string): number {
  const price = Number(text);
  if (!Number.isFinite(price)) throw new TypeError(`not a decimal price: ${JSON.stringify(text)}`);
  return price;
}
