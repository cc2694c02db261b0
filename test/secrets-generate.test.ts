import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { run } from '../src/commands/generate-secret.js';
import { UsageError } from '../src/io/errors.js';
import { hexInto, secretSpec, type SecretFlags } from '../src/secrets/generate.js';
import { ALNUM } from '../src/secrets/random.js';
import { fakeCtx } from './helpers/ctx.js';

async function generate(opts: Parameters<typeof run>[0] = {}): Promise<string[]> {
  const f = fakeCtx();
  await run(opts, f.ctx);
  expect(f.stderr()).toBe('');
  expect(f.stdout().endsWith('\n')).toBe(true);
  return f.stdout().slice(0, -1).split('\n');
}

async function usageError(opts: Parameters<typeof run>[0]): Promise<string> {
  const f = fakeCtx();
  const err = await run(opts, f.ctx).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  expect(f.stdout()).toBe('');
  return (err as UsageError).message;
}

/** Pearson's chi-square statistic of the character counts in `text` against a uniform `alphabet`. */
function chiSquare(text: string, alphabet: string): number {
  const counts = new Map<string, number>([...alphabet].map((c) => [c, 0]));
  for (const c of text) counts.set(c, counts.get(c)! + 1);
  const expected = text.length / alphabet.length;
  let chi2 = 0;
  for (const n of counts.values()) chi2 += (n - expected) ** 2 / expected;
  return chi2;
}

const ALPHABETS = {
  hex: /^[0-9a-f]+$/,
  base64: /^[A-Za-z0-9+/]+={0,2}$/,
  base64url: /^[A-Za-z0-9_-]+$/,
  alnum: /^[A-Za-z0-9]+$/,
};

