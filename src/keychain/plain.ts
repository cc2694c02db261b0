/**
 * Big keychains as waved and keysmith write them, handled on their bytes: every line is
 * `ID:$2b$NN$` + 53 characters, the ID printable ASCII, lines ending in LF or CRLF. Listing or
 * removing from 100,000 such lines should cost little more than starting Node, so no string or
 * object is made per line: one pass checks every byte and copies the IDs into a compact area,
 * numbers sort them, and output is copied bytes.
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
 * IDs are sorted on a number: their first PREFIX characters (7 bits each) × 2^INDEX_BITS + their
 * index, exact in a double (35 + 17 bits). Keychains of more than 2^17 entries use fewer characters.
 */
const PREFIX = 5;
const INDEX_BITS = 17;
const INDEX_SCALE = 2 ** INDEX_BITS;

export interface PlainKeychain {
  file: Uint8Array;
  /** The IDs, each followed by '\n', in file order (work[0, idsEnd)), then room for output. */
  work: Uint8Array;
  idsEnd: number;
  count: number;
  /** Entry i: its ID is work[idStart[i], idEnd[i]); its line is file[lineStart[i], lineStart[i + 1]). */
  idStart: Int32Array;
  idEnd: Int32Array;
  lineStart: Int32Array;
  /** Entry i's sort key: its first PREFIX ID characters as a number (shorter IDs padded with
   * zeros) × INDEX_SCALE + (i mod INDEX_SCALE). idOrder sorts this array in place. */
  keys: Float64Array;
}

/**
 * Check every byte of a keychain of plain bcrypt lines and index its entries; undefined when the
 * file is anything else (see the module comment). Sorting and duplicates are left to idOrder.
 */
export function scanPlainKeychain(file: Uint8Array): PlainKeychain | undefined {
  const n = file.length;
  // A line is at least 62 bytes (a one-character ID, ':', 60 for the hash, '\n' unless last).
  const max = Math.floor(n / 62) + 1;
  // The compact IDs and the output share one buffer, so IDs are moved with copyWithin (cheaper
  // than a view per ID). IDs plus newlines never take more than the file.
  const work = Buffer.allocUnsafe(2 * n + 1);
  const idStart = new Int32Array(max);
  const idEnd = new Int32Array(max);
  const lineStart = new Int32Array(max + 1);
  const keys = new Float64Array(max);
  const b64 = BCRYPT_BASE64;
  let count = 0;
  let o = 0;
  for (let s = 0; s < n; ) {
    // The ID: printable ASCII up to the first ':', copied as it is checked.
    idStart[count] = o;
    lineStart[count] = s;
    let i = s;
    let key = 0;
    for (; i < n; i++) {
      const c = file[i]!;
      if (c === 58) break;
      if (c <= 32 || c >= 127) return undefined;
      if (i - s < PREFIX) key = key * 128 + c;
      work[o++] = c;
    }
    const idLength = i - s;
    if (idLength === 0 || i === n || file[s] === 35) return undefined; // empty ID, no ':', or a '#' comment
    for (let k = idLength; k < PREFIX; k++) key *= 128;
    keys[count] = key * INDEX_SCALE + (count & (INDEX_SCALE - 1));
    idEnd[count] = o;
    work[o++] = 10;
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
  return { file, work, idsEnd: o, count, idStart, idEnd, lineStart, keys: keys.subarray(0, count) };
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
 * the same (the general parser then reports the duplicate with its line numbers). The keys sort
 * natively as a Float64Array; only entries whose prefixes are equal are compared byte by byte.
 * Call it once: it sorts `k.keys` in place.
 */
export function idOrder(k: PlainKeychain): Int32Array | undefined {
  const { count, keys } = k;
  const order = new Int32Array(count);
  let scale = INDEX_SCALE;
  if (count > INDEX_SCALE) {
    // More entries than the index bits hold: make room for a longer index with fewer characters.
    const indexBits = Math.ceil(Math.log2(count));
    const width = Math.floor((52 - indexBits) / 7);
    const drop = 128 ** (PREFIX - width);
    scale = 2 ** indexBits;
    for (let i = 0; i < count; i++) keys[i] = Math.floor(Math.floor(keys[i]! / INDEX_SCALE) / drop) * scale + i;
  }
  keys.sort();
  // Split the keys again (exact: scale is a power of two; `%` on doubles is a slow library call)
  // and put each run of equal prefixes in order.
  let runStart = 0;
  let previous = -1;
  for (let j = 0; j < count; j++) {
    const key = keys[j]!;
    const p = Math.floor(key / scale);
    order[j] = key - p * scale;
    if (p !== previous) {
      if (j - runStart > 1 && !sortRun(k, order, runStart, j)) return undefined;
      runStart = j;
      previous = p;
    }
  }
  if (count - runStart > 1 && !sortRun(k, order, runStart, count)) return undefined;
  return order;
}

/** Sort order[start, end) by the IDs' bytes; false when two are equal. */
function sortRun(k: PlainKeychain, order: Int32Array, start: number, end: number): boolean {
  const { work, idStart, idEnd } = k;
  const compare = (a: number, b: number) => compareBytes(work, idStart[a]!, idEnd[a]!, work, idStart[b]!, idEnd[b]!);
  const run = Array.from(order.subarray(start, end)).sort(compare);
  for (let j = 0; j < run.length; j++) {
    if (j > 0 && compare(run[j - 1]!, run[j]!) === 0) return false;
    order[start + j] = run[j]!;
  }
  return true;
}

/** The IDs in `order`, one per line: the output of list-access-keys. */
export function idLines(k: PlainKeychain, order: Int32Array): Uint8Array {
  const { work, idStart, idEnd, idsEnd } = k;
  let o = idsEnd;
  for (let j = 0; j < order.length; j++) {
    const i = order[j]!;
    // Each compact ID is followed by its '\n': copy both.
    work.copyWithin(o, idStart[i]!, idEnd[i]! + 1);
    o += idEnd[i]! + 1 - idStart[i]!;
  }
  return work.subarray(idsEnd, o);
}

/** The entry with this ID (binary search in `order`), or -1. */
export function findId(k: PlainKeychain, order: Int32Array, id: string): number {
  const { work, idStart, idEnd } = k;
  const bytes = Buffer.from(id, 'utf8');
  let lo = 0;
  let hi = order.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const d = compareBytes(work, idStart[order[mid]!]!, idEnd[order[mid]!]!, bytes, 0, bytes.length);
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
