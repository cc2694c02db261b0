/**
 * Password hashing: known vectors for $apr1$, {SHA} and bcrypt ($2a$/$2b$/$2y$) made by other
 * tools, the 72-byte limit, cost bounds, the dummy hash, and the proof that an unknown ID costs the
 * same bcrypt work as a wrong secret (by watching which hash bcrypt is asked to compare, not by timing).
 */
import * as realCrypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcrypt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../src/io/errors.js';
import {
  DEFAULT_COST,
  MAX_SECRET_BYTES,
  apr1,
  checkSecret,
  dummyHash,
  hashSecret,
  parseCost,
  verifySecret,
} from '../src/keychain/hashing.js';
import { classifyHash } from '../src/keychain/format.js';
import { ALNUM, UPPER_DIGITS, randomString } from '../src/secrets/random.js';
import { run as verifyAccessKey } from '../src/commands/verify-access-key.js';
import { fakeCtx } from './helpers/ctx.js';

// randomBytes stays the real one unless a test feeds it chosen bytes.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, randomBytes: vi.fn(actual.randomBytes) };
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('$apr1$ (Apache MD5)', () => {
  it.each([
    // openssl passwd -apr1 -salt abcdefgh secret
    ['secret', '$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/'],
    // openssl passwd -apr1 -salt abc x (short salt)
    ['x', '$apr1$abc$51YrpNiEtKAQp4coykJmu.'],
    // htpasswd -nbm u 'pässwörd-日本' (multi-byte UTF-8, 17 bytes)
    ['pässwörd-日本', '$apr1$IPqKZn/f$7gSh9IQ6Qbc3.9ua9R7Li0'],
    // htpasswd -nbm u '<79 bytes>' (apr1 has no length limit)
    ['this is a rather long password of more than seventy-two bytes, for apr1 only!!', '$apr1$8CDXotKV$/4VwvpA6C3iuViMEsM46C.'],
  ])('%j matches %s', async (password, hash) => {
    const salt = hash.split('$')[2]!;
    expect(apr1(password, salt)).toBe(hash);
    expect(await verifySecret(password, hash)).toBe(true);
    expect(await verifySecret(password + 'x', hash)).toBe(false);
    expect(await verifySecret(password.slice(0, -1), hash)).toBe(false);
  });
});

describe('{SHA}', () => {
  it('verifies htpasswd -nbs output', async () => {
    // htpasswd -nbs u secret
    const hash = '{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=';
    expect(await verifySecret('secret', hash)).toBe(true);
    expect(await verifySecret('Secret', hash)).toBe(false);
  });
});

describe('bcrypt', () => {
  it.each([
    // htpasswd -nbB -C 4 u secret
    ['$2y$ (htpasswd)', 'secret', '$2y$04$iogWEe2nIzRzfdIE4Wxg9Oc8V3ohKWJA/2aP.eORMGkPRDhKakHOS'],
    // python3 bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4, prefix=b"2a"))
    ['$2a$ (Python bcrypt, as Go/waved write)', 'secret', '$2a$04$7CmM83Hd3aooH3i174es4eDHC/mofl1kWA9LtTp9j2PGZRbo96ALK'],
    // python3 bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4, prefix=b"2b"))
    ['$2b$ (Python bcrypt)', 'secret', '$2b$04$zvnFSWuDdF1DoguRh2xADuW7tg056kW11H1XWBAk/q4xRnVe453Ki'],
    // python3 bcrypt of 71 × "x" + "y": exactly 72 bytes, the last one counts
    ['$2b$, a 72-byte secret', 'x'.repeat(71) + 'y', '$2b$04$sL/oXzNI4ydxnGyJ0priW.T8vmkc6pXRaqUa4m0Q160iyDd9F4odm'],
    // python3 bcrypt of "é" × 36: 36 characters, 72 bytes
    ['$2b$, 72 bytes of multi-byte characters', 'é'.repeat(36), '$2b$04$A.mTlz.EAEJSIfEDWpwlGeYc8ggJp3.4FTWGGkbR64JSi0IehOLpK'],
  ])('verifies %s', async (_name, secret, hash) => {
    expect(await verifySecret(secret, hash)).toBe(true);
    expect(await verifySecret(secret.slice(0, -1), hash)).toBe(false);
    expect(await verifySecret(secret.slice(0, -1) + 'z', hash)).toBe(false);
  });

  it('writes $2b$ with the requested cost, and the hash verifies', async () => {
    const hash = await hashSecret('s3cret', 4);
    expect(hash).toMatch(/^\$2b\$04\$[./A-Za-z0-9]{53}$/);
    expect(classifyHash(hash)).toEqual({ algorithm: 'bcrypt', cost: 4 });
    expect(await verifySecret('s3cret', hash)).toBe(true);
    expect(await verifySecret('s3cret ', hash)).toBe(false);
  });

  it('refuses to verify hashes it cannot check', async () => {
    await expect(verifySecret('x', 'abJnggxhB/yWI')).rejects.toThrow(UsageError); // DES crypt
    await expect(verifySecret('x', '{PLAIN}x')).rejects.toThrow(UsageError);
    await expect(verifySecret('x', '$2x$04$' + 'a'.repeat(53))).rejects.toThrow(UsageError);
  });
});

