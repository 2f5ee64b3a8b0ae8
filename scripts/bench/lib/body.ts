// The fixed response of the benchmark backend.

export const BODY_BYTES = 212;

/** A product-shaped JSON document padded to exactly BODY_BYTES bytes. */
export function fixedBody(): Buffer {
  const doc = { id: 1, name: 'Benchmark widget', price: 10.5, quantity: 42, tags: ['bench'], note: '' };
  const base = Buffer.byteLength(JSON.stringify(doc));
  doc.note = 'x'.repeat(BODY_BYTES - base);
  const body = Buffer.from(JSON.stringify(doc));
  if (body.length !== BODY_BYTES) throw new Error(`body is ${body.length} bytes, expected ${BODY_BYTES}`);
  return body;
}
