/**
 * Keychain and htpasswd files: `ID:HASH` lines (pure parsing and serialising, no I/O).
 *
 * serialize(parse(text)) === text for every file we accept, so a file we did not change stays
 * byte-identical: line endings (LF or CRLF, per line), comments, blank lines and order are kept.
 */
import { FormatError, UsageError } from '../io/errors.js';
import { escapeChar, printable } from '../io/escape.js';

export { decodeText } from '../io/text.js';

export type Algorithm = 'bcrypt' | 'apr1' | 'sha1' | 'crypt' | 'plain' | 'unknown';

export interface EntryLine {
  kind: 'entry';
  id: string;
  hash: string;
  /** The line terminator after this line: '\n', '\r\n' or '' (last line without one). */
  eol: string;
}
export interface OtherLine {
  /** `#` comments and blank (empty or whitespace-only) lines are kept verbatim. */
  kind: 'comment' | 'blank';
  text: string;
  eol: string;
}
export type Line = EntryLine | OtherLine;

export interface Keychain {
  lines: Line[];
}

export interface HashInfo {
  algorithm: Algorithm;
  /** bcrypt cost (log2 rounds). */
  cost?: number;
}

const BCRYPT = /^\$2([abxy])\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const APR1 = /^\$apr1\$[^$]{1,8}\$[./0-9A-Za-z]{22}$/;
const SHA1 = /^\{SHA\}[A-Za-z0-9+/]{27}=$/;
const DES_CRYPT = /^[./0-9A-Za-z]{13}$/;
const MODULAR_CRYPT = /^\$(1|5|6|md5|sha1|y|gy|7)\$[^\s]+$/;
const SCHEME = /^\{[A-Z0-9-]+\}\S*$/;

/** Characters of bcrypt's base64 (salt and checksum), as a lookup table by character code. */
const BCRYPT_BASE64 = new Uint8Array(128);
for (const c of './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789') BCRYPT_BASE64[c.charCodeAt(0)] = 1;

/**
 * The cost of the bcrypt hash text[start..end) when it is well formed and usable ($2a$, $2b$ or
 * $2y$, cost 4..31, 53 base64 characters), else 0 (classifyHash then says why). Character checks on
 * the whole file's text: this runs for every line of a keychain (100,000 lines must list fast), and
 * a regular expression on a substring costs several times more.
 */
function bcryptCostAt(text: string, start: number, end: number): number {
  if (end - start !== 60 || text.charCodeAt(start) !== 36 || text.charCodeAt(start + 1) !== 50) return 0; // "$2"
  if (text.charCodeAt(start + 3) !== 36 || text.charCodeAt(start + 6) !== 36) return 0; // "$" around the cost
  const variant = text.charCodeAt(start + 2);
  if (variant !== 97 && variant !== 98 && variant !== 121) return 0; // a, b, y
  const tens = text.charCodeAt(start + 4) - 48;
  const ones = text.charCodeAt(start + 5) - 48;
  if (tens < 0 || tens > 9 || ones < 0 || ones > 9) return 0;
  const cost = tens * 10 + ones;
  if (cost < 4 || cost > 31) return 0;
  for (let i = start + 7; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 127 || BCRYPT_BASE64[c] === 0) return 0;
  }
  return cost;
}

/** True when text[start..end) is printable ASCII without spaces: an ID that needs no closer look. */
function plainAsciiAt(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c <= 32 || c >= 127) return false;
  }
  return true;
}

/**
 * Classify a password hash. Returns a reason string for hashes that look like a known kind but
 * are malformed, or that no peer can check.
 */
