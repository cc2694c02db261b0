/**
 * `keysmith exec` end to end, through the built binary: the child's environment per dialect (token
 * dialects logged in against the fixture servers; static dialects written into the store in the
 * documented format), `--env` renaming and its errors, exit codes as shells give them, signals
 * passed on, and secrets never in any process's argv.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicCredential, bearerSession, ENV_DUMP, tempRoot, writeProfile, type StoredProfile, type StoredSession, type TempRoot } from './helpers/exec.js';
import { BIN, assertBuilt, cleanEnv, keysmith, oneErrorLine } from './helpers/keysmith.js';
import { startServer, stopAllServers } from './helpers/servers.js';

let root: TempRoot;
let envDump: string;

beforeAll(() => {
  assertBuilt();
  root = tempRoot('exec-e2e');
  envDump = root.file('env-dump.mjs', ENV_DUMP);
});

afterAll(async () => {
  await stopAllServers();
  root?.remove();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh HOME and a private TMPDIR (where token files go without $XDG_RUNTIME_DIR). */
function freshEnv(extra: Record<string, string> = {}): { HOME: string; TMPDIR: string } & Record<string, string> {
  return { HOME: root.dir('home'), TMPDIR: root.dir('tmp'), ...extra };
}

/** A home holding one profile and its session. */
function homeWith(profile: StoredProfile, session: StoredSession): { HOME: string; TMPDIR: string } {
  const env = freshEnv();
  writeProfile(env.HOME, profile, session);
  return env;
}

interface Dump {
  env: Record<string, string>;
  file: { path: string; mode: string; content: string } | null;
}

/** `keysmith exec ARGS -- node env-dump.mjs`: what the child saw. */
async function childSees(env: Record<string, string>, args: string[] = [], pattern?: string, fileVar?: string): Promise<Dump> {
  const r = await keysmith(['exec', ...args, '--', process.execPath, envDump, ...(pattern ? [pattern] : []), ...(fileVar ? [fileVar] : [])], { env });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout) as Dump;
}

const STATIC_URL = 'http://127.0.0.1:9/app';

