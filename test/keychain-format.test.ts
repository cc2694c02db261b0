import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  appendEntries,
  classifyHash,
  decodeText,
  entries,
  insertEntriesAfter,
  parseKeychain,
  removeEntries,
  serializeKeychain,
  sortIds,
} from '../src/keychain/format.js';
import { FormatError } from '../src/io/errors.js';

const dir = new URL('../fixtures/keychains/', import.meta.url);
const HASH = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';

function parse(text: string) {
  return parseKeychain(text, 'kc');
}

function formatError(text: string | Buffer): FormatError {
  try {
    const decoded = typeof text === 'string' ? text : decodeText(text, 'kc');
    parse(decoded);
  } catch (err) {
    expect(err).toBeInstanceOf(FormatError);
    return err as FormatError;
  }
  throw new Error('expected a FormatError');
}

describe('keychain format', () => {
  for (const name of readdirSync(dir).filter((n) => !n.startsWith('bad-'))) {
    it(`round-trips ${name} byte for byte`, () => {
      const bytes = readFileSync(new URL(name, dir));
      const text = decodeText(bytes, name);
      expect(serializeKeychain(parseKeychain(text, name))).toBe(text);
    });
  }

  it('classifies every hash kind of the mixed htpasswd fixture', () => {
    const kc = parse(readFileSync(new URL('mixed.htpasswd', dir), 'utf8'));
    const kinds = Object.fromEntries(entries(kc).map((e) => [e.id, classifyHash(e.hash)]));
    expect(kinds).toEqual({
      alice: { algorithm: 'bcrypt', cost: 5 },
      bob: { algorithm: 'apr1' },
      carol: { algorithm: 'sha1' },
      dave: { algorithm: 'crypt' },
      erin: { algorithm: 'plain' },
      frank: { algorithm: 'crypt' },
      grace: { algorithm: 'unknown' },
    });
  });

  it.each([
    ['line without colon', `A:${HASH}\nnocolon\n`, 2, /no ":"/],
    ['empty ID', `:${HASH}\n`, 1, /empty ID/],
    ['ID with a space', `A B:${HASH}\n`, 1, /whitespace/],
    ['empty hash', `A:\n`, 1, /empty hash/],
    ['duplicate ID', `A:${HASH}\nB:${HASH}\nA:${HASH}\n`, 3, /duplicate ID A \(first on line 1\)/],
    ['$2x$ hash', `A:$2x$10$${HASH.slice(7)}\n`, 1, /\$2x\$/],
    ['short bcrypt hash', `A:${HASH.slice(0, -1)}\n`, 1, /malformed bcrypt/],
    ['bcrypt cost 3', `A:$2b$03$${HASH.slice(7)}\n`, 1, /cost 3/],
    ['garbage hash', `A:not a hash at all\n`, 1, /unrecognised password hash/],
    ['malformed apr1', `A:$apr1$x\n`, 1, /malformed \$apr1\$/],
  ])('rejects a %s with its line number', (_name, text, line, message) => {
    const err = formatError(text);
    expect(err.line).toBe(line);
    expect(err.message).toMatch(message);
    expect(err.exitCode).toBe(2);
  });

  it('rejects a BOM, NUL bytes and invalid UTF-8', () => {
    expect(formatError(Buffer.from(`\ufeffA:${HASH}\n`)).message).toMatch(/byte-order mark/);
    expect(formatError(Buffer.from(`A:${HASH}\nB\0:x\n`)).line).toBe(2);
    expect(formatError(Buffer.concat([Buffer.from(`A:${HASH}\n`), Buffer.from([0xff, 0xfe, 0x0a])])).line).toBe(2);
  });

  it('appends with the file line ending and fixes a missing final newline', () => {
    const crlf = parse(`A:${HASH}\r\n`);
    appendEntries(crlf, [{ id: 'B', hash: HASH }]);
    expect(serializeKeychain(crlf)).toBe(`A:${HASH}\r\nB:${HASH}\r\n`);
    const bare = parse(`# c\nA:${HASH}`);
    appendEntries(bare, [{ id: 'B', hash: HASH }]);
    expect(serializeKeychain(bare)).toBe(`# c\nA:${HASH}\nB:${HASH}\n`);
    const empty = parse('');
    appendEntries(empty, [{ id: 'B', hash: HASH }]);
    expect(serializeKeychain(empty)).toBe(`B:${HASH}\n`);
  });

  it('removes entries keeping comments, blanks and order, or nothing when an ID is unknown', () => {
    const text = `# keep\nA:${HASH}\n\nB:${HASH}\nC:${HASH}`;
    const kc = parse(text);
    expect(removeEntries(kc, ['A', 'X'])).toEqual(['X']);
    expect(serializeKeychain(kc)).toBe(text);
    expect(removeEntries(kc, ['C', 'A'])).toEqual([]);
    expect(serializeKeychain(kc)).toBe(`# keep\n\nB:${HASH}`);
  });

  it('inserts a replacement in place of the old entry', () => {
    const kc = parse(`A:${HASH}\nB:${HASH}`);
    insertEntriesAfter(kc, 'B', [{ id: 'N', hash: HASH }]);
    expect(serializeKeychain(kc)).toBe(`A:${HASH}\nB:${HASH}\nN:${HASH}`);
    removeEntries(kc, ['B']);
    expect(serializeKeychain(kc)).toBe(`A:${HASH}\nN:${HASH}`);
  });

  it('sorts IDs by byte order like waved', () => {
    expect(sortIds(['b', 'B', 'a', '1', 'é', 'z'])).toEqual(['1', 'B', 'a', 'b', 'z', 'é']);
  });
});
