/**
 * Interoperability with real peers: keysmith's hashes verify with `htpasswd -vb`, Python passlib's
 * HtpasswdFile and nginx auth_basic; keysmith verifies hashes made by `htpasswd -B/-m/-s` and by
 * Python bcrypt. A missing peer skips its tests with the reason in the test name, except under CI
 * (`$CI` set), where .ci/run installs the peers and a missing one is a failure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keysmith, useScratch } from './helpers/keychain-cli.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { describeWithPeer, passlibChecks } from './helpers/peers.js';

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
  describeWithPeer(peer, peers[peer], name, body);
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
    const r = passlibChecks(keychain, keys);
    expect(r.status, r.stderr).toBe(0);
    expect(r.results).toEqual(keys.map(() => [true, false]));
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
  let server: NginxServer | undefined;
  const get = (path: string, auth?: string) => server!.get(path, auth);

  beforeAll(async () => {
    const dir = join(scratch.root(), 'nginx');
    mkdirSync(join(dir, 'www'), { recursive: true });
    // Workers may run as another user when nginx is not root: let them read what they serve.
    for (const path of [scratch.root(), dir, join(dir, 'www')]) chmodSync(path, 0o755);
    chmodSync(keychain, 0o644);
    server = await startNginx(nginx!, { dir, htpasswd: keychain, ...(process.getuid?.() === 0 && { user: 'root' }) });
  }, 30_000);
  afterAll(() => server?.stop());

  it('answers 200 with the right key, 401 with a wrong one and without credentials', async () => {
    for (const { id, secret } of keys) {
      expect(await get('/', `${id}:${secret}`)).toBe(200);
      expect(await get('/', `${id}:${secret.slice(0, -1)}`)).toBe(401);
    }
    expect(await get('/')).toBe(401);
    expect(await get('/', `NOSUCHKEY:${keys[0]!.secret}`)).toBe(401);
  });
});