describe('the 72-byte limit', () => {
  it('accepts 72 bytes and refuses 73, counting bytes, not characters', async () => {
    expect(MAX_SECRET_BYTES).toBe(72);
    expect(() => checkSecret('a'.repeat(72))).not.toThrow();
    expect(() => checkSecret('é'.repeat(36))).not.toThrow(); // 72 bytes
    expect(() => checkSecret('a'.repeat(73))).toThrow(/73 bytes long/);
    expect(() => checkSecret('é'.repeat(37))).toThrow(/74 bytes long/); // 37 characters, 74 bytes
    expect(() => checkSecret('a'.repeat(71) + 'é')).toThrow(/73 bytes/);
    expect(() => checkSecret('')).toThrow(/empty/);
    const err = (() => {
      try {
        checkSecret('a'.repeat(73), 'password');
      } catch (e) {
        return e as UsageError;
      }
    })();
    expect(err).toBeInstanceOf(UsageError);
    expect(err!.exitCode).toBe(2);
    expect(err!.message).toMatch(/^the password is 73 bytes long/);
  });

  it('hashSecret refuses what bcrypt would truncate', async () => {
    await expect(hashSecret('a'.repeat(73), 4)).rejects.toThrow(UsageError);
    await expect(hashSecret('a'.repeat(72), 4)).resolves.toMatch(/^\$2b\$04\$/);
  });
});

describe('parseCost', () => {
  it('defaults to 10 and accepts 4..31', () => {
    expect(parseCost(undefined)).toBe(DEFAULT_COST);
    expect(DEFAULT_COST).toBe(10);
    expect(parseCost('4')).toBe(4);
    expect(parseCost('04')).toBe(4);
    expect(parseCost('12')).toBe(12);
    expect(parseCost('31')).toBe(31);
    expect(parseCost(4)).toBe(4);
    expect(parseCost(31)).toBe(31);
  });

  it.each(['3', '32', '0', '-5', '', ' 5', '5 ', '10.0', '1e1', '0x0a', 'ten', 'NaN', 'Infinity'])('refuses %j', (value) => {
    expect(() => parseCost(value)).toThrow(UsageError);
    expect(() => parseCost(value)).toThrow(/--cost must be a whole number from 4 to 31/);
  });

  it.each([3, 32, 4.5, Number.NaN])('refuses the number %d', (value) => {
    expect(() => parseCost(value)).toThrow(UsageError);
  });
});

describe('dummyHash', () => {
  it.each([4, 5, 10, 12, 31])('has cost %d and is a hash bcrypt accepts', (cost) => {
    const hash = dummyHash(cost);
    expect(classifyHash(hash)).toEqual({ algorithm: 'bcrypt', cost });
    expect(bcrypt.getRounds(hash)).toBe(cost);
  });

  it('never verifies', async () => {
    const hash = dummyHash(4);
    for (const secret of ['', 'x', 'secret', 'A'.repeat(40), 'keysmith', 'keysmithdummysaltkeysm']) {
      expect(await bcrypt.compare(secret, hash)).toBe(false);
    }
    // Its salt is accepted by bcrypt's hashing (so a comparison does the full work), but its salt
    // string is not canonical: no hash bcrypt computes can ever equal it.
    const computed = await bcrypt.hash('x', hash.slice(0, 29));
    expect(computed).toMatch(/^\$2b\$04\$/);
    expect(computed.slice(0, 29)).not.toBe(hash.slice(0, 29));
  });
});

