/**
 * Interoperability with real peers: keysmith's hashes verify with `htpasswd -vb`, Python passlib's
 * HtpasswdFile and nginx auth_basic; keysmith verifies hashes made by `htpasswd -B/-m/-s` and by
 * Python bcrypt. A missing peer skips its tests with the reason in the test name, except under CI
 * (`$CI` set), where .ci/run installs the peers and a missing one is a failure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysmith, useScratch } from './helpers/keychain-cli.js';

const CI = Boolean(process.env.CI);
/** Debian's python3 carries python3-passlib and python3-bcrypt; a pyenv python3 on PATH may not. */
const PYTHON = '/usr/bin/python3';

/** The executable `command` on $PATH, else the first of `extra` that exists. */
function which(command: string, extra: string[] = []): string | undefined {
  const candidates = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command)), ...extra];
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const htpasswd = which('htpasswd');
const nginx = which('nginx', ['/usr/sbin/nginx']);
const pythonHas = (module: string) => existsSync(PYTHON) && spawnSync(PYTHON, ['-c', `import ${module}`]).status === 0;
const passlib = pythonHas('passlib.apache');
const pyBcrypt = pythonHas('bcrypt');

const peers = {
  htpasswd: htpasswd ? undefined : 'htpasswd not found (Debian: apache2-utils)',
  passlib: passlib ? undefined : `${PYTHON} cannot import passlib (Debian: python3-passlib)`,
  nginx: nginx ? undefined : 'nginx not found (Debian: nginx-light)',
  pyBcrypt: pyBcrypt ? undefined : `${PYTHON} cannot import bcrypt (Debian: python3-bcrypt)`,
};

/** describe() when the peer is there; otherwise a visible skip, or under CI a failing test. */
function withPeer(peer: keyof typeof peers, name: string, body: () => void): void {
  const missing = peers[peer];
  if (!missing) {
    describe(name, body);
    return;
  }
  describe(name, () => {
    if (CI) it(`needs ${peer}`, () => expect.fail(`${missing}; .ci/run installs it`));
    else {
      it.skip(`skipped: ${missing}`, () => {});
    }
  });
}

const scratch = useScratch('keysmith-interop-');
/** Keys made by keysmith: one at the default cost 10 and several at cost 4, plus a set-password user. */
const keys: Array<{ id: string; secret: string }> = [];
let keychain: string;

beforeAll(async () => {
  keychain = join(scratch.root(), 'htpasswd');
  for (const args of [[], ['--cost', '4', '--count', '3']]) {
    const r = await keysmith(['create-access-key', '-k', keychain, '--json', ...args]);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const line of r.stdout.trimEnd().split('\n')) keys.push(JSON.parse(line));
  }
  const r = await keysmith(['set-password', '-k', keychain, 'alice', '--password-stdin', '--cost', '5'], { input: 'pässwörd with spaces\n' });
  expect(r.exitCode, r.stderr).toBe(0);
  keys.push({ id: 'alice', secret: 'pässwörd with spaces' });
  expect(readFileSync(keychain, 'utf8')).toMatch(/^[A-Z0-9]{20}:\$2b\$10\$/);
});

withPeer('htpasswd', 'htpasswd', () => {
  const verify = (file: string, user: string, password: string) =>
    spawnSync(htpasswd!, ['-vb', file, user, password], { encoding: 'utf8' });

  it("verifies keysmith's hashes, and rejects wrong secrets", () => {
    for (const { id, secret } of keys) {
      const ok = verify(keychain, id, secret);
      expect(ok.status, ok.stderr).toBe(0);
      expect(verify(keychain, id, secret.slice(1)).status).not.toBe(0);
    }
  });

  it.each([
    ['-B', /^\$2y\$/, ['-C', '4']],
    ['-m', /^\$apr1\$/, []],
    ['-s', /^\{SHA\}/, []],
  ])('keysmith verifies htpasswd %s hashes', async (flag, shape, extra) => {
    const file = join(scratch.root(), `htpasswd${flag}`);
    for (const [user, password] of [['bob', 'hunter2'], ['carol', 'pässwörd-日本'], ['dave', 'x'.repeat(72)]]) {
      execFileSync(htpasswd!, ['-b', ...(existsSync(file) ? [] : ['-c']), flag, ...extra, file, user!, password!], { stdio: 'pipe' });
    }
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    for (const line of lines) expect(line.slice(line.indexOf(':') + 1)).toMatch(shape);
    for (const [user, password] of [['bob', 'hunter2'], ['carol', 'pässwörd-日本'], ['dave', 'x'.repeat(72)]]) {
      expect((await keysmith(['verify-access-key', '-k', file, user!], { input: password })).exitCode).toBe(0);
      expect((await keysmith(['verify-access-key', '-k', file, user!], { input: password!.slice(0, -1) })).exitCode).toBe(1);
    }
  });
});

