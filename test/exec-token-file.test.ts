/**
 * `keysmith exec` keeps long-running children authenticated: the token file is rewritten ahead of
 * each expiry (fixture servers issuing 2-second tokens), concurrent exec processes refresh once
 * between them, a failed refresh is reported once, and a refresh under way when the child ends is
 * saved before keysmith exits (so a rotated refresh token is never lost).
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempRoot, type TempRoot } from './helpers/exec.js';
import { assertBuilt, keysmith } from './helpers/keysmith.js';
import { startServer, stopAllServers, type ServerName, type ServerOptions } from './helpers/servers.js';

let root: TempRoot;
let reader: string;

/**
 * The child: for `durationMs`, every `intervalMs`, read $KEYSMITH_TOKEN_FILE, check the token's own
 * `exp`, and make an authenticated request to URL with it; print a summary as one JSON line.
 */
const READER = `
import { readFileSync } from 'node:fs';
const [url, durationMs, intervalMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tokens = new Set();
const bad = [];
let reads = 0;
const end = Date.now() + durationMs;
while (Date.now() < end) {
  const token = readFileSync(process.env.KEYSMITH_TOKEN_FILE, 'utf8');
  reads++;
  tokens.add(token);
  const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp;
  const res = await fetch(url, { headers: { authorization: 'Bearer ' + token } });
  await res.arrayBuffer();
  // exp is a NumericDate, in whole seconds (Tiled truncates it): expired once a later second begins.
  const second = Math.floor(Date.now() / 1000);
  if (second > exp || res.status !== 200) bad.push({ at: reads, status: res.status, exp, second });
  await sleep(intervalMs);
}
console.log(JSON.stringify({ reads, distinct: tokens.size, bad }));
`;

beforeAll(() => {
  assertBuilt();
  root = tempRoot('exec-token-file');
  reader = root.file('reader.mjs', READER);
});

afterAll(async () => {
  await stopAllServers();
  root?.remove();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function loggedIn(name: ServerName, options: ServerOptions) {
  const server = await startServer(name, options);
  const env = { HOME: root.dir('home'), TMPDIR: root.dir('tmp') };
  const args = name === 'tiled' ? ['-u', 'alice'] : ['--dialect', 'basic-login', '-u', 'alice'];
  const login = await keysmith(['login', server.url, ...args], { env: { ...env, KEYSMITH_PASSWORD: name === 'tiled' ? 'secret1' : 'password' } });
  expect(login.exitCode, login.stderr).toBe(0);
  const check = name === 'tiled' ? `${server.url}/api/v1/auth/whoami` : `${server.url}/data`;
  return { server, env, check };
}

interface Summary {
  reads: number;
  distinct: number;
  bad: unknown[];
}

describe('the token file outlives its tokens', () => {
  it('a child running through several 2-second tokens reads a valid, server-accepted token every time', async () => {
    const { server, env, check } = await loggedIn('basic-login', { accessTtl: 2 });
    const started = Date.now();
    const r = await keysmith(['exec', '--', process.execPath, reader, check, '7000', '200'], { env, timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const summary = JSON.parse(r.stdout) as Summary;
    expect(summary.bad).toEqual([]);
    expect(summary.reads).toBeGreaterThan(10);
    // Three lifetimes at least: the first token and three or more successors.
    expect(summary.distinct).toBeGreaterThanOrEqual(4);
    expect(await server.count('refresh')).toBeGreaterThanOrEqual(3);
    // keysmith ended with its child: no timer kept it alive.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(readdirSync(env.TMPDIR)).toEqual([]);
    await server.stop();
  });

  it('three exec processes on one profile refresh once between them, never replaying a refresh token', async () => {
    const { server, env, check } = await loggedIn('tiled', { accessTtl: 2, rotateRefresh: true });
    const started = Date.now();
    const runs = await Promise.all([0, 1, 2].map(() => keysmith(['exec', '--', process.execPath, reader, check, '5000', '200'], { env, timeout: 30_000 })));
    const seconds = (Date.now() - started) / 1000;
    for (const r of runs) {
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect((JSON.parse(r.stdout) as Summary).bad).toEqual([]);
    }
    // A 2 s token is refreshed once a second (half its lifetime): about one per second for all
    // three together; each on its own would make three times as many.
    const refreshes = await server.count('refresh');
    expect(refreshes).toBeGreaterThanOrEqual(3);
    expect(refreshes).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    expect(await server.count('reuseDetected')).toBe(0);
    await server.stop();
  });
});

describe('when refreshing fails', () => {
  it('says so once, then once more when the token has expired, and the child runs on', async () => {
    const { server, env } = await loggedIn('tiled', { accessTtl: 3 });
    const marker = `${root.path}/${Date.now()}-ready`;
    const child = keysmith(['exec', '--', 'sh', '-c', `echo > ${marker}; sleep 4.5; exit 4`], { env, timeout: 30_000 });
    // The server goes away: every refresh from now on fails (connection refused).
    const deadline = Date.now() + 10_000;
    while (!existsSync(marker) && Date.now() < deadline) await sleep(20);
    await server.stop();
    const r = await child;
    expect(r.exitCode).toBe(4);
    const lines = r.stderr.split('\n');
    expect(lines.filter((l) => /could not refresh/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => /has expired; keysmith keeps trying/.test(l))).toHaveLength(1);
    expect(lines.every((l) => l.startsWith('warning: '))).toBe(true);
    expect(readdirSync(env.TMPDIR)).toEqual([]);
  });

  it('a refresh under way when the child ends is finished and saved before keysmith exits', async () => {
    // Refresh starts at 1 s (half the 2 s lifetime) and takes 1.5 s; the child ends at 1.3 s.
    const { server, env } = await loggedIn('tiled', { accessTtl: 2, rotateRefresh: true, slowRefreshMs: 1_500 });
    const r = await keysmith(['exec', '--', 'sleep', '1.3'], { env, timeout: 30_000 });
    expect(r.exitCode).toBe(0);
    expect(await server.count('refresh')).toBe(1);
    await server.admin({ slowRefreshMs: 0 });
    // The rotated refresh token reached the session file: refreshing again works, nothing is replayed.
    const refresh = await keysmith(['refresh'], { env });
    expect(refresh.exitCode, refresh.stderr).toBe(0);
    expect(await server.count('reuseDetected')).toBe(0);
    await server.stop();
  });
});
