/** generate-secret and rotate-secret through the built binary (`npm run build` first). */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { SignJWT, jwtVerify } from 'jose';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { keysmith, oneErrorLine } from './helpers/keysmith.js';

const BIN = fileURLToPath(new URL('../bin/keysmith.js', import.meta.url));
const fixture = (name: string) => readFileSync(new URL(`../fixtures/configs/${name}`, import.meta.url), 'utf8');

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'keysmith-secrets-'));
}

describe('generate-secret (binary)', () => {
  it('prints exactly one 64-character hex line, for $(keysmith generate-secret)', async () => {
    const r = await keysmith(['generate-secret']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^[0-9a-f]{64}$/); // execa strips the one final newline
    expect(r.stderr).toBe('');
  });

  it('prints 100,000 distinct secrets', async () => {
    const r = await keysmith(['generate-secret', '--count', '100000']);
    const lines = r.stdout.split('\n');
    expect(lines).toHaveLength(100_000);
    expect(new Set(lines).size).toBe(100_000);
    expect(lines.every((l) => /^[0-9a-f]{64}$/.test(l))).toBe(true);
  });

  it('stops quietly when the reader goes away', async () => {
    const r = await execa('sh', ['-c', `"${process.execPath}" "${BIN}" generate-secret --count 1000000 | head -n 1`], { reject: false });
    expect(r.stdout).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stderr).toBe('');
  });

  it.each([
    [['--bytes', '8'], /error: a 64-bit secret is too weak/],
    [['--encoding', 'base32'], /error: --encoding must be one of hex, base64, base64url, alnum/],
    [['--length', '20'], /error: --length counts characters of --encoding alnum/],
    [['--count', 'many'], /error: --count must be a whole number/],
  ])('exit 2 and one error line for %j', async (args, message) => {
    const r = await keysmith(['generate-secret', ...args]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toMatch(message);
  });
});