describe('verify-access-key: an unknown ID costs the same bcrypt work as a wrong secret', () => {
  let dir: string;
  let keychain: string;
  const id = 'KNOWNKEY000000000000';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keysmith-hashing-'));
    keychain = join(dir, 'keychain');
    // Cost 5: different from the default 10, so the dummy's cost must come from the keychain.
    writeFileSync(keychain, `# a comment first\n${id}:${await bcrypt.hash('right secret', 5)}\n`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function verify(whichId: string, secret: string) {
    const compare = vi.spyOn(bcrypt, 'compare');
    const f = fakeCtx({ stdin: secret + '\n' });
    let error: unknown;
    try {
      await verifyAccessKey(whichId, { keychain }, f.ctx);
    } catch (err) {
      error = err;
    }
    const hashes = compare.mock.calls.map((call) => call[1] as string);
    compare.mockRestore();
    return { error, hashes, stderr: f.stderr() };
  }

  it('compares once against a hash of the keychain cost in both cases', async () => {
    const wrong = await verify(id, 'wrong secret');
    const unknown = await verify('UNKNOWNKEY0000000000', 'wrong secret');
    const right = await verify(id, 'right secret');

    expect(right.error).toBeUndefined();
    expect(right.stderr).toContain(`access key ${id}: OK`);
    for (const failed of [wrong, unknown]) {
      expect((failed.error as { exitCode?: number }).exitCode).toBe(1);
      expect((failed.error as Error).message).toMatch(/verification failed/);
    }
    // The same message: the output does not tell unknown IDs apart either.
    expect((unknown.error as Error).message.replace('UNKNOWNKEY0000000000', id)).toBe((wrong.error as Error).message);

    expect(wrong.hashes).toHaveLength(1);
    expect(unknown.hashes).toHaveLength(1);
    expect(bcrypt.getRounds(wrong.hashes[0]!)).toBe(5);
    expect(bcrypt.getRounds(unknown.hashes[0]!)).toBe(5);
    expect(unknown.hashes[0]).toBe(dummyHash(5));
  });

  it('uses the default cost for a keychain without bcrypt entries', async () => {
    // A keychain with only a comment (a missing one is reported before any secret is read).
    const empty = join(dir, 'comments-only');
    writeFileSync(empty, '# no keys yet\n', { mode: 0o600 });
    const compare = vi.spyOn(bcrypt, 'compare');
    const f = fakeCtx({ stdin: 'x' });
    await expect(verifyAccessKey('NOPE', { keychain: empty }, f.ctx)).rejects.toMatchObject({ exitCode: 1 });
    expect(compare.mock.calls.map((c) => bcrypt.getRounds(c[1] as string))).toEqual([DEFAULT_COST]);
  });
});

describe('randomString', () => {
  it('draws IDs and secrets of the right length from the right alphabet', () => {
    for (let i = 0; i < 200; i++) {
      expect(randomString(UPPER_DIGITS, 20)).toMatch(/^[A-Z0-9]{20}$/);
      expect(randomString(ALNUM, 40)).toMatch(/^[A-Za-z0-9]{40}$/);
    }
    expect(randomString(ALNUM, 0)).toBe('');
    expect(randomString('ab', 1000)).toMatch(/^[ab]{1000}$/);
  });

  it('uses every character of the alphabet', () => {
    // 36 characters × 20,000 draws: each is expected ~556 times; fewer than 300 is (far) beyond chance.
    const counts = new Map<string, number>();
    for (const c of randomString(UPPER_DIGITS, 20_000)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect([...counts.keys()].sort().join('')).toBe([...UPPER_DIGITS].sort().join(''));
    for (const n of counts.values()) expect(n).toBeGreaterThan(300);
  });

  it('rejects bytes at or above the largest multiple of the alphabet size (no modulo bias)', () => {
    const randomBytes = vi.mocked(realCrypto.randomBytes) as unknown as ReturnType<typeof vi.fn>;
    // ALNUM has 62 characters: 248 = 4 × 62 is the limit. 248..255 are rejected, 247 maps to 247 % 62 = 61.
    randomBytes.mockImplementationOnce((n: number) => {
      const bytes = Buffer.alloc(n, 0);
      bytes.set([248, 255, 250, 0, 247, 62, 61]);
      return bytes;
    });
    expect(randomString(ALNUM, 4)).toBe(ALNUM[0]! + ALNUM[61]! + ALNUM[0]! + ALNUM[61]!);
    expect(randomBytes).toHaveBeenCalled();
  });

  it('keeps drawing until it has enough characters when many bytes are rejected', () => {
    const randomBytes = vi.mocked(realCrypto.randomBytes) as unknown as ReturnType<typeof vi.fn>;
    randomBytes.mockImplementationOnce((n: number) => Buffer.alloc(n, 255)); // all rejected
    expect(randomString(UPPER_DIGITS, 20)).toMatch(/^[A-Z0-9]{20}$/);
    expect(randomBytes.mock.calls.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses alphabets it cannot draw from uniformly', () => {
    expect(() => randomString('a', 5)).toThrow(RangeError);
    expect(() => randomString('x'.repeat(257), 5)).toThrow(RangeError);
  });
});
