import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { run } from '../src/commands/inspect-token.js';
import { fakeCtx } from './helpers/ctx.js';

const NOW = 1_800_000_000_000;
const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);

function sign(key: string, exp = NOW / 1000 + 900): Promise<string> {
  return new SignJWT({ sub: 'alice', type: 'access' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setExpirationTime(exp).sign(new TextEncoder().encode(key));
}

function file(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'ks-inspect-')), name);
  writeFileSync(path, content);
  return path;
}

async function inspect(token: string | undefined, opts: Record<string, unknown> = {}, stdin?: string) {
  const f = fakeCtx({ now: NOW, stdin });
  let error: unknown;
  await run(token, opts, f.ctx).catch((e) => (error = e));
  return { out: f.stdout(), error: error as { message: string; exitCode: number } | undefined };
}

describe('inspect-token', () => {
  it('shows claims with terminal controls escaped: C1, bidi and line separators as well as C0', async () => {
    const claims = Buffer.from(JSON.stringify({ sub: 'a\u009b2J\u202eb\u2028c\u001bd' })).toString('base64url');
    const { out, error } = await inspect(`e30.${claims}.sig`);
    expect(error).toBeUndefined();
    expect(out).toContain('"sub": "a\\u009b2J\\u202eb\\u2028c\\u001bd"');
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u202e]/);
  });

  it('decodes header and claims and says when the token expires', async () => {
    const { out, error } = await inspect(await sign(OLD));
    expect(error).toBeUndefined();
    expect(out).toContain('header:  {"alg":"HS256","typ":"JWT"}');
    expect(out).toContain('"sub": "alice"');
    expect(out).toContain('expires: 2027-01-15T08:15:00.000Z (in 15 min)');
    const expired = await inspect(await sign(OLD, NOW / 1000 - 7200), { json: true });
    expect(JSON.parse(expired.out)).toMatchObject({ expired: true, claims: { sub: 'alice' } });
  });

  it('reads the token from stdin with - or when piped', async () => {
    const token = await sign(OLD);
    expect((await inspect('-', { json: true }, `${token}\n`)).out).toContain('"alice"');
    expect((await inspect(undefined, { json: true }, token)).out).toContain('"alice"');
  });

  it.each([
    ['a YAML config', 'config.yml', `authentication:\n  secret_keys:\n    - "${NEW}"\n    - ${OLD}\n    - \${TILED_OLDER}\n`],
    ['an env file with a ; list', 'server.env', `# keys\nTILED_SERVER_SECRET_KEYS=${NEW};${OLD}\n`],
    ['an env file with a JSON list', '.env', `TILED_SECRET_KEYS='["${NEW}","${OLD}"]'\n`],
    ['a plain key list', 'keys.txt', `# newest first\n${NEW}\n\n${OLD}\n`],
  ])('verifies HS256 against every key of %s', async (_what, name, content) => {
    const path = file(name, content);
    const old = await inspect(await sign(OLD), { secretFile: path, json: true });
    expect(JSON.parse(old.out)).toMatchObject({ verified: true, key_index: 1 });
    const fresh = await inspect(await sign(NEW), { secretFile: path });
    expect(fresh.out).toContain('signature: valid (HS256, key 1 of 2, the signing key)');
    const other = await inspect(await sign('c'.repeat(64)), { secretFile: path });
    expect(other.error?.exitCode).toBe(1);
    expect(other.error?.message).toMatch(/matches none of the 2 keys/);
  });

  it('rejects what is not a JWT, and files without keys', async () => {
    expect((await inspect('opaque0123456789abcdef')).error?.exitCode).toBe(2);
    expect((await inspect('a.b.c')).error?.message).toMatch(/not base64url-encoded JSON/);
    const empty = await inspect(await sign(OLD), { secretFile: file('x.env', 'OTHER=1\n') });
    expect(empty.error?.message).toMatch(/sets none of TILED_SECRET_KEYS/);
  });
});
