/**
 * Random secrets for signing keys and tokens: hex, base64, base64url or alphanumeric, and their
 * entropy. `generate-secret` runs on the fast path, so this module imports nothing heavy, and many
 * secrets are drawn and encoded at once.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { UsageError } from '../io/errors.js';
import { ALNUM, randomString } from './random.js';

export const ENCODINGS = ['hex', 'base64', 'base64url', 'alnum'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/** 32 bytes, as `openssl rand -hex 32` and Python's `secrets.token_hex(32)`. */
export const DEFAULT_BYTES = 32;
/** Secrets with less entropy are refused unless the caller allows weak ones. */
export const MIN_BITS = 128;
export const MAX_BYTES = 1024;
export const MAX_LENGTH = 1024;
const ALNUM_BITS = Math.log2(ALNUM.length);

export interface SecretSpec {
  encoding: Encoding;
  /** Random bytes per secret; for alnum, characters. */
  size: number;
  /** Characters per secret. */
  width: number;
  /** Entropy per secret in bits, rounded down. */
  bits: number;
}

/** The flags that choose a secret, as the command line gives them. */
export interface SecretFlags {
  bytes?: string;
  encoding?: string;
  length?: string;
  allowWeak?: boolean;
}

/** A whole-number flag in min..max; undefined when the flag is not given. */
export function wholeNumber(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Check the flags and work out the secret's size, width and entropy. */
export function secretSpec(flags: SecretFlags): SecretSpec {
  const encoding = (flags.encoding ?? 'hex') as Encoding;
  if (!ENCODINGS.includes(encoding)) {
    throw new UsageError(`--encoding must be one of ${ENCODINGS.join(', ')}, got ${JSON.stringify(flags.encoding)}`);
  }
  const bytes = wholeNumber('--bytes', flags.bytes, 1, MAX_BYTES);
  const length = wholeNumber('--length', flags.length, 1, MAX_LENGTH);
  if (length !== undefined && encoding !== 'alnum') {
    throw new UsageError(`--length counts characters of --encoding alnum; for ${encoding}, give --bytes`);
  }
  if (length !== undefined && bytes !== undefined) throw new UsageError('give --bytes or --length, not both');
  let spec: SecretSpec;
  if (encoding === 'alnum') {
    // --bytes N with alnum: enough characters for at least 8N bits.
    const size = length ?? Math.ceil(((bytes ?? DEFAULT_BYTES) * 8) / ALNUM_BITS);
    spec = { encoding, size, width: size, bits: Math.floor(size * ALNUM_BITS) };
  } else {
    const size = bytes ?? DEFAULT_BYTES;
    const width = encoding === 'hex' ? 2 * size : encoding === 'base64' ? 4 * Math.ceil(size / 3) : Math.ceil((4 * size) / 3);
    spec = { encoding, size, width, bits: 8 * size };
  }
  if (spec.bits < MIN_BITS && !flags.allowWeak) {
    throw new UsageError(
      `a ${spec.bits}-bit secret is too weak: signing keys need at least ${MIN_BITS} bits (16 bytes)`,
      'pass --allow-weak to make one anyway (for tests, never for real keys)',
    );
  }
  return spec;
}

/** `count` independent secrets, concatenated: count × spec.width characters. */
function draw(spec: SecretSpec, count: number): string {
  if (spec.encoding === 'alnum') return randomString(ALNUM, count * spec.size);
  const bytes = randomBytes(count * spec.size);
  // Hex has no padding, and base64 of whole 3-byte groups has none either: encode all at once.
  if (spec.encoding === 'hex' || spec.size % 3 === 0) return bytes.toString(spec.encoding);
  let text = '';
  for (let i = 0; i < count; i++) text += bytes.toString(spec.encoding, i * spec.size, (i + 1) * spec.size);
  return text;
}

export function newSecret(spec: SecretSpec): string {
  return draw(spec, 1);
}

/** Lines are built and written about this many bytes at a time. */
const CHUNK_BYTES = 64 * 1024;
/** Byte b as two hex digits: the first in the low byte, the second in the high one. */
const HEX_PAIRS = new Uint16Array(256);
for (let b = 0; b < 256; b++) HEX_PAIRS[b] = '0123456789abcdef'.charCodeAt(b >> 4) | ('0123456789abcdef'.charCodeAt(b & 15) << 8);

/**
 * Hex-encode `count` groups of `size` bytes that start at `from` in `buf` into the lines of the
 * same buffer (`stride` bytes apart, each secret `offset` bytes in). Done here rather than with
 * `toString('hex')`, which makes a string of every chunk that is then copied back into bytes:
 * about twice as slow for 100,000 secrets. One flat loop, as it is optimised soonest.
 */
export function hexInto(buf: Uint8Array, from: number, count: number, size: number, stride: number, offset: number): void {
  const pairs = HEX_PAIRS; // a local: the bundle makes module constants mutable variables
  const skip = stride - 2 * size;
  let o = offset;
  let left = size;
  for (let r = from, end = from + count * size; r < end; r++) {
    const pair = pairs[buf[r]!]!;
    buf[o] = pair; // a Uint8Array keeps the low byte
    buf[o + 1] = pair >> 8;
    o += 2;
    if (--left === 0) {
      left = size;
      o += skip;
    }
  }
}

/**
 * Write `count` distinct secrets through `write`, one per line as `before + secret + after + '\n'`,
 * in chunks of about 64 KiB of bytes. `write` must use a chunk before it returns: the buffer is
 * reused for the next one. A repeat of a secret of 128 bits or more is practically impossible
 * (below 2^-88 even among a million), so only weaker ones are checked, and repeats drawn again.
 */
export function writeSecretLines(spec: SecretSpec, count: number, write: (chunk: Uint8Array) => void, before = '', after = ''): void {
  const seen = spec.bits < MIN_BITS ? new Set<string>() : undefined;
  const possible = (spec.encoding === 'alnum' ? ALNUM.length : 256) ** spec.size;
  if (count > possible) throw new UsageError(`there are only ${possible} different ${spec.bits}-bit secrets, fewer than --count ${count}`);
  const { width } = spec;
  const hex = spec.encoding === 'hex';
  const offset = before.length;
  const stride = offset + width + after.length + 1;
  const perChunk = Math.min(count, Math.max(1, Math.floor(CHUNK_BYTES / stride)));
  // One buffer: a chunk's lines (written once, then only their secrets change), then what is
  // drawn for them (random bytes for hex, else encoded characters), which goes into the lines.
  const drawn = perChunk * stride;
  const buf = Buffer.alloc(drawn + perChunk * (hex ? spec.size : width));
  for (let line = 0; line < drawn; line += stride) {
    buf.write(before, line, 'latin1');
    buf.write(after, line + offset + width, 'latin1');
    buf[line + stride - 1] = 0x0a;
  }
  for (let done = 0; done < count; done += perChunk) {
    const n = Math.min(perChunk, count - done);
    if (hex) {
      randomFillSync(buf, drawn, n * spec.size);
      hexInto(buf, drawn, n, spec.size, stride, offset);
    } else {
      buf.write(draw(spec, n), drawn, 'latin1');
      for (let i = 0; i < n; i++) buf.copyWithin(i * stride + offset, drawn + i * width, drawn + (i + 1) * width);
    }
    if (seen) {
      for (let i = 0; i < n; i++) {
        const at = i * stride + offset;
        let secret = buf.toString('latin1', at, at + width);
        while (seen.has(secret)) buf.write((secret = newSecret(spec)), at, 'latin1');
        seen.add(secret);
      }
    }
    write(buf.subarray(0, n * stride));
  }
}
