/**
 * Big keychains as waved and keysmith write them, handled on their bytes: every line is
 * `ID:$2b$NN$` + 53 characters, the ID printable ASCII, lines ending in LF or CRLF. Listing or
 * removing from 100,000 such lines should cost little more than starting Node, so no string or
 * object is made per line: one pass checks every byte and notes where each ID is, a radix sort on
 * numbers orders them, and output is copied bytes.
 *
 * Any other file (comments, blank lines, other hashes, non-ASCII, any mistake, a duplicate ID)
 * makes scanPlainKeychain return undefined, and the caller takes the general parser, which
 * accepts it or reports the exact error. So these functions accept a subset of what
 * parseKeychain accepts, and give the same results on it (test/keychain-parse-fast.test.ts).
 */

/** Characters of bcrypt's base64, by byte value. */
const BCRYPT_BASE64 = new Uint8Array(256);
for (const c of './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789') BCRYPT_BASE64[c.charCodeAt(0)] = 1;

/**
 * IDs are sorted on their first PREFIX characters (7 bits each: IDs are ASCII), as a 42-bit number
 * kept in two int32 halves of three characters, then byte by byte where those are equal.
 */
const PREFIX = 6;
const HALF = 3;
/** The radix sort's digit: three passes of 14 bits cover the 42. */
const DIGIT_BITS = 14;
const BUCKETS = 1 << DIGIT_BITS;
const DIGIT_MASK = BUCKETS - 1;

export interface PlainKeychain {
  file: Uint8Array;
  count: number;
  /** Entry i: its ID is file[lineStart[i], idEnd[i]); its line is file[lineStart[i], lineStart[i + 1]). */
  idEnd: Int32Array;
  lineStart: Int32Array;
  /** Entry i's sort key: its first PREFIX ID characters (shorter IDs padded with zeros), the first
   * HALF of them in `hi`, the others in `lo`. */
  hi: Int32Array;
  lo: Int32Array;
  /** How many keys have each value of each radix digit (see idOrder), counted by the scan. */
  digitCounts: Int32Array;
  /** Bytes of the listing: every ID and a newline. */
  listBytes: number;
}

/**
 * Check every byte of a keychain of plain bcrypt lines and index its entries; undefined when the
 * file is anything else (see the module comment). Sorting and duplicates are left to idOrder.
 */
export function scanPlainKeychain(file: Uint8Array): PlainKeychain | undefined {
  const n = file.length;
  // A line is at least 62 bytes (a one-character ID, ':', 60 for the hash, '\n' unless last).
  const max = Math.floor(n / 62) + 1;
  const idEnd = new Int32Array(max);
  const lineStart = new Int32Array(max + 1);
  const his = new Int32Array(max);
  const los = new Int32Array(max);
  // Counted here rather than in a loop of idOrder's own: this loop is optimized by the time it
  // matters, a new loop starts out interpreted (a few ms for 100,000 entries).
  const counts = new Int32Array(3 * BUCKETS);
  const b64 = BCRYPT_BASE64;
  let count = 0;
  let listBytes = 0;
  for (let s = 0; s < n; ) {
    // The ID: printable ASCII up to the first ':'; its first characters make its sort key.
    lineStart[count] = s;
    let i = s;
    let hi = 0;
    let lo = 0;
    for (; i < n; i++) {
      const c = file[i]!;
      if (c === 58) break;
      if (c <= 32 || c >= 127) return undefined;
      const at = i - s;
      if (at < HALF) hi = (hi << 7) | c;
      else if (at < PREFIX) lo = (lo << 7) | c;
    }
    const idLength = i - s;
    if (idLength === 0 || i === n || file[s] === 35) return undefined; // empty ID, no ':', or a '#' comment
    for (let k = idLength; k < PREFIX; k++) {
      if (k < HALF) hi <<= 7;
      else lo <<= 7;
    }
    his[count] = hi;
    los[count] = lo;
    counts[lo & DIGIT_MASK]!++;
    counts[BUCKETS + (((hi & 127) << 7) | (lo >>> DIGIT_BITS))]!++;
    counts[2 * BUCKETS + (hi >>> 7)]!++;
    idEnd[count] = i;
    listBytes += idLength + 1;
    // The hash: $2a$, $2b$ or $2y$, a cost 04..31, '$' and 53 base64 characters.
    const h = i + 1;
    const e = h + 60;
    if (e > n || file[h] !== 36 || file[h + 1] !== 50 || file[h + 3] !== 36 || file[h + 6] !== 36) return undefined;
    const variant = file[h + 2];
    if (variant !== 97 && variant !== 98 && variant !== 121) return undefined;
    const tens = file[h + 4]! - 48;
    const ones = file[h + 5]! - 48;
    const cost = tens * 10 + ones;
    if (tens < 0 || tens > 3 || ones < 0 || ones > 9 || cost < 4 || cost > 31) return undefined;
    for (let k = h + 7; k < e; k++) if (b64[file[k]!] === 0) return undefined;
    count++;
    // The line ending: LF, CRLF, or none at the end of the file.
    if (e === n) s = n;
    else if (file[e] === 10) s = e + 1;
    else if (file[e] === 13 && e + 1 < n && file[e + 1] === 10) s = e + 2;
    else return undefined;
  }
  lineStart[count] = n;
  return { file, count, idEnd, lineStart, hi: his.subarray(0, count), lo: los.subarray(0, count), digitCounts: counts, listBytes };
}