export function classifyHash(hash: string): HashInfo | string {
  if (hash.startsWith('$2')) {
    const fast = bcryptCostAt(hash, 0, hash.length);
    if (fast) return { algorithm: 'bcrypt', cost: fast };
    const m = BCRYPT.exec(hash);
    if (!m) return 'malformed bcrypt hash (expected $2b$NN$ and 53 characters)';
    if (m[1] === 'x') return 'unsupported bcrypt variant $2x$ (a buggy legacy variant); rehash it';
    const cost = Number(m[2]);
    if (cost < 4 || cost > 31) return `bcrypt cost ${cost} out of range 4..31`;
    return { algorithm: 'bcrypt', cost };
  }
  if (hash.startsWith('$apr1$')) return APR1.test(hash) ? { algorithm: 'apr1' } : 'malformed $apr1$ hash';
  if (hash.startsWith('{SHA}')) return SHA1.test(hash) ? { algorithm: 'sha1' } : 'malformed {SHA} hash';
  if (hash.startsWith('{PLAIN}')) return { algorithm: 'plain' };
  if (MODULAR_CRYPT.test(hash) || DES_CRYPT.test(hash)) return { algorithm: 'crypt' };
  if (SCHEME.test(hash)) return { algorithm: 'unknown' };
  return 'unrecognised password hash (expected bcrypt $2b$..., $apr1$, {SHA}, crypt or {PLAIN})';
}

/** Zero-width characters (U+200B-U+200D, U+2060, U+FEFF) and bidi controls (U+061C, U+200E-F, U+202A-E, U+2066-9). */
const ZERO_WIDTH = /[\u200b-\u200d\u2060\ufeff]/;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** An ID in quotes for a one-line message, every invisible or control character escaped. */
function quoteId(id: string): string {
  return printable(JSON.stringify(id));
}

/** Why `id` cannot be an ID, or undefined when it can. */
export function invalidIdReason(id: string): string | undefined {
  if (id.length === 0) return 'empty ID';
  if (id.includes(':')) return `ID ${quoteId(id)} contains ':'`;
  // Whitespace and control characters would not survive Basic auth or other tools' parsers.
  const bad = /[\s\p{Cc}]/u.exec(id)?.[0];
  if (bad !== undefined) {
    const what = bad === ' ' ? 'whitespace (a space)'
      : /\p{Cc}/u.test(bad) ? `a control character (${escapeChar(bad)})`
      : `whitespace (${escapeChar(bad)})`;
    return `ID ${quoteId(id)} contains ${what}`;
  }
  if (id.startsWith('#')) return `ID ${quoteId(id)} starts with '#' (read as a comment)`;
  return undefined;
}

/**
 * Why `id` cannot be a new ID (or set-password user), or undefined when it can: invalidIdReason,
 * and also no zero-width or bidi control characters, which make two different names look alike
 * or show a name reordered. Files that already hold such IDs are still read.
 */
export function invalidNewIdReason(id: string): string | undefined {
  const problem = invalidIdReason(id);
  if (problem) return problem;
  const bidi = BIDI.exec(id)?.[0];
  if (bidi !== undefined) return `ID ${quoteId(id)} contains a bidi control character (${escapeChar(bidi)})`;
  const hidden = ZERO_WIDTH.exec(id)?.[0];
  if (hidden !== undefined) return `ID ${quoteId(id)} contains a zero-width character (${escapeChar(hidden)})`;
  return undefined;
}

/** Refuse new entries whose IDs could not be read back or would mislead (whatever made them). */
function checkNewIds(added: ReadonlyArray<{ id: string }>): void {
  for (const { id } of added) {
    const problem = invalidNewIdReason(id);
    if (problem) throw new UsageError(`cannot add ${problem}`);
  }
}

/**
 * Parse a keychain/htpasswd file. Throws FormatError naming the file and line.
 *
 * Written for 100,000-line keychains: lines are split here rather than with splitLines (no
 * object per line besides the Line itself), and ordinary entries (a plain ASCII ID and a bcrypt
 * hash) are checked character by character on the file's text; anything else takes the general
 * checks, with the same results.
 */