withPeer('passlib', 'Python passlib HtpasswdFile', () => {
  it("check_password accepts keysmith's hashes and rejects wrong secrets", () => {
    const script = [
      'import json, sys',
      'from passlib.apache import HtpasswdFile',
      'keys = json.load(sys.stdin)',
      'h = HtpasswdFile(sys.argv[1])',
      'print(json.dumps([[h.check_password(k["id"], k["secret"]), h.check_password(k["id"], k["secret"] + "x")] for k in keys]))',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script, keychain], { input: JSON.stringify(keys), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(keys.map(() => [true, false]));
  });
});

withPeer('pyBcrypt', 'Python bcrypt', () => {
  it.each(['2a', '2b'])('keysmith verifies $%s$ hashes made by Python bcrypt', async (prefix) => {
    const passwords = ['secret', 'pässwörd-日本', 'é'.repeat(36)];
    const script = [
      'import bcrypt, json, sys',
      `print(json.dumps([bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4, prefix=b"${prefix}")).decode() for p in json.load(sys.stdin)]))`,
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify(passwords), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const hashes = JSON.parse(r.stdout) as string[];
    const file = join(scratch.root(), `python-${prefix}`);
    writeFileSync(file, hashes.map((hash, i) => `user${i}:${hash}\n`).join(''));
    for (const [i, password] of passwords.entries()) {
      expect(hashes[i]).toMatch(new RegExp(`^\\$${prefix}\\$04\\$`));
      expect((await keysmith(['verify-access-key', '-k', file, `user${i}`], { input: password })).exitCode).toBe(0);
      expect((await keysmith(['verify-access-key', '-k', file, `user${i}`], { input: password.slice(0, -1) + '!' })).exitCode).toBe(1);
    }
  });

  it("Python bcrypt's checkpw accepts keysmith's hashes", () => {
    const entries = readFileSync(keychain, 'utf8').trimEnd().split('\n').map((l) => l.split(/:(.*)/s));
    const pairs = keys.map((k) => [k.secret, entries.find(([id]) => id === k.id)![1]]);
    const script = 'import bcrypt, json, sys\nprint(json.dumps([bcrypt.checkpw(p.encode(), h.encode()) for p, h in json.load(sys.stdin)]))';
    const r = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify(pairs), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(keys.map(() => true));
  });
});

withPeer('nginx', 'nginx auth_basic', () => {
  let dir: string;
  let port = 0;
  let server: ResultPromise | undefined;
  let log = '';

  /** A port that was free a moment ago (nginx cannot bind port 0 and tell us which it got). */
  function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port: p } = s.address() as AddressInfo;
        s.close(() => resolve(p));
      });
    });
  }

  function get(path: string, auth?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
      const req = request({ host: '127.0.0.1', port, path, headers, timeout: 5_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('timeout', () => req.destroy(new Error('nginx did not answer within 5 s')));
      req.on('error', reject);
      req.end();
    });
  }

  /** Start nginx on a free port; retry with another port when it was taken in the meantime. */
  async function start(): Promise<void> {
    for (let attempt = 1; attempt <= 5; attempt++) {
      port = await freePort();
      const conf = join(dir, 'nginx.conf');
      writeFileSync(
        conf,
        `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 32; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
    index index.html;
    # Serve a file: "return 200" would answer before auth_basic runs (protocols.md section 2).
    location / {
      auth_basic "keysmith test";
      auth_basic_user_file ${keychain};
    }
  }
}
`,
      );
      log = '';
      const child = execa(nginx!, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], {
        reject: false,
        stdin: 'ignore',
        all: true,
      });
      child.all?.on('data', (chunk: Buffer) => (log += chunk.toString()));
      server = child;
      // Wait until it answers (or exits, e.g. because the port was taken).
      const deadline = Date.now() + 10_000;
      let exited = false;
      void child.then(() => (exited = true));
      while (!exited && Date.now() < deadline) {
        try {
          await get('/index.html');
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      await stop();
      const errors = log + (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '');
      if (!/Address already in use/.test(errors)) throw new Error(`nginx did not start:\n${errors}`);
    }
    throw new Error('nginx: no free port after 5 attempts');
  }

  async function stop(): Promise<void> {
    const child = server;
    server = undefined;
    if (!child?.pid) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await child;
    clearTimeout(timer);
  }

  beforeAll(async () => {
    dir = join(scratch.root(), 'nginx');
    mkdirSync(join(dir, 'www'), { recursive: true });
    mkdirSync(join(dir, 'tmp'));
    writeFileSync(join(dir, 'www', 'index.html'), 'protected\n');
    // Workers may run as another user when nginx is not root: let them read what they serve.
    for (const path of [scratch.root(), dir, join(dir, 'www')]) chmodSync(path, 0o755);
    chmodSync(join(dir, 'www', 'index.html'), 0o644);
    chmodSync(keychain, 0o644);
    await start();
  }, 30_000);
  afterAll(stop);

  it('answers 200 with the right key, 401 with a wrong one and without credentials', async () => {
    for (const { id, secret } of keys) {
      expect(await get('/', `${id}:${secret}`)).toBe(200);
      expect(await get('/', `${id}:${secret.slice(0, -1)}`)).toBe(401);
    }
    expect(await get('/')).toBe(401);
    expect(await get('/', `NOSUCHKEY:${keys[0]!.secret}`)).toBe(401);
  });
});
