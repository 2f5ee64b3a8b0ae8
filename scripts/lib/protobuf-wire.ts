// Just enough of the protobuf wire format to read OTLP trace exports: the fields of a message, in
// order, unknown ones included (the caller skips them). No schema compiler, no dependency.
import { DecodeError } from './errors.ts';

export type WireField =
  | { readonly field: number; readonly type: 'varint'; readonly value: bigint }
  | { readonly field: number; readonly type: 'fixed64'; readonly value: Uint8Array }
  | { readonly field: number; readonly type: 'bytes'; readonly value: Uint8Array }
  | { readonly field: number; readonly type: 'fixed32'; readonly value: Uint8Array };

function readVarint(buf: Uint8Array, start: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let pos = start; pos < buf.length && shift < 70n; pos++) {
    const byte = buf[pos] as number;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, pos + 1];
    shift += 7n;
  }
  throw new DecodeError(`malformed varint at byte ${start}`);
}

function slice(buf: Uint8Array, start: number, length: number): Uint8Array {
  if (start + length > buf.length) {
    throw new DecodeError(`field of ${length} bytes at byte ${start} runs past the end`);
  }
  return buf.subarray(start, start + length);
}

/** The fields of one message, in wire order. */
export function* readFields(buf: Uint8Array): Generator<WireField> {
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    pos = afterKey;
    switch (wireType) {
      case 0: {
        const [value, next] = readVarint(buf, pos);
        pos = next;
        yield { field, type: 'varint', value };
        break;
      }
      case 1:
        yield { field, type: 'fixed64', value: slice(buf, pos, 8) };
        pos += 8;
        break;
      case 2: {
        const [length, next] = readVarint(buf, pos);
        const value = slice(buf, next, Number(length));
        pos = next + Number(length);
        yield { field, type: 'bytes', value };
        break;
      }
      case 5:
        yield { field, type: 'fixed32', value: slice(buf, pos, 4) };
        pos += 4;
        break;
      default:
        throw new DecodeError(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
}

export function utf8(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('utf8');
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** A varint read as a signed 64-bit integer (two's complement), as a number. */
export function int64(value: bigint): number {
  return Number(BigInt.asIntN(64, value));
}

export function double(bytes: Uint8Array): number {
  return Buffer.from(bytes).readDoubleLE(0);
}
