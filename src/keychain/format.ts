/**
 * Keychain and htpasswd files: `ID:HASH` lines (pure parsing and serialising, no I/O).
 *
 * serialize(parse(text)) === text for every file we accept, so a file we did not change stays
 * byte-identical: line endings (LF or CRLF, per line), comments, blank lines and order are kept.
 */
import { FormatError } from '../io/errors.js';

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

/**
 * Classify a password hash. Returns a reason string for hashes that look like a known kind but
 * are malformed, or that no peer can check.
 */
export function classifyHash(hash: string): HashInfo | string {
  if (hash.startsWith('$2')) {
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

/** Why `id` cannot be an ID, or undefined when it can. */
export function invalidIdReason(id: string): string | undefined {
  if (id.length === 0) return 'empty ID';
  if (id.includes(':')) return `ID ${JSON.stringify(id)} contains ':'`;
  // Whitespace and control characters would not survive Basic auth or other tools' parsers.
  if (/[\s\p{Cc}]/u.test(id)) return `ID ${JSON.stringify(id)} contains whitespace or control characters`;
  if (id.startsWith('#')) return `ID ${JSON.stringify(id)} starts with '#' (read as a comment)`;
  return undefined;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Decode file bytes strictly: UTF-8 without BOM and without NUL bytes. */
export function decodeText(bytes: Uint8Array, file: string): string {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw new FormatError(file, 1, 'file starts with a byte-order mark (BOM); save it as UTF-8 without BOM');
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new FormatError(file, lineOfFirstInvalidByte(bytes), 'not UTF-8 text (binary data?)');
  }
  const nul = text.indexOf('\0');
  if (nul !== -1) throw new FormatError(file, lineAt(text, nul), 'contains a NUL byte (binary data?)');
  return text;
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

function lineOfFirstInvalidByte(bytes: Uint8Array): number {
  // Find the longest valid prefix by decoding growing chunks line by line.
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        decoder.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}

/** Split text into lines, each with its own terminator. */
function splitLines(text: string): Array<{ text: string; eol: string }> {
  const result: Array<{ text: string; eol: string }> = [];
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    if (nl === -1) {
      result.push({ text: text.slice(start), eol: '' });
      break;
    }
    const cr = nl > start && text.charCodeAt(nl - 1) === 13;
    result.push({ text: text.slice(start, cr ? nl - 1 : nl), eol: cr ? '\r\n' : '\n' });
    start = nl + 1;
  }
  return result;
}

/** Parse a keychain/htpasswd file. Throws FormatError naming the file and line. */
export function parseKeychain(text: string, file: string): Keychain {
  const lines: Line[] = [];
  const seen = new Map<string, number>();
  const raw = splitLines(text);
  for (let i = 0; i < raw.length; i++) {
    const { text: line, eol } = raw[i]!;
    const lineNo = i + 1;
    if (line.trim() === '') {
      lines.push({ kind: 'blank', text: line, eol });
      continue;
    }
    if (line.startsWith('#')) {
      lines.push({ kind: 'comment', text: line, eol });
      continue;
    }
    const colon = line.indexOf(':');
    if (colon === -1) throw new FormatError(file, lineNo, 'expected "ID:hash", found no ":"');
    const id = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const idProblem = invalidIdReason(id);
    if (idProblem) throw new FormatError(file, lineNo, `${idProblem}; expected "ID:hash"`);
    if (hash === '') throw new FormatError(file, lineNo, `empty hash for ID ${id}`);
    const info = classifyHash(hash);
    if (typeof info === 'string') throw new FormatError(file, lineNo, `${info} for ID ${id}`);
    const previous = seen.get(id);
    if (previous !== undefined) throw new FormatError(file, lineNo, `duplicate ID ${id} (first on line ${previous})`);
    seen.set(id, lineNo);
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
  const eol = newlineOf(keychain);
  const last = keychain.lines[keychain.lines.length - 1];
  if (last && last.eol === '') last.eol = eol;
  for (const { id, hash } of added) keychain.lines.push({ kind: 'entry', id, hash, eol });
}

/** Insert entries right after the entry `afterId`. */
export function insertEntriesAfter(keychain: Keychain, afterId: string, added: Array<{ id: string; hash: string }>): void {
  const index = keychain.lines.findIndex((l) => l.kind === 'entry' && l.id === afterId);
  if (index === -1) throw new Error(`no entry ${afterId}`);
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
  const present = new Set(entries(keychain).map((e) => e.id));
  const missing = [...wanted].filter((id) => !present.has(id));
  if (missing.length > 0) return missing;
  // A file that ended without a newline keeps that shape when its last line is removed.
  const endedBare = keychain.lines[keychain.lines.length - 1]?.eol === '';
  const kept = keychain.lines.filter((l) => !(l.kind === 'entry' && wanted.has(l.id)));
  if (endedBare && kept.length > 0) kept[kept.length - 1]!.eol = '';
  keychain.lines = kept;
  return [];
}

/** Sort IDs by byte order, as waved lists them. */
export function sortIds(ids: string[]): string[] {
  const ascii = ids.every((id) => /^[\x00-\x7f]*$/.test(id));
  if (ascii) return ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return ids.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}
