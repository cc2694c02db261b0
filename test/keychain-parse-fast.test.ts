/**
 * The parser, sortIds and removeEntriesFromText are written for speed on 100,000-line keychains
 * (character checks instead of regular expressions, numeric sort keys, text copied in runs), and
 * plain bcrypt keychains skip the parser altogether (src/keychain/plain.ts). These tests hold them
 * to simple reference versions (the parser as first written) on many random files: same lines,
 * same errors (message and line), same order, same bytes.
 */
import { describe, expect, it } from 'vitest';
import { FormatError } from '../src/io/errors.js';
import { splitLines } from '../src/io/text.js';
import {
  classifyHash,
  entries,
  invalidIdReason,
  parseKeychain,
  removeEntries,
  removeEntriesFromText,
  serializeKeychain,
  sortIds,
  type HashInfo,
  type Keychain,
  type Line,
} from '../src/keychain/format.js';
import { findId, idLines, idOrder, scanPlainKeychain, withoutEntries } from '../src/keychain/plain.js';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  // Whole code points: IDs come from decoded UTF-8, which never holds a lone surrogate.
  const str = (alphabet: string, length: number) => {
    const chars = [...alphabet];
    return Array.from({ length }, () => chars[int(chars.length)]).join('');
  };
  return { next, int, pick, str };
}

const BCRYPT64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// ---- the reference: the parser as first written, one line at a time with regular expressions ----
const BCRYPT = /^\$2([abxy])\$(\d\d)\$[./A-Za-z0-9]{53}$/;
function referenceClassify(hash: string): HashInfo | string {
  if (hash.startsWith('$2')) {
    const m = BCRYPT.exec(hash);
    if (!m) return 'malformed bcrypt hash (expected $2b$NN$ and 53 characters)';
    if (m[1] === 'x') return 'unsupported bcrypt variant $2x$ (a buggy legacy variant); rehash it';
    const cost = Number(m[2]);
    if (cost < 4 || cost > 31) return `bcrypt cost ${cost} out of range 4..31`;
    return { algorithm: 'bcrypt', cost };
  }
  return classifyHash(hash); // the other kinds are unchanged
}

function referenceParse(text: string, file: string): Keychain {
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
    const info = referenceClassify(hash);
    if (typeof info === 'string') throw new FormatError(file, lineNo, `${info} for ID ${id}`);
    const previous = seen.get(id);
    if (previous !== undefined) throw new FormatError(file, lineNo, `duplicate ID ${id} (first on line ${previous})`);
    seen.set(id, lineNo);
    lines.push({ kind: 'entry', id, hash, eol });
  }
  return { lines };
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function outcome<T>(fn: () => T): { ok: T } | { error: string } {
  try {
    return { ok: fn() };
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    return { error: err.message };
  }
}

