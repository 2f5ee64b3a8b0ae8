// The few protobuf wire-format primitives the OTLP span encoder needs, written into one reusable
// Buffer. Nested messages reserve one length byte and shift their body only when it turns out to
// be 128 bytes or longer, so the common small message (a KeyValue, an AnyValue) costs no copy.

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;
export const WIRE = { VARINT: WIRE_VARINT, FIXED64: WIRE_FIXED64, LEN: WIRE_LEN, FIXED32: WIRE_FIXED32 };

const TWO_32 = 4294967296;

function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** A hex digit's value; anything else counts as 0 (an id the SDK accepted has no such digit). */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 97 && code <= 102) return code - 87; // a-f
  if (code >= 65 && code <= 70) return code - 55; // A-F
  return 0;
}

export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  reset(): void {
    this.pos = 0;
  }

  /** The bytes written so far, as a view on the writer's buffer (valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written so far. */
  copy(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }

  ensure(bytes: number): void {
    const needed = this.pos + bytes;
    if (needed <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** A field key; every field number used by OTLP traces fits in two bytes. */
  tag(field: number, wireType: number): void {
    this.uint32((field << 3) | wireType);
  }

  /** An unsigned varint of at most 32 bits. */
  uint32(value: number): void {
    this.ensure(5);
    const buf = this.buf;
    let v = value >>> 0;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** An int64 varint from a safe integer; negative values take ten bytes (two's complement). */
  int64(value: number): void {
    if (value >= 0 && value < TWO_32) {
      this.uint32(value);
      return;
    }
    this.ensure(10);
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = Math.floor(value / TWO_32) >>> 0;
    } else {
      const abs = -value;
      low = ~(abs >>> 0) >>> 0;
      high = ~(Math.floor(abs / TWO_32) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    const buf = this.buf;
    while (high > 0 || low > 0x7f) {
      buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low;
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  fixed64(low: number, high: number): void {
    this.ensure(8);
    this.buf.writeUInt32LE(low >>> 0, this.pos);
    this.buf.writeUInt32LE(high >>> 0, this.pos + 4);
    this.pos += 8;
  }

  /**
   * An OpenTelemetry HrTime [seconds, nanoseconds] as fixed64 nanoseconds since the epoch. The
   * product exceeds 2^53, so it is split into 32-bit halves without losing precision.
   */
  hrTime(seconds: number, nanos: number): void {
    const secondsLow = seconds % 65536;
    const secondsHigh = Math.floor(seconds / 65536);
    // a < 2^46 and b < 2^46: both exact in a double.
    const a = secondsLow * 1e9 + nanos;
    const b = secondsHigh * 1e9;
    // total = a + b * 2^16 = a + bHigh * 2^32 + bLow * 2^16
    const bLow = b % 65536;
    const bHigh = Math.floor(b / 65536);
    const low = (a % TWO_32) + bLow * 65536;
    this.fixed64(low % TWO_32, Math.floor(a / TWO_32) + bHigh + Math.floor(low / TWO_32));
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** A length-prefixed UTF-8 string. */
  string(value: string): void {
    const length = value.length;
    // Short ASCII strings (most attribute values) are copied byte by byte, as the SDK's own writer
    // does; anything else goes through Buffer's UTF-8 writer.
    if (length < 64) {
      this.ensure(length + 1);
      const buf = this.buf;
      const start = this.pos;
      buf[start] = length;
      let i = 0;
      for (; i < length; i++) {
        const c = value.charCodeAt(i);
        if (c > 0x7f) break;
        buf[start + 1 + i] = c;
      }
      if (i === length) {
        this.pos = start + 1 + length;
        return;
      }
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    this.uint32(bytes);
    this.ensure(bytes);
    this.pos += this.buf.write(value, this.pos, bytes, 'utf8');
  }

  /** Length-prefixed raw bytes. */
  bytes(value: Uint8Array): void {
    this.uint32(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** Bytes already encoded elsewhere (a cached field), written as they are. */
  raw(value: Uint8Array): void {
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** A length-prefixed bytes field from lowercase or uppercase hex (trace and span ids). */
  hexBytes(hex: string): void {
    const length = hex.length >>> 1;
    this.ensure(length + 1);
    const buf = this.buf;
    let at = this.pos;
    buf[at++] = length;
    for (let i = 0; i < length; i++) {
      buf[at++] = (hexDigit(hex.charCodeAt(2 * i)) << 4) | hexDigit(hex.charCodeAt(2 * i + 1));
    }
    this.pos = at;
  }

  /** Starts a nested message: one length byte is reserved. Returns what `endMessage` needs. */
  beginMessage(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Writes the nested message's length, moving its body if the length needs more than a byte. */
  endMessage(lengthAt: number): void {
    const length = this.pos - lengthAt - 1;
    if (length < 0x80) {
      this.buf[lengthAt] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.ensure(extra);
    const buf = this.buf;
    buf.copyWithin(lengthAt + 1 + extra, lengthAt + 1, this.pos);
    this.pos += extra;
    let v = length;
    let at = lengthAt;
    while (v > 0x7f) {
      buf[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[at] = v;
  }
}