describe('generate-secret', () => {
  it('prints one 32-byte hex secret and nothing else, like openssl rand -hex 32', async () => {
    const f = fakeCtx();
    await run({}, f.ctx);
    expect(f.stdout()).toMatch(/^[0-9a-f]{64}\n$/);
    expect(f.stderr()).toBe('');
  });

  it.each([
    // encoding, bytes, characters (base64 pads to 4, base64url does not pad)
    ['hex', 16, 32],
    ['hex', 33, 66],
    ['base64', 16, 24],
    ['base64', 32, 44],
    ['base64', 33, 44],
    ['base64url', 16, 22],
    ['base64url', 32, 43],
    ['base64url', 33, 44],
  ] as const)('%s of %i bytes: %i characters from the right alphabet', async (encoding, bytes, width) => {
    const secrets = await generate({ encoding, bytes: String(bytes), count: '200' });
    expect(secrets).toHaveLength(200);
    for (const s of secrets) {
      expect(s).toHaveLength(width);
      expect(s).toMatch(ALPHABETS[encoding]);
      expect(Buffer.from(s, encoding)).toHaveLength(bytes);
    }
  });

  it('alnum: 43 characters (256 bits) by default, --length characters, --bytes N → at least 8N bits', async () => {
    for (const [opts, width] of [
      [{}, 43],
      [{ length: '40' }, 40],
      [{ bytes: '16' }, 22],
      [{ bytes: '64' }, 86],
    ] as const) {
      const secrets = await generate({ encoding: 'alnum', ...opts, count: '50' });
      for (const s of secrets) expect(s).toMatch(new RegExp(`^[A-Za-z0-9]{${width}}$`));
    }
  });

  it('--json prints one object per line with the secret, its encoding and its entropy in bits', async () => {
    const lines = await generate({ encoding: 'alnum', count: '3', json: true });
    const objects = lines.map((l) => JSON.parse(l) as { secret: string; encoding: string; bits: number });
    expect(objects).toHaveLength(3);
    for (const o of objects) {
      expect(Object.keys(o)).toEqual(['secret', 'encoding', 'bits']);
      expect(o.secret).toMatch(/^[A-Za-z0-9]{43}$/);
      expect(o.encoding).toBe('alnum');
      expect(o.bits).toBe(256); // 43 × log2(62) = 256.03
    }
    const [hex] = (await generate({ bytes: '20', json: true })).map((l) => JSON.parse(l));
    expect(hex).toEqual({ secret: expect.stringMatching(/^[0-9a-f]{40}$/), encoding: 'hex', bits: 160 });
  });

  it('10,000 secrets are distinct', async () => {
    for (const encoding of ['hex', 'alnum'] as const) {
      const secrets = await generate({ encoding, count: '10000' });
      expect(secrets).toHaveLength(10_000);
      expect(new Set(secrets).size).toBe(10_000);
    }
  });

  it('weak secrets are checked for repeats: --bytes 1 --count 256 prints all 256 values', async () => {
    // Without the check, 256 draws from 256 values would repeat some (all distinct: p ≈ 10^-110).
    const secrets = await generate({ bytes: '1', allowWeak: true, count: '256' });
    expect(new Set(secrets).size).toBe(256);
    expect(await usageError({ bytes: '1', allowWeak: true, count: '257' })).toMatch(/only 256 different 8-bit secrets/);
  });

  it('alnum characters are uniform: chi-square over 124,000 characters', async () => {
    // 62 categories (61 degrees of freedom), 2,000 expected per character. For uniform draws
    // P(chi² > 130) = 6.6e-7 (scipy.stats.chi2.sf(130, 61)), so this fails by chance less than
    // once in a million runs.
    const text = (await generate({ encoding: 'alnum', length: '1000', count: '124' })).join('');
    expect(text).toHaveLength(124_000);
    expect(chiSquare(text, ALNUM)).toBeLessThan(130);
  });

  it('the chi-square test catches modulo bias (so it can fail)', () => {
    // byte % 62 favours the first 8 characters (5/256 against 4/256): chi² ≈ 800, far above 130.
    const biased = Array.from(randomBytes(124_000), (b) => ALNUM[b % 62]).join('');
    expect(chiSquare(biased, ALNUM)).toBeGreaterThan(130);
  });

  it('refuses secrets under 128 bits unless --allow-weak', async () => {
    expect(await usageError({ bytes: '15' })).toMatch(/120-bit secret is too weak.*at least 128 bits/);
    expect(await usageError({ encoding: 'alnum', length: '21' })).toMatch(/125-bit secret is too weak/);
    expect(await generate({ bytes: '8', allowWeak: true })).toEqual([expect.stringMatching(/^[0-9a-f]{16}$/)]);
    expect(await generate({ bytes: '16' })).toEqual([expect.stringMatching(/^[0-9a-f]{32}$/)]);
    expect(await generate({ encoding: 'alnum', length: '22' })).toEqual([expect.stringMatching(/^[A-Za-z0-9]{22}$/)]);
  });

  it.each<[SecretFlags & { count?: string }, RegExp]>([
    [{ encoding: 'base32' }, /--encoding must be one of hex, base64, base64url, alnum, got "base32"/],
    [{ length: '40' }, /--length counts characters of --encoding alnum; for hex, give --bytes/],
    [{ encoding: 'base64', length: '40' }, /for base64, give --bytes/],
    [{ encoding: 'alnum', length: '40', bytes: '32' }, /--bytes or --length, not both/],
    [{ bytes: '0' }, /--bytes must be a whole number from 1 to 1024, got "0"/],
    [{ bytes: '1025' }, /--bytes must be a whole number from 1 to 1024/],
    [{ bytes: '3.5' }, /--bytes must be a whole number/],
    [{ bytes: '-4' }, /--bytes must be a whole number/],
    [{ encoding: 'alnum', length: 'ten' }, /--length must be a whole number from 1 to 1024, got "ten"/],
    [{ count: '0' }, /--count must be a whole number from 1 to 1000000, got "0"/],
    [{ count: '1e3' }, /--count must be a whole number/],
  ])('usage error for %o', async (opts, message) => {
    expect(await usageError(opts)).toMatch(message);
  });

  it('reports entropy in whole bits, rounded down', () => {
    expect(secretSpec({})).toEqual({ encoding: 'hex', size: 32, width: 64, bits: 256 });
    expect(secretSpec({ encoding: 'alnum', length: '22' })).toMatchObject({ size: 22, bits: 130 });
    expect(secretSpec({ encoding: 'base64url', bytes: '17' })).toMatchObject({ width: 23, bits: 136 });
  });
});

describe('hexInto', () => {
  it('encodes as Buffer hex does, into lines that keep their prefix, suffix and newline', () => {
    for (const [count, size, before, after] of [
      [1, 1, '', ''],
      [3, 32, '', ''],
      [5, 17, '{"secret":"', '"}'],
    ] as const) {
      const width = 2 * size;
      const stride = before.length + width + after.length + 1;
      const random = randomBytes(count * size);
      const buf = Buffer.alloc(count * stride + random.length, '_');
      for (let i = 0; i < count; i++) buf.write(`${before}${'.'.repeat(width)}${after}\n`, i * stride, 'latin1');
      random.copy(buf, count * stride);
      hexInto(buf, count * stride, count, size, stride, before.length);
      const expected = Array.from({ length: count }, (_, i) => `${before}${random.toString('hex', i * size, (i + 1) * size)}${after}\n`).join('');
      expect(buf.toString('latin1', 0, count * stride)).toBe(expected);
    }
  });
});