/** A plain keychain scanned and sorted (scanPlainKeychain, then idOrder), or undefined. */
export function readPlainKeychain(file: Uint8Array): { k: PlainKeychain; order: Int32Array } | undefined {
  const k = scanPlainKeychain(file);
  const order = k && idOrder(k);
  return k && order ? { k, order } : undefined;
}

/** Byte order of x[x0, x1) and y[y0, y1). */
function compareBytes(x: Uint8Array, x0: number, x1: number, y: Uint8Array, y0: number, y1: number): number {
  const len = Math.min(x1 - x0, y1 - y0);
  for (let k = 0; k < len; k++) {
    const d = x[x0 + k]! - y[y0 + k]!;
    if (d !== 0) return d;
  }
  return x1 - x0 - (y1 - y0);
}

/**
 * The entries in byte order of their IDs (as waved lists them), or undefined when two IDs are
 * the same (the general parser then reports the duplicate with its line numbers). A least
 * significant digit radix sort on the keys (three stable passes, no comparisons: faster than a
 * native sort of 100,000 numbers, and runs of equal prefixes stay in file order); only entries
 * whose keys are equal are compared byte by byte. Call it once: it turns `k.digitCounts` into
 * positions.
 */
export function idOrder(k: PlainKeychain): Int32Array | undefined {
  const { count, hi, lo, digitCounts: starts } = k;
  // The three digits of a key, most significant last: lo's low 14 bits; hi's low 7 and lo's high
  // 7; hi's high 14. The scan counted each digit's values; those counts become start positions.
  for (let d = 0; d < 3 * BUCKETS; d += BUCKETS) {
    let sum = 0;
    for (let b = d; b < d + BUCKETS; b++) {
      const c = starts[b]!;
      starts[b] = sum;
      sum += c;
    }
  }
  // Entries in file order, then by digit: three stable passes between two arrays.
  const order = new Int32Array(count);
  const other = new Int32Array(count);
  for (let i = 0; i < count; i++) other[i] = i;
  scatter(other, order, lo, 0, DIGIT_MASK, lo, 0, 0, starts, 0);
  scatter(order, other, lo, DIGIT_BITS, 127, hi, 127, 7, starts, BUCKETS);
  scatter(other, order, hi, 7, DIGIT_MASK, hi, 0, 0, starts, 2 * BUCKETS);
  // Put each run of equal keys in order.
  let runStart = 0;
  for (let j = 1; j <= count; j++) {
    if (j < count && hi[order[j]!] === hi[order[runStart]!] && lo[order[j]!] === lo[order[runStart]!]) continue;
    if (j - runStart > 1 && !sortRun(k, order, runStart, j)) return undefined;
    runStart = j;
  }
  return order;
}