describe('the environment per dialect', () => {
  it('tiled (logged in): the token, its header line and a 0600 token file that is gone afterwards', async () => {
    const server = await startServer('tiled');
    const env = freshEnv({ KEYSMITH_PASSWORD: 'secret1' });
    const login = await keysmith(['login', server.url, '-u', 'alice'], { env });
    expect(login.exitCode, login.stderr).toBe(0);
    const token = (await keysmith(['token'], { env })).stdout;
    const profile = new URL(server.url).host;

    const seen = await childSees(env);
    expect(seen.env).toEqual({
      KEYSMITH_AUTH_HEADER: `Authorization: Bearer ${token}`,
      KEYSMITH_PASSWORD: 'secret1', // the caller's own variable, passed through untouched
      KEYSMITH_PROFILE: profile,
      KEYSMITH_TOKEN: token,
      KEYSMITH_TOKEN_FILE: seen.file!.path,
      KEYSMITH_URL: server.url,
    });
    // Kubernetes' projected tokens: the bare token, no newline.
    expect(seen.file).toMatchObject({ mode: '600', content: token });
    expect(seen.file!.path.startsWith(env.TMPDIR + '/')).toBe(true);
    // The file and its private directory are gone once the child has ended.
    expect(existsSync(seen.file!.path)).toBe(false);
    expect(readdirSync(env.TMPDIR)).toEqual([]);
    await server.stop();
  });

  it("wavemaker (logged in): the header line carries the server's own header name", async () => {
    const server = await startServer('wavemaker', { variant: 'runtime' });
    const env = freshEnv({ KEYSMITH_PASSWORD: 'admin' });
    const login = await keysmith(['login', `${server.url}/Demo`, '-u', 'admin'], { env });
    expect(login.exitCode, login.stderr).toBe(0);
    const token = (await keysmith(['token'], { env })).stdout;
    const seen = await childSees(env);
    expect(seen.env.KEYSMITH_TOKEN).toBe(token);
    expect(seen.env.KEYSMITH_AUTH_HEADER).toBe(`WM_AUTH_TOKEN: ${token}`);
    expect(seen.file!.content).toBe(token);
    await server.stop();
  });

  it.each(['basic-login', 'oauth2'])('%s: KEYSMITH_TOKEN, KEYSMITH_AUTH_HEADER, KEYSMITH_TOKEN_FILE', async (dialect) => {
    const env = homeWith({ name: 'work', url: STATIC_URL, dialect }, bearerSession('tok-' + dialect));
    const seen = await childSees(env);
    expect(seen.env).toEqual({
      KEYSMITH_AUTH_HEADER: `Authorization: Bearer tok-${dialect}`,
      KEYSMITH_PROFILE: 'work',
      KEYSMITH_TOKEN: `tok-${dialect}`,
      KEYSMITH_TOKEN_FILE: seen.file!.path,
      KEYSMITH_URL: STATIC_URL,
    });
    expect(seen.file!.content).toBe(`tok-${dialect}`);
  });

  const apikey = (apiKey?: StoredProfile['apiKey']) => homeWith({ name: 'keys', url: STATIC_URL, dialect: 'apikey', ...(apiKey && { apiKey }) }, { accessToken: 'k3y-0123456789', tokenType: 'apikey', obtainedAt: Date.now() });

  it('apikey in a header: the key and "Authorization: Apikey KEY"; no token file unless asked', async () => {
    const seen = await childSees(apikey());
    expect(seen.env).toEqual({ KEYSMITH_AUTH_HEADER: 'Authorization: Apikey k3y-0123456789', KEYSMITH_PROFILE: 'keys', KEYSMITH_TOKEN: 'k3y-0123456789', KEYSMITH_URL: STATIC_URL });
    expect(seen.file).toBeNull();
  });

  it('apikey with its own header and scheme (Flask-HTTPAuth HTTPTokenAuth, X-API-Key)', async () => {
    expect((await childSees(apikey({ in: 'header', name: 'Authorization', scheme: 'Bearer' }))).env.KEYSMITH_AUTH_HEADER).toBe('Authorization: Bearer k3y-0123456789');
    expect((await childSees(apikey({ in: 'header', name: 'X-API-Key' }))).env.KEYSMITH_AUTH_HEADER).toBe('X-API-Key: k3y-0123456789');
  });

  it('apikey as a query parameter: the key and the parameter name, no header', async () => {
    const seen = await childSees(apikey({ in: 'query', name: 'api_key' }));
    expect(seen.env).toEqual({ KEYSMITH_API_KEY_PARAM: 'api_key', KEYSMITH_PROFILE: 'keys', KEYSMITH_TOKEN: 'k3y-0123456789', KEYSMITH_URL: STATIC_URL });
  });

  it('apikey --env KEY_FILE=token_file: a 0600 file with the bare key, removed afterwards', async () => {
    const env = apikey();
    const seen = await childSees(env, ['--env', 'KEY_FILE=token_file'], '^(KEYSMITH_|KEY_FILE)', 'KEY_FILE');
    expect(seen.env.KEY_FILE).toBe(seen.file!.path);
    expect(seen.env.KEYSMITH_TOKEN_FILE).toBeUndefined();
    expect(seen.file).toMatchObject({ mode: '600', content: 'k3y-0123456789' });
    expect(readdirSync(env.TMPDIR)).toEqual([]);
  });

  it.each(['basic', 'digest'])('%s: KEYSMITH_USERNAME and KEYSMITH_PASSWORD, exactly as stored', async (dialect) => {
    const password = 'pä:ss wörd"$`\\';
    const env = homeWith({ name: 'site', url: STATIC_URL, dialect, username: 'ada' }, { accessToken: basicCredential('ada', password), tokenType: dialect, obtainedAt: Date.now() });
    const seen = await childSees(env);
    expect(seen.env).toEqual({ KEYSMITH_PASSWORD: password, KEYSMITH_PROFILE: 'site', KEYSMITH_URL: STATIC_URL, KEYSMITH_USERNAME: 'ada' });
    expect(seen.file).toBeNull();
  });

  const WAVE_ID = 'ABCDEFGHIJ0123456789';
  const WAVE_SECRET = 'abcdefghijABCDEFGHIJ0123456789klmnopqrst';
  const wave = () => homeWith({ name: 'wave', url: 'http://127.0.0.1:10101', dialect: 'wave', username: WAVE_ID }, { accessToken: basicCredential(WAVE_ID, WAVE_SECRET), tokenType: 'wave', obtainedAt: Date.now() });

  it('wave: H2O_WAVE_ACCESS_KEY_ID and H2O_WAVE_ACCESS_KEY_SECRET, the names Wave apps read', async () => {
    const seen = await childSees(wave());
    expect(seen.env).toEqual({
      H2O_WAVE_ACCESS_KEY_ID: WAVE_ID,
      H2O_WAVE_ACCESS_KEY_SECRET: WAVE_SECRET,
      KEYSMITH_PROFILE: 'wave',
      KEYSMITH_URL: 'http://127.0.0.1:10101',
    });
  });

  it('--env renames a default variable and adds fields the defaults leave out', async () => {
    const seen = await childSees(wave(), ['--env', 'WAVE_ID=id', '--env', 'AUTH=header', '--env', 'SERVER=url'], '^(KEYSMITH_|H2O_WAVE_|WAVE_ID|AUTH|SERVER)');
    expect(seen.env).toEqual({
      AUTH: `Authorization: Basic ${basicCredential(WAVE_ID, WAVE_SECRET)}`,
      H2O_WAVE_ACCESS_KEY_SECRET: WAVE_SECRET,
      KEYSMITH_PROFILE: 'wave',
      SERVER: 'http://127.0.0.1:10101',
      WAVE_ID,
    });
  });
});

