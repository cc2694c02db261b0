/**
 * `keysmith api-key create|list|revoke` end to end: the built binary against the Tiled test
 * server's API-key routes (fixtures/servers/tiled.mjs, wire-reference §1.9), including a key saved
 * as a profile that `token` and `api` then use without a password or a refresh token.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useScratch } from './helpers/keychain-cli.js';
import { keysmith, oneErrorLine } from './helpers/keysmith.js';
import { startServer, stopAllServers, type ServerOptions, type TestServer } from './helpers/servers.js';

afterAll(stopAllServers);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const scratch = useScratch('keysmith-apikey-');
const SECRET = /^[0-9a-f]{72}$/;

type Env = Record<'HOME' | 'XDG_CONFIG_HOME' | 'XDG_STATE_HOME', string> & Record<string, string>;

async function loggedIn(options: ServerOptions = {}): Promise<{ server: TestServer; env: Env }> {
  const server = await startServer('tiled', options);
  const home = scratch.fresh();
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), XDG_STATE_HOME: join(home, 'state') };
  const r = await keysmith(['login', server.url, '--profile', 'tiled', '-u', 'alice'], { env: { ...env, KEYSMITH_PASSWORD: 'secret1' } });
  expect(r.exitCode, r.stderr).toBe(0);
  return { server, env };
}

/** GET /api/v1/metadata/ with this Authorization header: the status. */
async function metadataStatus(server: TestServer, authorization: string): Promise<number> {
  const res = await fetch(`${server.url}/api/v1/metadata/`, { headers: { authorization }, signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  return res.status;
}

function profilesFile(env: Env): { default?: string; profiles: Record<string, Record<string, unknown>> } {
  return JSON.parse(readFileSync(join(env.XDG_CONFIG_HOME, 'keysmith', 'profiles.json'), 'utf8'));
}

describe('api-key create', () => {
  it('prints the new secret once on stdout, and the key works as `Authorization: Apikey`', async () => {
    const { server, env } = await loggedIn();
    try {
      const r = await keysmith(['api-key', 'create', '--note', 'ci runner'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(SECRET);
      expect(r.stderr).toMatch(new RegExp(`^Created API key ${r.stdout.slice(0, 8)} for ${server.url} \\(never expires; scopes inherit\\)\\. The secret is shown this once`));
      expect(await metadataStatus(server, `Apikey ${r.stdout}`)).toBe(200);
      expect(await metadataStatus(server, `Apikey ${'0'.repeat(72)}`)).toBe(401);
      // Nothing about it is kept locally.
      expect(Object.keys(profilesFile(env).profiles)).toEqual(['tiled']);
      const list = await keysmith(['api-key', 'list'], { env });
      expect(list.exitCode, list.stderr).toBe(0);
      expect(list.stdout).toBe(`${r.stdout.slice(0, 8)}\tnever\tinherit\tci runner`);
      expect(list.stdout).not.toContain(r.stdout);
    } finally {
      await server.stop();
    }
  });

  it('--expires-in, --scopes (commas or repeated) and --json', async () => {
    const { server, env } = await loggedIn();
    try {
      const before = Date.now();
      const r = await keysmith(['api-key', 'create', '--expires-in', '3600', '--scopes', 'read:metadata,read:data', '--scopes', 'read:metadata', '--json'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      const key = JSON.parse(r.stdout) as { secret: string; first_eight: string; expiration_time: string; scopes: string[]; note: string | null };
      expect(key.secret).toMatch(SECRET);
      expect(key.first_eight).toBe(key.secret.slice(0, 8));
      expect(key.scopes).toEqual(['read:metadata', 'read:data']);
      const expires = Date.parse(`${key.expiration_time}Z`);
      expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3_600_000 - 1000);
      expect(expires).toBeLessThanOrEqual(Date.now() + 3_600_000);
      expect(await metadataStatus(server, `Apikey ${key.secret}`)).toBe(200);
      const list = JSON.parse((await keysmith(['api-key', 'list', '--json'], { env })).stdout) as Array<Record<string, unknown>>;
      expect(list).toEqual([{ first_eight: key.first_eight, expiration_time: key.expiration_time, note: null, scopes: ['read:metadata', 'read:data'], access_tags: null, latest_activity: expect.anything() }]);
    } finally {
      await server.stop();
    }
  });

  it('--save-profile keeps the key as an apikey profile, prints no secret, and token and api use it', async () => {
    const { server, env } = await loggedIn();
    try {
      const r = await keysmith(['api-key', 'create', '--save-profile', 'ci', '--note', 'for CI'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/and saved it as profile ci\./);
      const file = profilesFile(env);
      // The Tiled profile stays the default; the key's profile names the same server.
      expect(file.default).toBe('tiled');
      expect(file.profiles.ci).toMatchObject({ name: 'ci', url: server.url, dialect: 'apikey', username: 'alice' });
      const key = await keysmith(['token', '--profile', 'ci'], { env });
      expect(key.exitCode, key.stderr).toBe(0);
      expect(key.stdout).toMatch(SECRET);
      expect(JSON.stringify(file)).not.toContain(key.stdout);
      const session = join(env.XDG_STATE_HOME, 'keysmith', 'sessions', 'ci.json');
      expect(statSync(session).mode & 0o777).toBe(0o600);
      const header = await keysmith(['token', '--profile', 'ci', '--header'], { env });
      expect(header.stdout).toBe(`Authorization: Apikey ${key.stdout}`);
      expect(await metadataStatus(server, header.stdout.slice('Authorization: '.length))).toBe(200);
      // keysmith api with the key's profile: the server answers for alice's key.
      const api = await keysmith(['api', '--profile', 'ci', '/api/v1/auth/apikey'], { env });
      expect(api.exitCode, api.stderr).toBe(0);
      expect(JSON.parse(api.stdout)).toMatchObject({ first_eight: key.stdout.slice(0, 8), note: 'for CI' });
      // Saving again under the same name replaces the key in the profile.
      const again = await keysmith(['api-key', 'create', '--save-profile', 'ci'], { env });
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/replacing its previous key/);
      expect((await keysmith(['token', '--profile', 'ci'], { env })).stdout).not.toBe(key.stdout);
    } finally {
      await server.stop();
    }
  });

  it('--save-profile refuses a name that is taken by another kind of profile, before any key is made', async () => {
    const { server, env } = await loggedIn();
    try {
      const other = await keysmith(['login', server.url, '--profile', 'bob', '-u', 'bob'], { env: { ...env, KEYSMITH_PASSWORD: 'secret2' } });
      expect(other.exitCode, other.stderr).toBe(0);
      const before = readFileSync(join(env.XDG_CONFIG_HOME, 'keysmith', 'profiles.json'), 'utf8');
      for (const [name, message] of [['bob', /profile bob already exists \(tiled\)/], ['tiled', /would replace the Tiled profile/], ['.hidden', /invalid profile name/]] as const) {
        const r = await keysmith(['api-key', 'create', '--profile', 'tiled', '--save-profile', name], { env });
        expect(r.exitCode).toBe(2);
        expect(r.stdout).toBe('');
        expect(oneErrorLine(r.stderr)).toMatch(message);
      }
      expect((await server.stats()).apiKeys).toBe(0);
      expect(readFileSync(join(env.XDG_CONFIG_HOME, 'keysmith', 'profiles.json'), 'utf8')).toBe(before);
    } finally {
      await server.stop();
    }
  });

  it('a role without create:apikeys: one error line naming the scope, exit 1, no key', async () => {
    const { server, env } = await loggedIn({ userScopes: ['read:metadata', 'read:data'] });
    try {
      const r = await keysmith(['api-key', 'create', '--save-profile', 'ci'], { env });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(/lacks the create:apikeys scope.*Not enough permissions/);
      expect((await server.stats()).apiKeys).toBe(0);
      expect(Object.keys(profilesFile(env).profiles)).toEqual(['tiled']);
    } finally {
      await server.stop();
    }
  });

  it('scopes beyond the user\'s: the server refuses (403) and says why', async () => {
    const { server, env } = await loggedIn();
    try {
      const r = await keysmith(['api-key', 'create', '--scopes', 'admin:apikeys'], { env });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(/403: Requested scopes \['admin:apikeys'\] must be a subset/);
    } finally {
      await server.stop();
    }
  });

  it('an expired access token is refreshed first; a dead session says to log in again', async () => {
    const { server, env } = await loggedIn({ accessTtl: 2 });
    try {
      await sleep(2_200);
      const r = await keysmith(['api-key', 'create'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(SECRET);
      expect(await server.count('refresh')).toBe(1);
    } finally {
      await server.stop();
    }
    const dead = await loggedIn({ accessTtl: 1, sessionTtl: 2 });
    try {
      await sleep(2_300);
      const r = await keysmith(['api-key', 'create'], { env: dead.env });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(/Session has expired/);
      expect(r.stderr).toMatch(/hint: log in again/);
    } finally {
      await dead.server.stop();
    }
  });

  it('the server says the token has expired while our clock says it is fresh: refresh once and retry', async () => {
    const { server, env } = await loggedIn({ accessTtl: 2 });
    try {
      // Tiled's exp is whole seconds and checked as exp < floor(now): past 3 s it has surely expired.
      await sleep(3_100);
      // Pretend our clock is behind the server's: the saved expiry is an hour away.
      const path = join(env.XDG_STATE_HOME, 'keysmith', 'sessions', 'tiled.json');
      const stored = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      writeFileSync(path, JSON.stringify({ ...stored, expiresAt: Date.now() + 3_600_000 }), { mode: 0o600 });
      await server.admin({ accessTtl: 600 });
      const r = await keysmith(['api-key', 'list'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(await server.count('refresh')).toBe(1);
      expect(await server.count('whoami')).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it('server text is escaped: a note with terminal control characters is listed as escapes', async () => {
    const { server, env } = await loggedIn();
    try {
      const r = await keysmith(['api-key', 'create', '--note', 'red \u001b[31mALERT\u001b[0m\tand\nmore'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      const list = await keysmith(['api-key', 'list'], { env });
      expect(list.stdout).toBe(`${r.stdout.slice(0, 8)}\tnever\tinherit\tred \\u001b[31mALERT\\u001b[0m\\u0009and\\u000amore`);
      expect(list.stdout).not.toContain('\u001b');
    } finally {
      await server.stop();
    }
  });
});

describe('api-key revoke', () => {
  it('revokes by the first eight characters: the key stops working, and the profile holding it is named', async () => {
    const { server, env } = await loggedIn();
    try {
      expect((await keysmith(['api-key', 'create', '--save-profile', 'ci'], { env })).exitCode).toBe(0);
      const key = (await keysmith(['token', '--profile', 'ci'], { env })).stdout;
      const other = (await keysmith(['api-key', 'create'], { env })).stdout;
      const r = await keysmith(['api-key', 'revoke', key.slice(0, 8).toUpperCase()], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`Revoked API key ${key.slice(0, 8)} on ${server.url}.`);
      expect(r.stderr).toContain('Profile ci held this key');
      expect(await metadataStatus(server, `Apikey ${key}`)).toBe(401);
      expect(await metadataStatus(server, `Apikey ${other}`)).toBe(200);
      expect((await keysmith(['api-key', 'list'], { env })).stdout.split('\n')).toEqual([expect.stringMatching(new RegExp(`^${other.slice(0, 8)}\t`))]);
      // Again: the server knows no such key.
      const unknown = await keysmith(['api-key', 'revoke', key.slice(0, 8)], { env });
      expect(unknown.exitCode).toBe(1);
      expect(oneErrorLine(unknown.stderr)).toMatch(new RegExp(`no API key ${key.slice(0, 8)} on 127\\.0\\.0\\.1:\\d+ for this user`));
    } finally {
      await server.stop();
    }
  });

  it('usage errors (exit 2): no key, a malformed key, options of create, an unknown action', async () => {
    const home = scratch.fresh();
    for (const [args, message] of [
      [['api-key', 'revoke'], /which key\?/],
      [['api-key', 'revoke', 'xyz'], /not the first eight characters/],
      [['api-key', 'list', '--note', 'x'], /--note only goes with api-key create/],
      [['api-key', 'list', 'abcdef12'], /api-key list takes no argument/],
      [['api-key', 'rotate'], /unknown action "rotate"; use api-key create, list, revoke/],
      [['api-key', 'create', '--expires-in', '1.5'], /whole number of seconds/],
    ] as const) {
      const r = await keysmith([...args], { env: { HOME: home } });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(message);
    }
  });

  it('a profile that is not Tiled: exit 2', async () => {
    const { server, env } = await loggedIn();
    try {
      expect((await keysmith(['api-key', 'create', '--save-profile', 'ci'], { env })).exitCode).toBe(0);
      for (const action of ['create', 'list']) {
        const r = await keysmith(['api-key', action, '--profile', 'ci'], { env });
        expect(r.exitCode).toBe(2);
        expect(oneErrorLine(r.stderr)).toMatch(/api-key works with Tiled profiles; profile ci is apikey/);
      }
    } finally {
      await server.stop();
    }
  });
});