export function parseKeychain(text: string, file: string): Keychain {
  const lines: Line[] = [];
  const ids = new Set<string>();
  const n = text.length;
  for (let start = 0, lineNo = 1; start < n; lineNo++) {
    // This line is text[lineStart..end), followed by its own terminator: LF, CRLF or none (at the end).
    const lineStart = start;
    let end = text.indexOf('\n', lineStart);
    let eol = '\n';
    if (end === -1) {
      end = n;
      eol = '';
    } else if (end > lineStart && text.charCodeAt(end - 1) === 13) {
      end--;
      eol = '\r\n';
    }
    start = end + eol.length;

    const first = text.charCodeAt(lineStart);
    if (lineStart === end || first <= 32 || first === 35 || first >= 127) {
      // Possibly blank (whitespace only, Unicode included) or a `#` comment.
      const line = text.slice(lineStart, end);
      if (line.trim() === '') {
        lines.push({ kind: 'blank', text: line, eol });
        continue;
      }
      if (first === 35) {
        lines.push({ kind: 'comment', text: line, eol });
        continue;
      }
    }
    const colon = text.indexOf(':', lineStart);
    if (colon === -1 || colon >= end) throw new FormatError(file, lineNo, 'expected "ID:hash", found no ":"');
    const id = text.slice(lineStart, colon);
    if (colon === lineStart || !plainAsciiAt(text, lineStart, colon)) {
      const idProblem = invalidIdReason(id);
      if (idProblem) throw new FormatError(file, lineNo, `${idProblem}; expected "ID:hash"`);
    }
    if (colon + 1 === end) throw new FormatError(file, lineNo, `empty hash for ID ${id}`);
    const hash = text.slice(colon + 1, end);
    if (bcryptCostAt(text, colon + 1, end) === 0) {
      const info = classifyHash(hash);
      if (typeof info === 'string') throw new FormatError(file, lineNo, `${info} for ID ${id}`);
    }
    if (ids.has(id)) {
      // Every line is one element of `lines`, so an index is a line number minus one.
      const previous = lines.findIndex((l) => l.kind === 'entry' && l.id === id) + 1;
      throw new FormatError(file, lineNo, `duplicate ID ${id} (first on line ${previous})`);
    }
    ids.add(id);
    lines.push({ kind: 'entry', id, hash, eol });
  }
  return { lines };
}

export function serializeKeychain(keychain: Keychain): string {
  let text = '';
  for (const line of keychain.lines) text += (line.kind === 'entry' ? `${line.id}:${line.hash}` : line.text) + line.eol;
  return text;
}

export function entries(keychain: Keychain): EntryLine[] {
  return keychain.lines.filter((l): l is EntryLine => l.kind === 'entry');
}

export function findEntry(keychain: Keychain, id: string): EntryLine | undefined {
  return keychain.lines.find((l): l is EntryLine => l.kind === 'entry' && l.id === id);
}

/** The line ending new lines get: CRLF when the file already uses it, else LF. */
function newlineOf(keychain: Keychain): string {
  return keychain.lines.some((l) => l.eol === '\r\n') ? '\r\n' : '\n';
}

/** Append entries at the end; a last line without terminator gets one first. */
export function appendEntries(keychain: Keychain, added: Array<{ id: string; hash: string }>): void {
  checkNewIds(added);
  const eol = newlineOf(keychain);
  const last = keychain.lines[keychain.lines.length - 1];
  if (last && last.eol === '') last.eol = eol;
  for (const { id, hash } of added) keychain.lines.push({ kind: 'entry', id, hash, eol });
}

/** Insert entries right after the entry `afterId`. */
export function insertEntriesAfter(keychain: Keychain, afterId: string, added: Array<{ id: string; hash: string }>): void {
  const index = keychain.lines.findIndex((l) => l.kind === 'entry' && l.id === afterId);
  if (index === -1) throw new Error(`no entry ${afterId}`);
  checkNewIds(added);
  const eol = newlineOf(keychain);
  const anchor = keychain.lines[index]!;
  // Keep the anchor's terminator on the last inserted line (it may be '' at end of file).
  const lastEol = anchor.eol;
  anchor.eol = eol;
  const inserted: Line[] = added.map(({ id, hash }, i) => ({ kind: 'entry', id, hash, eol: i === added.length - 1 ? lastEol : eol }));
  keychain.lines.splice(index + 1, 0, ...inserted);
}

/** Remove the entries with these IDs; returns the IDs that were not there. */
export function removeEntries(keychain: Keychain, ids: Iterable<string>): string[] {
  const wanted = new Set(ids);
  const found = new Set<string>();
  for (const line of keychain.lines) if (line.kind === 'entry' && wanted.has(line.id)) found.add(line.id);
  if (found.size < wanted.size) return [...wanted].filter((id) => !found.has(id));
  // A file that ended without a newline keeps that shape when its last line is removed.
  const endedBare = keychain.lines[keychain.lines.length - 1]?.eol === '';
  const kept = keychain.lines.filter((l) => !(l.kind === 'entry' && wanted.has(l.id)));
  if (endedBare && kept.length > 0) kept[kept.length - 1]!.eol = '';
  keychain.lines = kept;
  return [];
}