describe('bad --env and missing sessions: one error line, and the command never runs', () => {
  const tiledHome = () => homeWith({ name: 'work', url: STATIC_URL, dialect: 'tiled' }, bearerSession('tok'));
  const digestHome = () => homeWith({ name: 'dig', url: STATIC_URL, dialect: 'digest' }, { accessToken: basicCredential('u', 'p'), tokenType: 'digest', obtainedAt: Date.now() });

  it.each([
    ['a name that is no shell variable', tiledHome, ['--env', '1X=token'], /--env "1X=token": expected NAME=FIELD with NAME a shell variable name/],
    ['a name with a dash', tiledHome, ['--env', 'MY-TOKEN=token'], /shell variable name/],
    ['no field', tiledHome, ['--env', 'TOKEN'], /--env TOKEN: expected NAME=FIELD; profile work \(tiled\) has the fields token, header, token_file, url, profile$/],
    ['a field the dialect does not have', tiledHome, ['--env', 'S=secret'], /--env S=secret: no such field; profile work \(tiled\) has the fields token, header, token_file, url, profile$/],
    ['a header for Digest', digestHome, ['--env', 'H=header'], /--env H=header: no such field; profile dig \(digest\) has the fields username, password, url, profile$/],
    ['the same name twice', tiledHome, ['--env', 'T=token', '--env', 'T=header'], /--env T is given twice/],
  ])('%s: exit 2', async (_what, home, args, message) => {
    const env = home();
    const marker = join(env.TMPDIR, 'ran');
    const r = await keysmith(['exec', ...args, '--', 'touch', marker], { env });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toMatch(message);
    expect(existsSync(marker)).toBe(false);
  });

  it('not logged in: exit 1 with the hint to log in', async () => {
    const env = freshEnv();
    const marker = join(env.TMPDIR, 'ran');
    const r = await keysmith(['exec', '--', 'touch', marker], { env });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/not logged in/);
    expect(r.stderr).toContain('keysmith login');
    expect(existsSync(marker)).toBe(false);
  });

  it('no command: a usage error', async () => {
    const r = await keysmith(['exec'], { env: freshEnv() });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/missing required argument 'command'/);
  });
});

