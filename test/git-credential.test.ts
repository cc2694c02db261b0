/**
 * `keysmith git-credential` through real git (Debian `git`): `git credential fill` with keysmith
 * configured as the helper for a Tiled test server's URL, in a temporary global git config (no
 * system config, no terminal prompts), and `git ls-remote` against a local smart-HTTP server
 * (`git http-backend` behind a small CGI shim) that accepts a request only when the password is a
 * token the Tiled server vouches for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { useScratch } from './helpers/keychain-cli.js';
import { BIN, cleanEnv, keysmith, oneErrorLine } from './helpers/keysmith.js';
import { startServer, stopAllServers, type TestServer } from './helpers/servers.js';

afterAll(stopAllServers);

const CI = process.env.CI === 'true' || process.env.CI === '1';
const GIT = '/usr/bin/git';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const scratch = useScratch('keysmith-git-');

function gitMissing(): string | undefined {
  try {
    accessSync(GIT, constants.X_OK);
    return undefined;
  } catch {
    return `${GIT} not found (Debian: git)`;
  }
}

/** The helper line as a user writes it, with absolute paths (quoted for the shell git runs it with). */
const HELPER = `!'${process.execPath}' '${BIN}' git-credential`;

interface GitHome {
  home: string;
  config: string;
  /** Environment for git (and through it, for keysmith). */
  env: Record<string, string | undefined>;
}

