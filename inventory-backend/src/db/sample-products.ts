// The reference inventory-app's five sample products, inserted into an empty table on request.
import type { ProductInput } from '../products/product.ts';

export const SAMPLE_PRODUCTS: readonly ProductInput[] = Object.freeze([
  { name: 'Notebook', price: 3500.0, quantity: 10 },
  { name: 'Mouse', price: 45.9, quantity: 100 },
  { name: 'Teclado', price: 120.0, quantity: 50 },
  { name: 'Monitor', price: 899.99, quantity: 25 },
  { name: 'Cadeira Gamer', price: 1299.9, quantity: 5 },
]);
