/**
 * The OS keyring (issue 13): long-lived secrets in a real Secret Service — Debian's gnome-keyring
 * on a private D-Bus session, started by the test (test/helpers/keyring.ts) — checked with
 * `secret-tool`, through the built binary. And the fallback with no D-Bus session at all.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeWithKeyring, filesContaining, startKeyring, type Keyring } from './helpers/keyring.js';
import { keysmith, oneErrorLine } from './helpers/keysmith.js';
import { startServer, type TestServer } from './helpers/servers.js';

const homes: string[] = [];
function newHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'keysmith-kr-home-'));
  homes.push(home);
  return home;
}
afterEach(() => {
  for (const home of homes.splice(0)) rmSync(home, { recursive: true, force: true });
});

const sessionFile = (home: string, profile: string) => join(home, '.local', 'state', 'keysmith', 'sessions', `${profile}.json`);
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const profilesFile = (home: string) => join(home, '.config', 'keysmith', 'profiles.json');

async function profilesJson(env: Record<string, string | undefined>): Promise<Array<Record<string, unknown>>> {
  const r = await keysmith(['profiles', '--json'], { env });
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

describeWithKeyring('OS keyring: a real Secret Service (gnome-keyring on a private D-Bus session)', () => {
  let kr: Keyring;
  let server: TestServer;
  beforeAll(async () => {
    kr = await startKeyring();
    server = await startServer('basic-login', { accessTtl: 600, rotateRefresh: true });
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    await kr?.stop();
  });

  const envFor = (home: string, extra: Record<string, string | undefined> = {}) => ({ HOME: home, ...kr.env, ...extra });
  const login = (env: Record<string, string | undefined>, profile: string, extra: string[] = []) =>
    keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'alice', '--password-stdin', '--profile', profile, ...extra], { env, input: 'password' });

  it('login keeps the refresh token in the keyring and in no file; profiles --json says "keyring"', async () => {
    const home = newHome();
    const env = envFor(home);
    const r = await login(env, 'kr-login');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^Logged in to /);
    expect(r.stderr).not.toMatch(/note:|warning:/);
    const refresh = await kr.lookup('kr-login/refresh-token');
    expect(refresh).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(filesContaining(home, refresh!)).toEqual([]);
    expect(filesContaining(join(home, '.local', 'state', 'keysmith'), refresh!)).toEqual([]);
    const stored = readJson(sessionFile(home, 'kr-login'));
    expect(stored.refreshToken).toBeUndefined();
    expect(stored.keyring).toEqual({ service: 'keysmith', account: 'kr-login', fields: ['refreshToken'] });
    expect(typeof stored.accessToken).toBe('string');
    const rows = await profilesJson(env);
    expect(rows).toEqual([expect.objectContaining({ name: 'kr-login', logged_in: true, storage: 'keyring' })]);
  });

  it('the cached token path never asks the keyring: `token` answers while the keyring daemon is frozen', async () => {
    const home = newHome();
    const env = envFor(home);
    expect((await login(env, 'kr-cached')).exitCode).toBe(0);
    const access = readJson(sessionFile(home, 'kr-cached')).accessToken;
    kr.freeze();
    try {
      const started = Date.now();
      const t = await keysmith(['token', '--profile', 'kr-cached'], { env, timeout: 10_000 });
      expect(t.exitCode, t.stderr).toBe(0);
      expect(t.stdout).toBe(access);
      expect(t.stderr).toBe('');
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      kr.resume();
    }
  });

  it('refresh reads the refresh token from the keyring and stores the rotated one there', async () => {
    const home = newHome();
    const env = envFor(home);
    expect((await login(env, 'kr-refresh')).exitCode).toBe(0);
    const first = await kr.lookup('kr-refresh/refresh-token');
    const before = await server.count('refresh');
    const r1 = await keysmith(['refresh', '--profile', 'kr-refresh'], { env });
    expect(r1.exitCode, r1.stderr).toBe(0);
    const second = await kr.lookup('kr-refresh/refresh-token');
    expect(second).not.toBe(first);
    // The rotated token is the one used next: replaying the first would end the session.
    const r2 = await keysmith(['refresh', '--profile', 'kr-refresh'], { env });
    expect(r2.exitCode, r2.stderr).toBe(0);
    expect(await server.count('refresh')).toBe(before + 2);
    const third = await kr.lookup('kr-refresh/refresh-token');
    expect(third).not.toBe(second);
    expect(filesContaining(home, third!)).toEqual([]);
    expect(readJson(sessionFile(home, 'kr-refresh')).keyring).toBeDefined();
  });

  it('logout removes the keyring entries and the session file', async () => {
    const home = newHome();
    const env = envFor(home);
    expect((await login(env, 'kr-logout')).exitCode).toBe(0);
    expect(await kr.accounts()).toContain('kr-logout/refresh-token');
    const r = await keysmith(['logout', '--profile', 'kr-logout'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await kr.accounts()).not.toContain('kr-logout/refresh-token');
    expect(await kr.lookup('kr-logout/refresh-token')).toBeNull();
    const rows = await profilesJson(env);
    expect(rows).toEqual([expect.objectContaining({ name: 'kr-logout', logged_in: false, storage: null })]);
  });

  it('--storage file keeps the refresh token in the 0600 file; switching moves them and leaves no entry behind', async () => {
    const home = newHome();
    const env = envFor(home);
    const r = await login(env, 'kr-file', ['--storage', 'file']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await kr.lookup('kr-file/refresh-token')).toBeNull();
    expect(typeof readJson(sessionFile(home, 'kr-file')).refreshToken).toBe('string');
    expect(readJson(profilesFile(home)).profiles).toMatchObject({ 'kr-file': { storage: 'file' } });
    expect(await profilesJson(env)).toEqual([expect.objectContaining({ storage: 'file' })]);
    // The choice is remembered: logging in again without --storage stays in the file.
    expect((await login(env, 'kr-file')).exitCode).toBe(0);
    expect(await kr.lookup('kr-file/refresh-token')).toBeNull();
    // Into the keyring ...
    expect((await login(env, 'kr-file', ['--storage', 'keyring'])).exitCode).toBe(0);
    const secret = await kr.lookup('kr-file/refresh-token');
    expect(secret).not.toBeNull();
    expect(readJson(sessionFile(home, 'kr-file')).refreshToken).toBeUndefined();
    // ... and out again: the entry is removed.
    expect((await login(env, 'kr-file', ['--storage', 'file'])).exitCode).toBe(0);
    expect(await kr.lookup('kr-file/refresh-token')).toBeNull();
    expect(typeof readJson(sessionFile(home, 'kr-file')).refreshToken).toBe('string');
  });

  it('a session file written before keyrings (no marker) keeps working, and stays in the file', async () => {
    const home = newHome();
    const env = envFor(home);
    expect((await login(env, 'kr-old', ['--storage', 'file'])).exitCode).toBe(0);
    // What an older keysmith wrote: no storage choice in the profile.
    const profiles = readJson(profilesFile(home)) as { profiles: Record<string, Record<string, unknown>> };
    delete profiles.profiles['kr-old']!.storage;
    writeFileSync(profilesFile(home), JSON.stringify(profiles));
    const r = await keysmith(['refresh', '--profile', 'kr-old'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    const stored = readJson(sessionFile(home, 'kr-old'));
    expect(stored.keyring).toBeUndefined();
    expect(typeof stored.refreshToken).toBe('string');
    expect(await kr.lookup('kr-old/refresh-token')).toBeNull();
  });

  it('a static API key goes to the keyring; token reads it from there', async () => {
    const home = newHome();
    const env = envFor(home);
    const key = `ks-test-key-${Date.now()}-abcdefgh`;
    const r = await keysmith(['login', 'https://api.example.com', '--dialect', 'apikey', '--api-key-stdin', '--profile', 'kr-key'], { env, input: key });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await kr.lookup('kr-key/credential')).toBe(key);
    expect(filesContaining(home, key)).toEqual([]);
    const stored = readJson(sessionFile(home, 'kr-key'));
    expect(stored.accessToken).toBeUndefined();
    expect(stored.keyring).toEqual({ service: 'keysmith', account: 'kr-key', fields: ['accessToken'] });
    const t = await keysmith(['token', '--profile', 'kr-key'], { env });
    expect(t.exitCode, t.stderr).toBe(0);
    expect(t.stdout).toBe(key);
    const h = await keysmith(['token', '--header', '--profile', 'kr-key'], { env });
    expect(h.stdout).toBe(`Authorization: Apikey ${key}`);
    expect((await keysmith(['logout', '--profile', 'kr-key'], { env })).exitCode).toBe(0);
    expect(await kr.lookup('kr-key/credential')).toBeNull();
  });

  it('a locked keyring: one line, exit 1, no downgrade to the file; a new login falls back with a warning; --storage keyring saves nothing', async () => {
    const home = newHome();
    const env = envFor(home);
    expect((await login(env, 'kr-locked')).exitCode).toBe(0);
    const before = readFileSync(sessionFile(home, 'kr-locked'), 'utf8');
    await kr.lock();
    try {
      const started = Date.now();
      const r = await keysmith(['refresh', '--profile', 'kr-locked'], { env, timeout: 15_000 });
      expect(r.exitCode).toBe(1);
      expect(oneErrorLine(r.stderr)).toMatch(/^error: the OS keyring is locked .*cannot read the refresh token of profile kr-locked/);
      expect(r.stderr).toMatch(/^hint: unlock the keyring/m);
      expect(Date.now() - started).toBeLessThan(10_000);
      // Not moved to the file, not changed at all.
      expect(readFileSync(sessionFile(home, 'kr-locked'), 'utf8')).toBe(before);
      // Logging in again without --storage: the profile is in the keyring, so it stays there (fails).
      const again = await login(env, 'kr-locked');
      expect(again.exitCode).toBe(1);
      expect(oneErrorLine(again.stderr)).toMatch(/the OS keyring is locked/);
      expect(readFileSync(sessionFile(home, 'kr-locked'), 'utf8')).toBe(before);
      // A new profile may fall back: one warning line, the secrets in its 0600 file.
      const fresh = await login(env, 'kr-locked-new');
      expect(fresh.exitCode, fresh.stderr).toBe(0);
      expect(fresh.stderr.split('\n').filter((l) => l.startsWith('warning:'))).toEqual([
        expect.stringMatching(/^warning: the OS keyring is locked .*keeping the credentials of profile kr-locked-new in its 0600 session file/),
      ]);
      expect(typeof readJson(sessionFile(home, 'kr-locked-new')).refreshToken).toBe('string');
      // --storage keyring: fails, and nothing is saved.
      const forced = await login(env, 'kr-locked-forced', ['--storage', 'keyring']);
      expect(forced.exitCode).toBe(1);
      expect(oneErrorLine(forced.stderr)).toMatch(/^error: the OS keyring is locked .*nothing was saved/);
      expect(() => readFileSync(sessionFile(home, 'kr-locked-forced'))).toThrow();
      expect(Object.keys((readJson(profilesFile(home)) as { profiles: object }).profiles)).not.toContain('kr-locked-forced');
    } finally {
      await kr.unlock();
    }
    const r = await keysmith(['refresh', '--profile', 'kr-locked'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
  }, 60_000);

  it('a keyring that does not answer: the wait is bounded ($KEYSMITH_KEYRING_TIMEOUT), one line, exit 1', async () => {
    const home = newHome();
    const env = envFor(home);
    expect((await login(env, 'kr-frozen')).exitCode).toBe(0);
    kr.freeze();
    try {
      const started = Date.now();
      const r = await keysmith(['refresh', '--profile', 'kr-frozen'], { env: { ...env, KEYSMITH_KEYRING_TIMEOUT: '1' }, timeout: 15_000 });
      expect(r.exitCode).toBe(1);
      expect(oneErrorLine(r.stderr)).toMatch(/^error: the OS keyring did not answer in time \(no answer within 1 s\)/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      kr.resume();
    }
  });

  it('in-process: an OAuth client secret goes there too; a session read for use only cannot be written back', async () => {
    const { fakeCtx } = await import('./helpers/ctx.js');
    const { readSession, writeSession, deleteSession } = await import('../src/tokens/store.js');
    const home = newHome();
    const { ctx } = fakeCtx({ env: { HOME: home, ...kr.env } });
    const now = Date.now();
    const session = { accessToken: 'at-inproc', tokenType: 'bearer', obtainedAt: now, expiresAt: now + 600_000, refreshToken: 'rt-inproc-0123', clientSecret: 'cs-inproc-4567' };
    expect(await writeSession(ctx, 'kr-oauth', session, { storage: 'auto', dialect: 'oauth2' })).toBe('keyring');
    expect(await kr.lookup('kr-oauth/refresh-token')).toBe('rt-inproc-0123');
    expect(await kr.lookup('kr-oauth/client-secret')).toBe('cs-inproc-4567');
    expect(filesContaining(home, 'inproc-0123')).toEqual([]);
    expect(filesContaining(home, 'inproc-4567')).toEqual([]);
    const forUse = await readSession(ctx, 'kr-oauth', { secrets: 'use' });
    expect(forUse).toEqual({ accessToken: 'at-inproc', tokenType: 'bearer', obtainedAt: now, expiresAt: now + 600_000 });
    await expect(writeSession(ctx, 'kr-oauth', forUse!)).rejects.toThrow(/read without its keyring secrets/);
    expect(await readSession(ctx, 'kr-oauth')).toEqual(session);
    // A refresh that brings no client secret any more: its entry goes.
    const { clientSecret: _, ...renewed } = { ...session, accessToken: 'at-2', refreshToken: 'rt-inproc-2' };
    expect(await writeSession(ctx, 'kr-oauth', renewed)).toBe('keyring');
    expect(await kr.lookup('kr-oauth/client-secret')).toBeNull();
    expect(await kr.lookup('kr-oauth/refresh-token')).toBe('rt-inproc-2');
    await deleteSession(ctx, 'kr-oauth');
    expect(await kr.accounts()).not.toContain('kr-oauth/refresh-token');
  });

  it('a keyring profile where no D-Bus session exists later: refresh and logout fail with one line and keep the session; a cached token still works', async () => {
    const home = newHome();
    expect((await login(envFor(home), 'kr-gone')).exitCode).toBe(0);
    const before = readFileSync(sessionFile(home, 'kr-gone'), 'utf8');
    const noBus = { HOME: home, DBUS_SESSION_BUS_ADDRESS: undefined };
    const cached = await keysmith(['token', '--profile', 'kr-gone'], { env: noBus });
    expect(cached.exitCode, cached.stderr).toBe(0);
    expect(cached.stdout).toBe(JSON.parse(before).accessToken);
    const r = await keysmith(['refresh', '--profile', 'kr-gone'], { env: noBus });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/^error: no OS keyring answers .*cannot read the refresh token of profile kr-gone/);
    expect(r.stderr).toMatch(/^hint: .*--storage file/m);
    const out = await keysmith(['logout', '--profile', 'kr-gone'], { env: noBus });
    expect(out.exitCode).toBe(1);
    expect(oneErrorLine(out.stderr)).toMatch(/no OS keyring answers/);
    expect(readFileSync(sessionFile(home, 'kr-gone'), 'utf8')).toBe(before);
    expect(await kr.lookup('kr-gone/refresh-token')).not.toBeNull();
    expect((await keysmith(['logout', '--profile', 'kr-gone'], { env: envFor(home) })).exitCode).toBe(0);
  });
});

describe('OS keyring: no D-Bus session at all', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('basic-login', { accessTtl: 600 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const login = (env: Record<string, string | undefined>, profile: string, extra: string[] = []) =>
    keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'alice', '--password-stdin', '--profile', profile, ...extra], { env, input: 'password' });

  it('a login falls back to the 0600 file at once, with one note the first time', async () => {
    const home = newHome();
    const env = { HOME: home, DBUS_SESSION_BUS_ADDRESS: undefined };
    const started = Date.now();
    const first = await login(env, 'nb1');
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr.split('\n').filter((l) => l.startsWith('note:'))).toEqual([expect.stringMatching(/^note: no OS keyring answers .*refresh tokens and credentials stay in 0600 files under .* \(said once\)$/)]);
    expect(Date.now() - started).toBeLessThan(5_000);
    const stored = readJson(sessionFile(home, 'nb1'));
    expect(typeof stored.refreshToken).toBe('string');
    expect(stored.keyring).toBeUndefined();
    const second = await login(env, 'nb2');
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/note:/);
    const rows = await profilesJson(env);
    expect(rows.map((r) => r.storage)).toEqual(['file', 'file']);
    const token = await keysmith(['token', '--profile', 'nb1'], { env });
    expect(token.exitCode, token.stderr).toBe(0);
    expect(token.stdout).toBe(stored.accessToken);
  });

  it('an address where no bus listens is no keyring either', async () => {
    const home = newHome();
    const env = { HOME: home, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(home, 'no-bus-here')}` };
    const r = await login(env, 'nb3');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^note: no OS keyring answers/m);
    expect(typeof readJson(sessionFile(home, 'nb3')).refreshToken).toBe('string');
  });

  it('--storage keyring without a keyring: one line, exit 1, nothing saved', async () => {
    const home = newHome();
    const env = { HOME: home, DBUS_SESSION_BUS_ADDRESS: undefined };
    const r = await login(env, 'nb4', ['--storage', 'keyring']);
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/^error: no OS keyring answers .*nothing was saved/);
    expect(() => readFileSync(sessionFile(home, 'nb4'))).toThrow();
    expect(() => readFileSync(profilesFile(home))).toThrow();
  });

  it('a damaged keyring marker in a session file is one line, exit 2', async () => {
    const home = newHome();
    const env = { HOME: home, DBUS_SESSION_BUS_ADDRESS: undefined };
    expect((await login(env, 'nb6')).exitCode).toBe(0);
    const path = sessionFile(home, 'nb6');
    writeFileSync(path, JSON.stringify({ ...readJson(path), keyring: { service: 'keysmith', account: 'nb6', fields: ['password'] } }));
    const r = await keysmith(['token', '--profile', 'nb6'], { env });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/nb6\.json: the "keyring" entry is damaged; log in again$/);
  });

  it('--storage takes only keyring or file', async () => {
    const home = newHome();
    const r = await login({ HOME: home, DBUS_SESSION_BUS_ADDRESS: undefined }, 'nb5', ['--storage', 'cloud']);
    expect(r.exitCode).toBe(2);
    expect(() => readFileSync(profilesFile(home))).toThrow();
  });
});