/** A fresh HOME with its own global git config, and neither system config nor terminal prompts. */
function gitHome(): GitHome {
  const home = scratch.fresh();
  const config = join(home, 'gitconfig');
  writeFileSync(config, '');
  return { home, config, env: { HOME: home, GIT_CONFIG_GLOBAL: config, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' } };
}

async function git(home: GitHome, args: string[], input?: string) {
  return execa(GIT, args, {
    env: cleanEnv(home.env),
    extendEnv: false,
    reject: false,
    timeout: 30_000,
    cwd: home.home,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
}

async function gitConfig(home: GitHome, key: string, value: string) {
  const r = await git(home, ['config', '--file', home.config, '--add', key, value]);
  expect(r.exitCode, r.stderr).toBe(0);
}

/** `git credential fill` for a URL: the answer as a map of its key=value lines. */
async function fill(home: GitHome, url: string) {
  const r = await git(home, ['credential', 'fill'], `url=${url}\n\n`);
  const fields = Object.fromEntries(
    r.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  return { ...r, fields };
}

/** Log in to a Tiled test server as alice, in a fresh git home. */
async function tiledLogin(server: TestServer): Promise<GitHome> {
  const home = gitHome();
  const login = await keysmith(['login', server.url, '-u', 'alice'], { env: { HOME: home.home, KEYSMITH_PASSWORD: 'secret1' } });
  expect(login.exitCode, login.stderr).toBe(0);
  return home;
}

/** Profiles with static credentials (no server needed): name -> [url, user, password]. */
function writeBasicProfiles(home: string, profiles: Record<string, [string, string, string]>, defaultName?: string): void {
  const config = join(home, '.config', 'keysmith');
  const sessions = join(home, '.local', 'state', 'keysmith', 'sessions');
  mkdirSync(config, { recursive: true, mode: 0o700 });
  mkdirSync(sessions, { recursive: true, mode: 0o700 });
  const file: { default?: string; profiles: Record<string, unknown> } = { profiles: {} };
  if (defaultName) file.default = defaultName;
  for (const [name, [url, username, password]] of Object.entries(profiles)) {
    file.profiles[name] = { name, url, dialect: 'basic', username };
    const session = { accessToken: Buffer.from(`${username}:${password}`).toString('base64'), tokenType: 'basic', obtainedAt: Date.now() };
    writeFileSync(join(sessions, `${encodeURIComponent(name)}.json`), JSON.stringify(session), { mode: 0o600 });
  }
  writeFileSync(join(config, 'profiles.json'), JSON.stringify(file), { mode: 0o600 });
}

async function token(home: GitHome): Promise<string> {
  const r = await keysmith(['token'], { env: { HOME: home.home } });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
}

/**
 * One host that serves both Tiled and git, as a site would: `/api/...` is passed on to the Tiled
 * test server (Host kept, so its links name this host), everything else is smart-HTTP git through
 * `git http-backend` (CGI) for the bare repositories under `root`. Git requests need HTTP Basic
 * whose password is a token the Tiled server vouches for; otherwise 401 with a Basic challenge,
 * which is what makes git ask its credential helpers.
 */
async function startTiledGitHost(root: string, tiled: TestServer) {
  const children = new Set<ChildProcess>();
  const seen: Array<{ user: string; ok: boolean }> = [];
  const tiledUrl = new URL(tiled.url);
  const proxy = (req: IncomingMessage, res: ServerResponse) =>
    new Promise<void>((resolve) => {
      const upstream = httpRequest({ host: tiledUrl.hostname, port: tiledUrl.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.once('end', () => resolve());
      });
      upstream.once('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
        resolve();
      });
      req.pipe(upstream);
    });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname.startsWith('/api/')) return proxy(req, res);
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '');
    const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? '' : decoded.slice(0, colon);
    const ok = colon >= 0 && (await tiledAccepts(tiled, decoded.slice(colon + 1)));
    if (basic) seen.push({ user, ok });
    if (!ok) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="keysmith test"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    const header = (name: string) => {
      const v = req.headers[name];
      return typeof v === 'string' ? v : undefined;
    };
    const child = spawn(GIT, ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.replace(/^\?/, ''),
        REMOTE_USER: user,
        REMOTE_ADDR: '127.0.0.1',
        ...(header('content-type') && { CONTENT_TYPE: header('content-type') }),
        ...(header('content-length') && { CONTENT_LENGTH: header('content-length') }),
        ...(header('content-encoding') && { HTTP_CONTENT_ENCODING: header('content-encoding') }),
        ...(header('git-protocol') && { GIT_PROTOCOL: header('git-protocol') }),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    req.pipe(child.stdin!);
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve) => child.once('close', () => resolve()));
    const output = Buffer.concat(chunks);
    const end = output.indexOf('\r\n\r\n');
    if (end < 0) {
      res.writeHead(502).end();
      return;
    }
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of output.subarray(0, end).toString('latin1').split('\r\n')) {
      const i = line.indexOf(':');
      const name = line.slice(0, i).trim();
      const value = line.slice(i + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.end(output.subarray(end + 4));
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: async () => {
      for (const child of children) child.kill('SIGKILL');
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Does the Tiled server accept this bearer token (GET /api/v1/auth/whoami)? */
async function tiledAccepts(server: TestServer, tokenValue: string): Promise<boolean> {
  const res = await fetch(`${server.url}/api/v1/auth/whoami`, { headers: { authorization: `Bearer ${tokenValue}` }, signal: AbortSignal.timeout(5_000) });
  return res.ok && (await res.json()) !== null;
}

const missing = gitMissing();
const describeGit = missing && !CI ? describe.skip : describe;

describeGit(`git credential helper through real git${missing ? ` (skipped: ${missing})` : ''}`, () => {
  if (missing) {
    it('needs git', () => expect.fail(`${missing}; .ci/run installs it`));
    return;
  }

  it('git credential fill gets the profile user and its current token', async () => {
    const server = await startServer('tiled');
    try {
      const home = await tiledLogin(server);
      await gitConfig(home, `credential.${server.url}.helper`, HELPER);
      const r = await fill(home, `${server.url}/repo.git`);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.fields).toMatchObject({ protocol: 'http', host: new URL(server.url).host, username: 'alice', password: await token(home) });
      expect(await tiledAccepts(server, r.fields.password!)).toBe(true);
      expect(await server.count('refresh')).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('an expired token is refreshed on get, once, and git gets the fresh one', async () => {
    const server = await startServer('tiled', { accessTtl: 2 });
    try {
      const home = await tiledLogin(server);
      const before = await token(home);
      await gitConfig(home, `credential.${server.url}.helper`, HELPER);
      await sleep(2_200);
      await server.admin({ accessTtl: 600 });
      const r = await fill(home, server.url);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.fields.password).not.toBe(before);
      expect(await server.count('refresh')).toBe(1);
      expect(r.fields.password).toBe(await token(home));
      expect(await tiledAccepts(server, r.fields.password!)).toBe(true);
      // The refresh token never reaches git.
      expect(r.stdout).not.toMatch(/refresh/i);
    } finally {
      await server.stop();
    }
  });

  it('no matching profile: no answer, so git asks the next helper, or fails without one', async () => {
    const server = await startServer('tiled');
    try {
      const home = await tiledLogin(server);
      // keysmith for every URL, then a helper that answers anything.
      await gitConfig(home, 'credential.helper', HELPER);
      await gitConfig(home, 'credential.helper', '!f() { test "$1" = get && printf "username=next\\npassword=next-helper\\n"; }; f');
      const other = new URL(server.url);
      other.port = String(Number(other.port) === 65535 ? 65534 : Number(other.port) + 1);
      const r = await fill(home, `${other.origin}/repo.git`);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.fields).toMatchObject({ username: 'next', password: 'next-helper' });
      expect(r.stderr).toBe('');
      // https on the same host and port is another origin: no token over it either.
      const https = await fill(home, server.url.replace('http:', 'https:'));
      expect(https.fields.password).toBe('next-helper');
      // The matching URL still gets keysmith's answer first.
      expect((await fill(home, server.url)).fields.username).toBe('alice');

      const alone = gitHome();
      Object.assign(alone.env, { HOME: home.home });
      await gitConfig(alone, 'credential.helper', HELPER);
      const none = await fill(alone, `${other.origin}/repo.git`);
      expect(none.exitCode).not.toBe(0);
      expect(none.stdout).toBe('');
      expect(none.stderr).toMatch(/terminal prompts disabled|could not read Username/i);
    } finally {
      await server.stop();
    }
  });

  it('matches protocol, host, port and (with credential.useHttpPath) the longest profile path', async () => {
    const home = gitHome();
    const base = 'http://127.0.0.1:9';
    writeBasicProfiles(home.home, {
      root: [base, 'rooty', 'root-pw'],
      data: [`${base}/data`, 'datay', 'data-pw'],
      deep: [`${base}/data/deep/`, 'deepy', 'deep-pw'],
      elsewhere: ['http://127.0.0.2:9', 'other', 'other-pw'],
    });
    await gitConfig(home, 'credential.helper', HELPER);
    // Without useHttpPath git sends no path: the profile for the whole host answers.
    expect((await fill(home, `${base}/data/repo.git`)).fields.password).toBe('root-pw');
    await gitConfig(home, 'credential.useHttpPath', 'true');
    expect((await fill(home, `${base}/data/repo.git`)).fields).toMatchObject({ username: 'datay', password: 'data-pw' });
    expect((await fill(home, `${base}/data/deep/x/repo.git`)).fields.password).toBe('deep-pw');
    expect((await fill(home, `${base}/database/repo.git`)).fields.password).toBe('root-pw');
    expect((await fill(home, `${base}/repo.git`)).fields.password).toBe('root-pw');
    expect((await fill(home, 'http://127.0.0.2:9/repo.git')).fields.password).toBe('other-pw');
    // A user name in the URL rules out other users' profiles.
    expect((await fill(home, 'http://datay@127.0.0.1:9/data/repo.git')).fields.password).toBe('data-pw');
    const wrongUser = await fill(home, 'http://nobody@127.0.0.1:9/data/repo.git');
    expect(wrongUser.exitCode).not.toBe(0);
    expect(wrongUser.stdout).toBe('');
  });

  it('--profile forces one profile, but never for another host', async () => {
    const home = gitHome();
    writeBasicProfiles(home.home, { a: ['http://127.0.0.1:9/a', 'ay', 'a-pw'], b: ['http://127.0.0.1:9/b', 'by', 'b-pw'] }, 'a');
    await gitConfig(home, 'credential.helper', `${HELPER} --profile b`);
    expect((await fill(home, 'http://127.0.0.1:9/a/repo.git')).fields.password).toBe('b-pw');
    const other = await fill(home, 'http://127.0.0.1:10/b/repo.git');
    expect(other.exitCode).not.toBe(0);
    expect(other.stdout).toBe('');
  });

  it('several profiles for one host and no way to choose: the default one, else none and a warning', async () => {
    const home = gitHome();
    writeBasicProfiles(home.home, { a: ['http://127.0.0.1:9', 'ay', 'a-pw'], b: ['http://127.0.0.1:9', 'by', 'b-pw'] }, 'b');
    await gitConfig(home, 'credential.helper', HELPER);
    expect((await fill(home, 'http://127.0.0.1:9/repo.git')).fields.password).toBe('b-pw');
    writeBasicProfiles(home.home, { a: ['http://127.0.0.1:9', 'ay', 'a-pw'], b: ['http://127.0.0.1:9', 'by', 'b-pw'], c: ['http://127.0.0.2:9', 'cy', 'c-pw'] }, 'c');
    const r = await fill(home, 'http://127.0.0.1:9/repo.git');
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/warning: git-credential: profiles a, b all match http:\/\/127\.0\.0\.1:9/);
  });

  it('store and erase (git credential approve and reject) are accepted and change nothing', async () => {
    const server = await startServer('tiled');
    try {
      const home = await tiledLogin(server);
      const before = await token(home);
      await gitConfig(home, `credential.${server.url}.helper`, HELPER);
      const input = `url=${server.url}\nusername=alice\npassword=${before}\n\n`;
      for (const action of ['approve', 'reject']) {
        const r = await git(home, ['credential', action], input);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe('');
      }
      expect(await token(home)).toBe(before);
      expect(await server.count('revoke')).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it("the README's reset line keeps tokens out of credential-store's plain-text file", async () => {
    const server = await startServer('tiled');
    try {
      const home = await tiledLogin(server);
      const stored = join(home.home, '.git-credentials');
      await gitConfig(home, 'credential.helper', 'store');
      await gitConfig(home, `credential.${server.url}.helper`, HELPER);
      // What git does around a request that succeeded: fill, then approve (store to every helper).
      const approve = async () => {
        const filled = await fill(home, server.url);
        expect(filled.fields.username).toBe('alice');
        const r = await git(home, ['credential', 'approve'], `${filled.stdout}\n\n`);
        expect(r.exitCode, r.stderr).toBe(0);
      };
      await approve();
      expect(readFileSync(stored, 'utf8')).toContain(await token(home));
      rmSync(stored);
      writeFileSync(home.config, '');
      await gitConfig(home, 'credential.helper', 'store');
      await gitConfig(home, `credential.${server.url}.helper`, '');
      await gitConfig(home, `credential.${server.url}.helper`, HELPER);
      await approve();
      expect(existsSync(stored)).toBe(false);
    } finally {
      await server.stop();
    }
  });

  it('git ls-remote against a smart-HTTP server that checks the token', async () => {
    const tiled = await startServer('tiled');
    const site = { close: async () => {} } as { close: () => Promise<void> };
    try {
      const home = gitHome();
      const root = scratch.fresh();
      const work = join(root, 'work');
      const ident = ['-c', 'user.name=Keysmith Test', '-c', 'user.email=test@keysmith.invalid', '-c', 'init.defaultBranch=main'];
      for (const args of [['init', '-q', work], ['-C', work, 'commit', '-q', '--allow-empty', '-m', 'first'], ['clone', '-q', '--bare', work, join(root, 'repo.git')]]) {
        const r = await git(home, [...ident, ...args]);
        expect(r.exitCode, r.stderr).toBe(0);
      }
      const head = (await git(home, ['-C', work, 'rev-parse', 'HEAD'])).stdout.trim();
      const host = await startTiledGitHost(root, tiled);
      site.close = host.close;
      const login = await keysmith(['login', host.url, '-u', 'alice'], { env: { HOME: home.home, KEYSMITH_PASSWORD: 'secret1' } });
      expect(login.exitCode, login.stderr).toBe(0);
      // Without the helper git has nothing to answer the 401 with.
      const denied = await git(home, ['ls-remote', `${host.url}/repo.git`]);
      expect(denied.exitCode).not.toBe(0);
      expect(host.seen).toEqual([]);
      await gitConfig(home, `credential.${host.url}.helper`, HELPER);
      const r = await git(home, ['ls-remote', `${host.url}/repo.git`]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain(`${head}\tHEAD`);
      expect(r.stdout).toContain(`${head}\trefs/heads/main`);
      expect(host.seen.length).toBeGreaterThan(0);
      expect(host.seen.every((s) => s.ok && s.user === 'alice')).toBe(true);
    } finally {
      await site.close();
      await tiled.stop();
    }
  });
});

describe('git-credential on its own', () => {
  const run = (action: string, input: string, env: Record<string, string> = {}) => keysmith(['git-credential', action], { input, env: { HOME: scratch.fresh(), ...env } });

  it('malformed input: one error line, exit 2, nothing on stdout', async () => {
    for (const input of ['protocol=http\nhost\n\n', 'protocol=http\n=x\n\n', 'protocol=http\0\nhost=a\n\n', `protocol=http\nhost=${'a'.repeat(70_000)}\n\n`]) {
      const r = await run('get', input);
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(/git-credential: /);
    }
  });

  it('store, erase and unknown actions read their input and say nothing', async () => {
    for (const action of ['store', 'erase', 'capability']) {
      const r = await run(action, 'protocol=https\nhost=example.com\nusername=u\npassword=p\n\n');
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('');
    }
  });

  it('a host that smuggles a user or path matches nothing', async () => {
    const home = scratch.fresh();
    writeBasicProfiles(home, { a: ['http://127.0.0.1:9', 'ay', 'a-pw'] });
    for (const host of ['evil.example@127.0.0.1:9', '127.0.0.1:9/x', 'evil.example#@127.0.0.1:9', '127.0.0.1:9 ']) {
      const r = await keysmith(['git-credential', 'get'], { input: `protocol=http\nhost=${host}\n\n`, env: { HOME: home } });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
    }
    const ok = await keysmith(['git-credential', 'get'], { input: 'protocol=http\r\nhost=127.0.0.1:9\r\n\r\n', env: { HOME: home } });
    expect(ok.stdout).toBe('username=ay\npassword=a-pw');
  });

  it('a matching profile that is not logged in: one error line on stderr, nothing on stdout', async () => {
    const home = scratch.fresh();
    writeBasicProfiles(home, { a: ['http://127.0.0.1:9', 'ay', 'a-pw'] });
    rmSync(join(home, '.local', 'state', 'keysmith', 'sessions', 'a.json'));
    const r = await keysmith(['git-credential', 'get'], { input: 'protocol=http\nhost=127.0.0.1:9\n\n', env: { HOME: home } });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toMatch(/not logged in/);
  });
});