/**
 * One pass of idOrder's radix sort: `from`'s entries into `to`, stably, by the digit
 * ((a >>> aShift) & aMask) | ((b & bMask) << bShift) of their keys, each to the next position
 * for its digit in `starts` (from `base` on). One function for the three passes, so that the
 * second and third run the code V8 optimized during the first.
 */
function scatter(from: Int32Array, to: Int32Array, a: Int32Array, aShift: number, aMask: number, b: Int32Array, bMask: number, bShift: number, starts: Int32Array, base: number): void {
  for (let j = 0; j < from.length; j++) {
    const i = from[j]!;
    to[starts[base + (((a[i]! >>> aShift) & aMask) | ((b[i]! & bMask) << bShift))]!++] = i;
  }
}

/** Sort order[start, end) by the IDs' bytes; false when two are equal. */
function sortRun(k: PlainKeychain, order: Int32Array, start: number, end: number): boolean {
  const { file, lineStart, idEnd } = k;
  const compare = (a: number, b: number) => compareBytes(file, lineStart[a]!, idEnd[a]!, file, lineStart[b]!, idEnd[b]!);
  const run = Array.from(order.subarray(start, end)).sort(compare);
  for (let j = 0; j < run.length; j++) {
    if (j > 0 && compare(run[j - 1]!, run[j]!) === 0) return false;
    order[start + j] = run[j]!;
  }
  return true;
}

/**
 * The IDs in `order`, one per line: the output of list-access-keys. Each ID's place in the output
 * is worked out first, and then the IDs are copied in file order: reading the file in order and
 * writing all over the (smaller) output is several times faster than the other way round, byte by
 * byte (a copyWithin or set() call per ID costs more than its 20 bytes).
 */
export function idLines(k: PlainKeychain, order: Int32Array): Uint8Array {
  const { file, count, lineStart, idEnd } = k;
  const at = new Int32Array(count);
  let o = 0;
  for (let j = 0; j < count; j++) {
    const i = order[j]!;
    at[i] = o;
    o += idEnd[i]! - lineStart[i]! + 1;
  }
  const out = Buffer.allocUnsafe(k.listBytes);
  for (let i = 0; i < count; i++) {
    let q = at[i]!;
    for (let p = lineStart[i]!, end = idEnd[i]!; p < end; p++) out[q++] = file[p]!;
    out[q] = 10;
  }
  return out;
}

/** The entry with this ID (binary search in `order`), or -1. */
export function findId(k: PlainKeychain, order: Int32Array, id: string): number {
  const { file, lineStart, idEnd } = k;
  const bytes = Buffer.from(id, 'utf8');
  let lo = 0;
  let hi = order.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const d = compareBytes(file, lineStart[order[mid]!]!, idEnd[order[mid]!]!, bytes, 0, bytes.length);
    if (d === 0) return order[mid]!;
    if (d < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * The file without the lines of these entries (as removeEntriesFromText: the other bytes as they
 * were; a file that ended without a newline still does when its last line goes).
 */
export function withoutEntries(k: PlainKeychain, remove: Iterable<number>): Uint8Array {
  const { file, lineStart, count } = k;
  const gone = [...new Set(remove)].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const i of gone) {
    if (lineStart[i]! > from) pieces.push(file.subarray(from, lineStart[i]));
    from = lineStart[i + 1]!;
  }
  if (from < file.length) pieces.push(file.subarray(from));
  let out: Uint8Array = Buffer.concat(pieces);
  const endedBare = file.length > 0 && file[file.length - 1] !== 10;
  if (endedBare && gone[gone.length - 1] === count - 1 && out.length > 0) {
    // The new last line loses its terminator: LF or CRLF.
    out = out.subarray(0, out.length - (out.length > 1 && out[out.length - 2] === 13 ? 2 : 1));
  }
  return out;
}