describe('token files in $XDG_RUNTIME_DIR', () => {
  it('go in $XDG_RUNTIME_DIR/keysmith (0700), are 0600, and are removed; files of dead keysmiths are swept', async () => {
    const runtime = root.dir('run');
    const env = homeWith({ name: 'work', url: STATIC_URL, dialect: 'tiled' }, bearerSession('tok-xdg'));
    const dir = join(runtime, 'keysmith');
    mkdirSync(dir, { mode: 0o755 });
    // Left by a keysmith that was SIGKILLed (PID 2^22+1 is above Linux's pid_max ceiling, so never alive).
    const stale = join(dir, `work.${2 ** 22 + 1}.abc123.token`);
    writeFileSync(stale, 'old-token', { mode: 0o600 });
    const seen = await childSees({ ...env, XDG_RUNTIME_DIR: runtime });
    expect(seen.file!.path.startsWith(dir + '/')).toBe(true);
    expect(seen.file).toMatchObject({ mode: '600', content: 'tok-xdg' });
    expect(statSync(dir).mode & 0o777).toBe(0o700); // made private again
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('exit codes, as shells give them', () => {
  const env = () => homeWith({ name: 'work', url: STATIC_URL, dialect: 'tiled' }, bearerSession('tok'));

  it("passes the child's output through untouched and exits 0", async () => {
    const r = await keysmith(['exec', '--', 'printf', 'a\\nb\\0c'], { env: env(), keepFinalNewline: true });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('a\nb\0c');
    expect(r.stderr).toBe('');
  });

  it("exits with the child's code, silently", async () => {
    const r = await keysmith(['exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], { env: env() });
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe('out');
    expect(r.stderr).toBe('err');
  });

  it.each([
    ['SIGKILL', 137],
    ['SIGTERM', 143],
  ])('128+N when the child is killed by %s', async (signal, code) => {
    const r = await keysmith(['exec', '--', 'sh', '-c', `kill -${signal.slice(3)} $$`], { env: env() });
    expect(r.exitCode).toBe(code);
    expect(r.stderr).toBe('');
  });

  it('127 when the command is not found', async () => {
    const r = await keysmith(['exec', '--', 'keysmith-no-such-command'], { env: env() });
    expect(r.exitCode).toBe(127);
    expect(oneErrorLine(r.stderr)).toBe('error: keysmith-no-such-command: command not found');
    const path = await keysmith(['exec', '--', './no/such/program'], { env: env() });
    expect(path.exitCode).toBe(127);
    expect(oneErrorLine(path.stderr)).toBe('error: ./no/such/program: no such file');
  });

  it('126 when it cannot be run (not executable, a directory)', async () => {
    const file = root.file('not-executable.sh', '#!/bin/sh\necho hi\n', 0o644);
    const r = await keysmith(['exec', '--', file], { env: env() });
    expect(r.exitCode).toBe(126);
    expect(oneErrorLine(r.stderr)).toMatch(/not-executable\.sh: permission denied/);
    const dir = await keysmith(['exec', '--', root.path], { env: env() });
    expect(dir.exitCode).toBe(126);
    oneErrorLine(dir.stderr);
  });

  it('leaves no token file behind whichever way the child ends', async () => {
    const e = env();
    await keysmith(['exec', '--', 'sh', '-c', 'kill -9 $$'], { env: e });
    await keysmith(['exec', '--', 'keysmith-no-such-command'], { env: e });
    expect(readdirSync(e.TMPDIR)).toEqual([]);
  });
});

/**
 * Start `keysmith exec -- sh -c SCRIPT` in its own session (detached: no terminal, so no Ctrl-C
 * from one can reach it), wait until the child has written `ready`, and hand over keysmith's PID.
 */
async function withRunningChild(env: Record<string, string>, script: string, body: (pid: number, dir: string) => Promise<void>) {
  const dir = root.dir('signal');
  const child = execa(process.execPath, [BIN, 'exec', '--', 'sh', '-c', script, 'sh', dir], {
    env: cleanEnv(env),
    extendEnv: false,
    reject: false,
    detached: true,
    stdin: 'ignore',
    timeout: 20_000,
  });
  let ended = false;
  void child.finally(() => (ended = true));
  try {
    const deadline = Date.now() + 10_000;
    while (!existsSync(join(dir, 'ready'))) {
      if (ended) throw new Error(`keysmith ended before its child was ready: ${(await child).stderr}`);
      if (Date.now() > deadline) throw new Error('the child never became ready');
      await sleep(20);
    }
    await body(child.pid!, dir);
    return await child;
  } finally {
    // Whatever happened, nothing of this test keeps running: keysmith and its child, by process group.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

describe('signals', () => {
  const env = () => homeWith({ name: 'work', url: STATIC_URL, dialect: 'tiled' }, bearerSession('tok'));
  // The trap runs between two short sleeps; `ready` is written once it is set.
  const trapping = (signal: string, code: number) =>
    `trap 'echo ${signal} > "$1/marker"; exit ${code}' ${signal}; echo > "$1/ready"; while :; do sleep 0.05; done`;

  it('SIGTERM is passed on: a child that traps it writes its marker and exits 7, and so does keysmith', async () => {
    const e = env();
    let markerDir = '';
    const r = await withRunningChild(e, trapping('TERM', 7), async (pid, dir) => {
      markerDir = dir;
      process.kill(pid, 'SIGTERM');
    });
    expect(r.exitCode).toBe(7);
    expect(readFileSync(join(markerDir, 'marker'), 'utf8')).toBe('TERM\n');
    expect(r.stderr).toBe('');
    expect(readdirSync(e.TMPDIR)).toEqual([]);
  });

  it('SIGINT sent to keysmith (not from a terminal) is passed on', async () => {
    const r = await withRunningChild(env(), trapping('INT', 9), async (pid) => {
      process.kill(pid, 'SIGINT');
    });
    expect(r.exitCode).toBe(9);
  });

  it('SIGHUP is passed on; a child it kills makes keysmith exit 129', async () => {
    const e = env();
    const r = await withRunningChild(e, 'echo > "$1/ready"; exec sleep 30', async (pid) => {
      process.kill(pid, 'SIGHUP');
    });
    expect(r.exitCode).toBe(129);
    expect(r.stderr).toBe('');
    expect(readdirSync(e.TMPDIR)).toEqual([]);
  });
});

describe('secrets never in argv', () => {
  it("neither keysmith's nor the child's command line holds the token or the password", async () => {
    const show = 'for p in $$ $PPID; do tr "\\0" " " < /proc/$p/cmdline; echo; done';
    const tiled = homeWith({ name: 'work', url: STATIC_URL, dialect: 'tiled' }, bearerSession('tok-SECRET-0123456789'));
    const r1 = await keysmith(['exec', '--', 'sh', '-c', show], { env: tiled });
    expect(r1.exitCode).toBe(0);
    expect(r1.stdout.split('\n')).toHaveLength(2);
    expect(r1.stdout).toContain('exec -- sh -c');
    expect(r1.stdout).not.toContain('SECRET');
    const password = 'pw-SECRET-0123456789';
    const basic = homeWith({ name: 'site', url: STATIC_URL, dialect: 'basic', username: 'ada' }, { accessToken: basicCredential('ada', password), tokenType: 'basic', obtainedAt: Date.now() });
    const r2 = await keysmith(['exec', '--', 'sh', '-c', show], { env: basic });
    expect(r2.exitCode).toBe(0);
    expect(r2.stdout).not.toContain('SECRET');
    expect(r2.stdout).not.toContain(basicCredential('ada', password));
  });
});