/** HS256 tokens as Tiled makes them: the key string is the HMAC key; every key is tried in turn. */
const hmacKey = (key: string) => new TextEncoder().encode(key);
const sign = (key: string) =>
  new SignJWT({ sub: 'alice', type: 'access' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('15m').sign(hmacKey(key));

async function verifies(token: string, keys: string[]): Promise<boolean> {
  for (const key of keys) {
    try {
      await jwtVerify(token, hmacKey(key), { algorithms: ['HS256'] });
      return true;
    } catch {
      // try the next key
    }
  }
  return false;
}

/** The value of `name` in an env file, without its quotes. */
function envValue(text: string, name: string): string {
  const m = new RegExp(`^(?:export )?${name}=(.*?)(?:\\s+#.*)?$`, 'm').exec(text);
  if (!m) throw new Error(`${name} not set`);
  return m[1]!.replace(/^(["'])(.*)\1$/, '$2');
}

// The three places Tiled reads its keys from; `${VAR}` items are expanded as Tiled would.
const CONFIGS = [
  {
    name: 'config.yml',
    write: (keys: string[]) => fixture('tiled-config.yml').replace(/secret_keys:\n(?: {4}- .*\n)+/, `secret_keys:\n${keys.map((k) => `    - ${k}\n`).join('')}`),
    read: (text: string) => (parse(text) as { authentication: { secret_keys: string[] } }).authentication.secret_keys,
    args: [],
  },
  {
    name: '.env',
    write: (keys: string[]) => fixture('app.env').replace(/^(export TILED_SERVER_SECRET_KEYS=)".*?"/m, `$1"${keys.join(';')}"`),
    read: (text: string) => envValue(text, 'TILED_SERVER_SECRET_KEYS').split(';'),
    args: [],
  },
  {
    name: 'tiled.env',
    write: (keys: string[]) => fixture('app.env').replace(/^TILED_SECRET_KEYS=.*$/m, `TILED_SECRET_KEYS='${JSON.stringify(keys)}'`),
    read: (text: string) => JSON.parse(envValue(text, 'TILED_SECRET_KEYS')) as string[],
    args: ['--var', 'TILED_SECRET_KEYS'],
  },
];

describe.each(CONFIGS)('rotate-secret $name (binary)', ({ name, write, read, args }) => {
  it('keeps the rotation contract: old tokens verify until their key is dropped, new tokens use the new key', async () => {
    const dir = tempDir();
    const path = join(dir, name);
    const environment: Record<string, string> = { TILED_PREVIOUS_SECRET_KEY: (await keysmith(['generate-secret'])).stdout };
    const keysNow = () => read(readFileSync(path, 'utf8')).map((k) => k.replace(/^\$\{(\w+)\}$/, (_, v: string) => environment[v]!));

    const original = (await keysmith(['generate-secret'])).stdout;
    writeFileSync(path, write([original, '${TILED_PREVIOUS_SECRET_KEY}']));
    const oldToken = await sign(keysNow()[0]!);
    expect(await verifies(oldToken, keysNow())).toBe(true);

    const first = await keysmith(['rotate-secret', name, ...args, '--print'], { cwd: dir });
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toMatch(/^[0-9a-f]{64}$/);
    expect(first.stderr).toMatch(/^Rotated .* in .*: 1 new, kept 1, dropped 1$/);
    expect(keysNow()).toEqual([first.stdout, original]);
    expect(await verifies(oldToken, keysNow())).toBe(true);
    const newToken = await sign(keysNow()[0]!);
    expect(await verifies(newToken, [first.stdout])).toBe(true);

    const second = await keysmith(['rotate-secret', name, ...args, '--keep', '2'], { cwd: dir });
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toBe(''); // nothing secret without --print
    expect(keysNow()).toHaveLength(2);
    expect(keysNow()[1]).toBe(first.stdout);
    expect(await verifies(oldToken, keysNow())).toBe(false);
    expect(await verifies(newToken, keysNow())).toBe(true);
  });

  it('loses no key when rotations run at once (the file is locked)', async () => {
    const dir = tempDir();
    const path = join(dir, name);
    writeFileSync(path, write(['first']));
    const runs = await Promise.all(Array.from({ length: 6 }, () => keysmith(['rotate-secret', name, ...args, '--keep', '10', '--print'], { cwd: dir })));
    expect(runs.map((r) => r.exitCode)).toEqual([0, 0, 0, 0, 0, 0]);
    const keys = read(readFileSync(path, 'utf8'));
    expect(keys).toHaveLength(7);
    expect(new Set(keys)).toEqual(new Set([...runs.map((r) => r.stdout), 'first']));
  });
});

describe('rotate-secret errors and dry runs (binary)', () => {
  it('--dry-run shows a redacted diff and writes nothing', async () => {
    const dir = tempDir();
    const before = fixture('tiled-config.yml');
    writeFileSync(join(dir, 'config.yml'), before);
    const r = await keysmith(['rotate-secret', 'config.yml', '--dry-run'], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^--- config.yml\n\+\+\+ config.yml \(rotated\)\n@@ -22,0 \+23 @@\n\+ {4}- "[0-9a-f]{4}…"\n@@ -24 \+24,0 @@\n- {4}- \$\{TILED_PREVIOUS_SECRET_KEY\}$/);
    expect(r.stderr).toMatch(/^Dry run, nothing written/);
    expect(readFileSync(join(dir, 'config.yml'), 'utf8')).toBe(before);
  });

  it('exit 2 with file, line and column for malformed YAML; the file is left alone', async () => {
    const dir = tempDir();
    const bad = 'authentication:\n  secret_keys:\n    - a\n   - b\n';
    writeFileSync(join(dir, 'config.yml'), bad);
    const r = await keysmith(['rotate-secret', 'config.yml'], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/^error: config\.yml line 4: .*\(column \d+\)$/);
    expect(readFileSync(join(dir, 'config.yml'), 'utf8')).toBe(bad);
  });

  it('exit 1 for a missing file, which is not created', async () => {
    const dir = tempDir();
    const r = await keysmith(['rotate-secret', 'config.yml'], { cwd: dir });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toBe('error: config.yml does not exist');
    expect(() => readFileSync(join(dir, 'config.yml'))).toThrow();
  });
});