/**
 * removeEntries + serializeKeychain for a keychain just parsed from `text`, with the same result,
 * but the lines that stay are copied from `text` in runs instead of being rendered one by one
 * (removing a key from a 100,000-line keychain should not build 100,000 strings). Returns the IDs
 * that are not there (and then no text), or the new text and the number of entries left.
 */
export function removeEntriesFromText(
  text: string,
  keychain: Keychain,
  ids: Iterable<string>,
): { missing: string[]; text?: string; remaining: number } {
  const wanted = new Set(ids);
  const found = new Set<string>();
  let out = '';
  let runStart = 0;
  let pos = 0;
  let remaining = 0;
  let lastKeptEol = '';
  let lastRemoved = false;
  for (const line of keychain.lines) {
    const length = (line.kind === 'entry' ? line.id.length + 1 + line.hash.length : line.text.length) + line.eol.length;
    lastRemoved = line.kind === 'entry' && wanted.has(line.id);
    if (lastRemoved) {
      found.add((line as EntryLine).id);
      out += text.slice(runStart, pos);
      runStart = pos + length;
    } else {
      if (line.kind === 'entry') remaining++;
      lastKeptEol = line.eol;
    }
    pos += length;
  }
  if (pos !== text.length) throw new Error('removeEntriesFromText: the keychain was not parsed from this text');
  if (found.size < wanted.size) return { missing: [...wanted].filter((id) => !found.has(id)), remaining: remaining + found.size };
  out += text.slice(runStart, pos);
  // As removeEntries: a file that ended without a newline keeps that shape when its last line goes.
  const endedBare = keychain.lines[keychain.lines.length - 1]?.eol === '';
  if (endedBare && lastRemoved && out !== '') out = out.slice(0, out.length - lastKeptEol.length);
  return { missing: [], text: out, remaining };
}

/**
 * Compare by code point, which is UTF-8 byte order. JavaScript's `<` compares UTF-16 code units,
 * which agrees except that surrogates (U+D800..DFFF, the halves of characters above U+FFFF) sort
 * before U+E000..FFFF instead of after them.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Sort IDs by byte order, as waved lists them (sorts `ids` in place and returns it).
 *
 * Comparing 100,000 strings costs V8 ~150 ms; sorting numbers natively costs a few. Each ID becomes
 * the number (its first `width` characters in base 128) × 2^indexBits + its index, exact in a
 * double, so a Float64Array sort orders the IDs by that prefix; only IDs that share a prefix are
 * then compared as strings. IDs with a non-ASCII character in that prefix take a plain sort.
 */
export function sortIds(ids: string[]): string[] {
  const n = ids.length;
  if (n < 2) return ids;
  const indexBits = Math.ceil(Math.log2(n));
  const width = Math.floor((52 - indexBits) / 7);
  const scale = 2 ** indexBits;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const id = ids[i]!;
    let key = 0;
    for (let j = 0; j < width; j++) {
      // Shorter IDs sort first: pad with zeros (IDs contain no control characters).
      const c = j < id.length ? id.charCodeAt(j) : 0;
      if (c > 0x7f) return ids.sort(compareCodePoints);
      key = key * 128 + c;
    }
    keys[i] = key * scale + i;
  }
  keys.sort();
  const sorted = new Array<string>(n);
  for (let i = 0; i < n; i++) sorted[i] = ids[keys[i]! % scale]!;
  for (let start = 0; start < n; ) {
    const prefix = Math.floor(keys[start]! / scale);
    let end = start + 1;
    while (end < n && Math.floor(keys[end]! / scale) === prefix) end++;
    if (end - start > 1) {
      const run = sorted.slice(start, end).sort(compareCodePoints);
      for (let j = 0; j < run.length; j++) sorted[start + j] = run[j]!;
    }
    start = end;
  }
  for (let i = 0; i < n; i++) ids[i] = sorted[i]!;
  return ids;
}