// ---- random keychains, mostly valid, with every kind of mistake mixed in ----
function randomFile(r: ReturnType<typeof prng>): { text: string; ids: string[] } {
  const ids: string[] = [];
  const newId = () => {
    const id = r.pick([
      () => r.str('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 20),
      () => 'user' + r.int(20),
      () => r.str('abc', 1 + r.int(3)),
      () => 'é' + r.str('ab', 2),
      () => '𝒳' + r.str('ab', 2),
      () => 'a#b',
      () => r.str('!"$%&\'()*+,-./;<=>?@[\\]^_`{|}~', 3),
    ])();
    ids.push(id);
    return id;
  };
  const bcrypt = () => `$2${r.pick(['a', 'b', 'y'])}$${String(4 + r.int(28)).padStart(2, '0')}$${r.str(BCRYPT64, 53)}`;
  const good = [
    () => `${newId()}:${bcrypt()}`,
    () => `${newId()}:$apr1$${r.str(BCRYPT64, 8)}$${r.str(BCRYPT64, 22)}`,
    () => `${newId()}:{SHA}${r.str('ABCabc012+/', 27)}=`,
    () => `${newId()}:${r.str(BCRYPT64, 13)}`,
    () => `${newId()}:{PLAIN}secret`,
    () => `# comment: ${r.str('ab :', 5)}`,
    () => '#',
    () => '',
    () => '   ',
    () => '\t',
    () => '\u00a0',
  ];
  const bad = [
    () => 'no colon here',
    () => `:${bcrypt()}`,
    () => `a b:${bcrypt()}`,
    () => `\ta:${bcrypt()}`,
    () => `  # indented:${bcrypt()}`,
    () => `a\u0001b:${bcrypt()}`,
    () => `a\u00a0b:${bcrypt()}`,
    () => `${newId()}:`,
    () => `${newId()}:${bcrypt().slice(0, -1)}`,
    () => `${newId()}:${bcrypt()}x`,
    () => `${newId()}:$2x$10$${r.str(BCRYPT64, 53)}`,
    () => `${newId()}:$2b$${r.pick(['00', '03', '32', '99', '1x', 'ab'])}$${r.str(BCRYPT64, 53)}`,
    () => `${newId()}:$2b$10$${r.str(BCRYPT64, 20)}${r.pick(['!', 'é', ' ', '-', '+'])}${r.str(BCRYPT64, 32)}`,
    () => `${newId()}:$2c$10$${r.str(BCRYPT64, 53)}`,
    () => `${newId()}:$2b$10x${r.str(BCRYPT64, 53)}`,
    () => `${newId()}:not a hash`,
    () => `${newId()}:$apr1$x`,
    () => (ids.length > 0 ? `${r.pick(ids)}:${bcrypt()}` : 'x'), // a duplicate
    () => `${newId()}:${bcrypt()}\r`, // a stray CR at the very end of the file
  ];
  const count = r.int(12);
  let text = '';
  for (let i = 0; i < count; i++) {
    const line = r.next() < 0.85 ? r.pick(good)() : r.pick(bad)();
    const eol = i === count - 1 ? r.pick(['\n', '\r\n', '']) : r.pick(['\n', '\n', '\r\n']);
    text += line + eol;
  }
  return { text, ids };
}

describe('parseKeychain matches the reference parser', () => {
  it('on 5,000 random files: the same lines, or the same error', () => {
    const r = prng(20241125);
    let errors = 0;
    for (let i = 0; i < 5_000; i++) {
      const { text } = randomFile(r);
      const expected = outcome(() => referenceParse(text, 'kc'));
      const actual = outcome(() => parseKeychain(text, 'kc'));
      if ('error' in expected) errors++;
      expect(actual, `file ${i}: ${JSON.stringify(text)}`).toEqual(expected);
      if ('ok' in actual) expect(serializeKeychain(actual.ok)).toBe(text);
    }
    // Both kinds were exercised.
    expect(errors).toBeGreaterThan(500);
    expect(errors).toBeLessThan(4_500);
  });

  it('classifyHash agrees with the regular expression on near-miss bcrypt hashes', () => {
    const r = prng(7);
    const base = `$2b$10$${'a'.repeat(53)}`;
    for (let i = 0; i < 20_000; i++) {
      const chars = [...base];
      for (let k = 0; k < 1 + r.int(2); k++) chars[r.int(chars.length)] = r.pick([...'$2abxyz0139./Aé!\r ']);
      if (r.next() < 0.1) chars.splice(r.int(chars.length), 1);
      const hash = chars.join('');
      expect(classifyHash(hash), hash).toEqual(referenceClassify(hash));
    }
  });
});

describe('sortIds sorts by UTF-8 byte order', () => {
  it('on random sets of IDs: ASCII, shared prefixes, short IDs, non-ASCII and astral characters', () => {
    const r = prng(42);
    for (let i = 0; i < 2_000; i++) {
      const n = r.int(40);
      const ids = Array.from({ length: n }, () =>
        r.pick([
          () => r.str('ABCXYZ019', 1 + r.int(8)),
          () => 'user' + r.str('0123', r.int(4)),
          () => r.str('aé\uffff\ue000', 1 + r.int(3)),
          () => r.str('a𝒳\ud7ff', 1 + r.int(3)),
          () => r.str('!~#', 1 + r.int(3)),
        ])(),
      );
      expect(sortIds([...ids])).toEqual([...ids].sort(byteOrder));
    }
  });

  it('on 100,000 IDs, random and with long shared prefixes', () => {
    const r = prng(1);
    const random = Array.from({ length: 100_000 }, () => r.str('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 20));
    expect(sortIds([...random])).toEqual([...random].sort(byteOrder));
    const users = Array.from({ length: 100_000 }, (_, i) => `user${String((i * 7919) % 100_000).padStart(6, '0')}`);
    expect(sortIds([...users])).toEqual([...users].sort(byteOrder));
  });
});

describe('removeEntriesFromText equals removeEntries + serializeKeychain', () => {
  it('on 3,000 random valid files and random sets of IDs (some missing)', () => {
    const r = prng(99);
    let checked = 0;
    while (checked < 3_000) {
      const { text } = randomFile(r);
      const parsed = outcome(() => parseKeychain(text, 'kc'));
      if (!('ok' in parsed)) continue;
      checked++;
      const present = entries(parsed.ok).map((e) => e.id);
      const wanted = present.filter(() => r.next() < 0.4);
      if (r.next() < 0.2) wanted.push('MISSING-' + r.int(3));
      const expectedModel = parseKeychain(text, 'kc');
      const missing = removeEntries(expectedModel, wanted);
      const actual = removeEntriesFromText(text, parseKeychain(text, 'kc'), wanted);
      expect(actual.missing, JSON.stringify({ text, wanted })).toEqual(missing);
      if (missing.length === 0) {
        expect(actual.text, JSON.stringify({ text, wanted })).toBe(serializeKeychain(expectedModel));
        expect(actual.remaining).toBe(entries(expectedModel).length);
      } else {
        expect(actual.text).toBeUndefined();
      }
    }
  });
});

// ---- the byte-level path for keychains of plain bcrypt lines (src/keychain/plain.ts) ----
const PRINTABLE = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join('').replace(':', '');

/** A keychain as waved and keysmith write them, sometimes with one flaw that sends it to the parser. */
function plainFile(r: ReturnType<typeof prng>): string {
  const ids: string[] = [];
  const newId = () => {
    const id = r.pick([
      () => r.str('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 20),
      () => r.str('ABC', 1 + r.int(6)), // short IDs and shared prefixes
      () => 'user' + r.int(30),
      () => r.str(PRINTABLE, 1 + r.int(8)),
    ])();
    ids.push(id);
    return id;
  };
  const bcrypt = () => `$2${r.pick(['a', 'b', 'y'])}$${String(4 + r.int(28)).padStart(2, '0')}$${r.str(BCRYPT64, 53)}`;
  const count = r.int(30);
  let text = '';
  for (let i = 0; i < count; i++) text += `${newId()}:${bcrypt()}${i === count - 1 ? r.pick(['\n', '\r\n', '']) : r.pick(['\n', '\n', '\r\n'])}`;
  if (count > 0 && r.next() < 0.3) {
    // One flaw: a changed byte, a duplicate ID, a comment or blank line, a non-ASCII ID.
    const flaw = r.int(4);
    if (flaw === 0) {
      const at = r.int(text.length);
      text = text.slice(0, at) + r.pick([...'\u0000 \t\r\n:#$!-é', ...BCRYPT64]) + text.slice(at + 1);
    } else if (flaw === 1) text += `\n${r.pick(ids)}:${bcrypt()}\n`;
    else if (flaw === 2) text = r.pick(['# keys\n', '\n', '  \n']) + text;
    else text += `é${r.str('ab', 2)}:${bcrypt()}\n`;
  }
  return text;
}

describe('the byte-level path for plain bcrypt keychains agrees with the parser', () => {
  it('on 5,000 random files: the same IDs in the same order, the same bytes after a remove, or the parser takes over', () => {
    const r = prng(2026);
    let fast = 0;
    let handedOver = 0;
    for (let i = 0; i < 5_000; i++) {
      const text = i % 5 === 0 ? randomFile(r).text : plainFile(r);
      const bytes = Buffer.from(text, 'utf8');
      const plain = scanPlainKeychain(bytes);
      const order = plain && idOrder(plain);
      const parsed = outcome(() => parseKeychain(text, 'kc'));
      const context = JSON.stringify(text);
      if (!plain || !order) {
        handedOver++;
        // Only a duplicate makes idOrder give up on a file the scan accepted.
        if (plain) expect('error' in parsed && parsed.error, context).toMatch(/duplicate ID/);
        continue;
      }
      fast++;
      expect('ok' in parsed, context).toBe(true);
      if (!('ok' in parsed)) continue;
      const ids = entries(parsed.ok).map((e) => e.id);
      const listed = Buffer.from(idLines(plain, order)).toString('utf8');
      expect(listed, context).toBe(sortIds([...ids]).map((id) => `${id}\n`).join(''));
      // Remove some (the byte path finds them by binary search) and compare with the text path.
      const wanted = ids.filter(() => r.next() < 0.3);
      const found = wanted.map((id) => findId(plain, order, id));
      expect(found.every((f) => f >= 0), context).toBe(true);
      expect(findId(plain, order, 'MISSING-ID'), context).toBe(-1);
      const expected = removeEntriesFromText(text, parseKeychain(text, 'kc'), wanted);
      expect(Buffer.from(withoutEntries(plain, found)).toString('utf8'), JSON.stringify({ text, wanted })).toBe(expected.text);
    }
    // Both ways were taken often.
    expect(fast).toBeGreaterThan(2_000);
    expect(handedOver).toBeGreaterThan(1_000);
  });

  it('sorts 140,000 entries with long shared prefixes in byte order', () => {
    const r = prng(3);
    const ids = Array.from({ length: 140_000 }, (_, i) => (i % 2 ? `user${String((i * 7919) % 140_000).padStart(6, '0')}` : r.str('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 20)));
    const unique = [...new Set(ids)];
    const hash = `$2b$10$${'a'.repeat(53)}`;
    const plain = scanPlainKeychain(Buffer.from(unique.map((id) => `${id}:${hash}\n`).join('')))!;
    const order = idOrder(plain)!;
    expect(Buffer.from(idLines(plain, order)).toString('latin1')).toBe(sortIds([...unique]).map((id) => `${id}\n`).join(''));
  });
});
