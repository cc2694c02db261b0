/**
 * Issue 14, first run and daily habits, end to end through the built binary: habits of docker,
 * openssl, htpasswd and waved each get one error line and the keysmith command in a `hint:` line
 * (and that command works); help for typos, the version spellings, profiles (--names, --delete,
 * close names, an empty list), what logout says, missing keychains, set-password without -k,
 * plurals, rotate-access-key's message and create-access-key --export with eval.
 */
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, useScratch } from './helpers/keychain-cli.js';
import { keysmith, oneErrorLine, type RunResult } from './helpers/keysmith.js';
import { startServer, stopAllServers } from './helpers/servers.js';
import { keysmithOnPath, runShell } from './helpers/shell.js';

afterAll(stopAllServers);

const scratch = useScratch('keysmith-habits-');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** The `hint:` line's text; fails when there is not exactly one. */
function hintLine(stderr: string): string {
  const hints = stderr.split('\n').filter((l) => l.startsWith('hint: '));
  if (hints.length !== 1) throw new Error(`expected one "hint:" line, got:\n${stderr}`);
  return hints[0]!.slice('hint: '.length);
}

/** A usage error: exit 2, nothing on stdout, one error line and one hint; returns both lines. */
function usage(r: RunResult): { error: string; hint: string } {
  expect(r.exitCode, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const error = oneErrorLine(r.stderr);
  const hint = hintLine(r.stderr);
  expect(r.stderr).toBe(`${error}\nhint: ${hint}`);
  return { error, hint };
}

/** A hint that is a plain keysmith command line, as arguments. */
function hintArgs(hint: string): string[] {
  expect(hint).toMatch(/^keysmith [^'"$|]+$/);
  return hint.split(' ').slice(1);
}

const home = () => ({ HOME: scratch.fresh() });

describe('version, help for typos, suggestions as hints', () => {
  it.each([['-v'], ['--version'], ['-V'], ['version']])('%s prints "keysmith VERSION"', async (flag) => {
    const r = await keysmith([flag], { keepFinalNewline: true });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`keysmith ${version}\n`);
    expect(r.stderr).toBe('');
  });

  it.each([
    [['help', 'crate-access-key'], "unknown command 'crate-access-key'", 'keysmith help create-access-key'],
    [['help', 'xyzzy'], "unknown command 'xyzzy'", 'keysmith --help lists the commands'],
    [['crate-access-key', '--help'], "unknown command 'crate-access-key'", 'keysmith create-access-key --help'],
    [['lst-access-keys', '-k', 'f'], "unknown command 'lst-access-keys'", 'keysmith list-access-keys -k f'],
    [['xyzzy', '--help'], "unknown command 'xyzzy'", 'keysmith --help lists the commands'],
    [['list-access-keys', '--jsn'], "unknown option '--jsn'", 'keysmith list-access-keys --json'],
    [['login', '--dialect', 'tiledd', 'http://127.0.0.1:9'], "argument 'tiledd' is invalid", 'keysmith login --dialect tiled http://127.0.0.1:9'],
  ])('%j: one error line, the suggestion as a hint, exit 2, no help text', async (args, error, hint) => {
    const r = await keysmith(args, { env: home() });
    const lines = usage(r);
    expect(lines.error).toContain(error);
    expect(lines.hint).toBe(hint);
    expect(r.stderr).not.toMatch(/Usage:|Did you mean/);
  });

  it('help COMMAND still prints its help on stdout with exit 0', async () => {
    const r = await keysmith(['help', 'login']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Usage: keysmith login/);
    // docker's -p is not login's: it has --profile only.
    expect(r.stdout).toContain('--profile <name>');
    expect(r.stdout).not.toMatch(/-p, --profile/);
  });
});

describe("other tools' habits: one error line and the keysmith command as the hint", () => {
  it.each([
    [['generate-secret', '--hex'], /--encoding hex, not --hex/, 'keysmith generate-secret --encoding hex', /^[0-9a-f]{64}$/],
    [['generate-secret', '--base64'], /--encoding base64, not --base64/, 'keysmith generate-secret --encoding base64', /^[A-Za-z0-9+/]{43}=$/],
    [['generate-secret', '-hex', '32'], /--encoding hex, not -hex/, 'keysmith generate-secret --encoding hex --bytes 32', /^[0-9a-f]{64}$/],
    [['generate-secret', '-base64', '48'], /--encoding base64, not -base64/, 'keysmith generate-secret --encoding base64 --bytes 48', /^[A-Za-z0-9+/]{64}$/],
    [['generate-secret', '32'], /number of random bytes as --bytes 32/, 'keysmith generate-secret --bytes 32', /^[0-9a-f]{64}$/],
  ])('openssl: %j', async (args, error, hint, output) => {
    const lines = usage(await keysmith(args));
    expect(lines.error).toMatch(error);
    expect(lines.hint).toBe(hint);
    const r = await keysmith(hintArgs(lines.hint));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(output);
  });

  it.each([
    [['-create-access-key'], 'keysmith create-access-key'],
    [['--create-access-key'], 'keysmith create-access-key'],
    [['-list-access-keys'], 'keysmith list-access-keys'],
    [['-access-keychain', 'keys', '-list-access-keys'], 'keysmith list-access-keys -k keys'],
  ])("waved: %j", async (args, hint) => {
    const dir = scratch.fresh();
    const lines = usage(await keysmith(args, { cwd: dir }));
    expect(lines.error).toMatch(/waved's spelling/);
    expect(lines.hint).toBe(hint);
    expect(readdirSync(dir)).toEqual([]);
    const r = await keysmith([...hintArgs(hint), ...(hint.includes('create') ? ['--cost', '4'] : [])], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it('htpasswd: FILE USER, -c and -B get set-password -k FILE USER, which works', async () => {
    const dir = scratch.fresh();
    for (const args of [['set-password', '.htpasswd', 'alice'], ['set-password', '-c', '.htpasswd', 'alice'], ['set-password', '-cB', '.htpasswd', 'alice']]) {
      const lines = usage(await keysmith(args, { cwd: dir }));
      expect(lines.hint).toBe('keysmith set-password -k .htpasswd alice');
    }
    const lines = usage(await keysmith(['set-password', '-k', '.htpasswd', '-B', 'alice', '--password-stdin'], { cwd: dir }));
    expect(lines.error).toMatch(/no -B: keysmith always writes bcrypt/);
    expect(lines.hint).toBe('keysmith set-password -k .htpasswd alice --password-stdin');
    expect(readdirSync(dir)).toEqual([]);
    const r = await keysmith([...hintArgs(lines.hint), '--cost', '4'], { cwd: dir, input: 'pw\n' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(dir, '.htpasswd'), 'utf8')).toMatch(/^alice:\$2b\$04\$/);
  });

  it('htpasswd -b FILE USER PASSWORD: the password is never repeated, and the hinted pipe works', async () => {
    const dir = scratch.fresh();
    const password = 'Tr0ub4dor-habits';
    const r = await keysmith(['set-password', '-cbB', '-C', '5', '.htpasswd', 'alice', password], { cwd: dir });
    const lines = usage(r);
    expect(lines.error).toMatch(/no password on the command line \(htpasswd -b\)/);
    expect(lines.hint).toBe(`printf '%s\\n' "$PASSWORD" | keysmith set-password -k .htpasswd alice --cost 5 --password-stdin`);
    expect(r.stderr).not.toContain(password);
    expect(readdirSync(dir)).toEqual([]);
    const bin = keysmithOnPath(scratch.fresh());
    const run = await runShell('bash', lines.hint, { bin, home: dir, env: { PASSWORD: password } });
    expect(run.exitCode, run.stderr).toBe(0);
    const verify = await keysmith(['verify-access-key', '-k', '.htpasswd', 'alice'], { cwd: dir, input: password });
    expect(verify.exitCode, verify.stderr).toBe(0);
  });

  it('htpasswd -D and -v: remove-access-key and verify-access-key', async () => {
    expect(usage(await keysmith(['set-password', '-D', '.htpasswd', 'alice'])).hint).toBe('keysmith remove-access-key -k .htpasswd alice');
    expect(usage(await keysmith(['set-password', '-v', '.htpasswd', 'alice'])).hint).toBe('keysmith verify-access-key -k .htpasswd alice');
  });

  it('docker: login -u alice -p PASSWORD saves no profile, never repeats the password, and points to --password-stdin', async () => {
    const env = home();
    const password = 's3cret-docker-habit';
    for (const args of [
      ['login', 'http://127.0.0.1:9', '-u', 'alice', '-p', password],
      ['login', 'http://127.0.0.1:9', '-u', 'alice', `-p${password}`],
      ['login', '-p', password, 'http://127.0.0.1:9', '-u', 'alice'],
      ['login', 'http://127.0.0.1:9', '-u', 'alice', '--password', password],
      ['login', 'http://127.0.0.1:9', '-u', 'alice', `--password=${password}`],
    ]) {
      const r = await keysmith(args, { env });
      const lines = usage(r);
      expect(lines.error).toMatch(/^error: login takes no (-p|--password): a password on the command line/);
      expect(lines.hint).toContain('--password-stdin or $KEYSMITH_PASSWORD');
      expect(lines.hint).toMatch(/printf '%s\\n' "\$PASSWORD" \| keysmith login (http:\/\/127\.0\.0\.1:9 -u alice|-u alice|http)/);
      expect(lines.hint).toContain('--password-stdin');
      expect(r.stderr).not.toContain(password);
    }
    expect(readdirSync(env.HOME)).toEqual([]);
  });

  it('the other token commands keep -p for --profile', async () => {
    const env = home();
    profilesFile(env.HOME, ['prod', 'staging']);
    const r = await keysmith(['token', '-p', 'prodd'], { env });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toBe('error: no profile prodd');
    expect(hintLine(r.stderr)).toBe('did you mean --profile prod? (profiles: prod, staging)');
  });
});

/** A profiles.json with these profiles (the first the default), as a login would leave it. */
function profilesFile(homeDir: string, names: string[]): void {
  const dir = join(homeDir, '.config', 'keysmith');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const profiles = Object.fromEntries(names.map((name) => [name, { name, url: `http://127.0.0.1:9/${name}`, dialect: 'tiled' }]));
  writeFileSync(join(dir, 'profiles.json'), JSON.stringify({ default: names[0], profiles }, null, 2) + '\n', { mode: 0o600 });
}

describe('profiles', () => {
  it('an empty list says so on stderr; stdout stays empty ([] with --json)', async () => {
    const env = home();
    const r = await keysmith(['profiles'], { env });
    expect(r).toMatchObject({ exitCode: 0, stdout: '', stderr: 'No profiles yet: log in with keysmith login URL' });
    const json = await keysmith(['profiles', '--json'], { env });
    expect(json).toMatchObject({ exitCode: 0, stdout: '[]' });
    expect(json.stderr).toContain('No profiles yet');
  });

  it('--names prints one name per line', async () => {
    const env = home();
    profilesFile(env.HOME, ['prod', 'localhost:8000']);
    const r = await keysmith(['profiles', '--names'], { env });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'prod\nlocalhost:8000', stderr: '' });
  });

  it('--delete NAME deletes a profile; an unknown name gets the closest as a hint', async () => {
    const env = home();
    profilesFile(env.HOME, ['prod', 'staging']);
    const near = await keysmith(['profiles', '--delete', 'stagin'], { env });
    expect(near.exitCode).toBe(1);
    expect(oneErrorLine(near.stderr)).toBe('error: no profile stagin');
    expect(hintLine(near.stderr)).toBe('did you mean staging? (profiles: prod, staging)');
    const r = await keysmith(['profiles', '--delete', 'prod'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('Deleted profile prod. The default profile is staging.');
    expect((await keysmith(['profiles', '--names'], { env })).stdout).toBe('staging');
    const last = await keysmith(['profiles', '--delete', 'staging'], { env });
    expect(last.stderr).toBe('Deleted profile staging.');
    expect((await keysmith(['profiles', '--json'], { env })).stdout).toBe('[]');
  });

  it('--delete of a logged-in Tiled profile revokes the session first, then forgets both', async () => {
    const server = await startServer('tiled');
    const env = { ...home(), KEYSMITH_PASSWORD: 'secret1' };
    const login = await keysmith(['login', server.url, '-u', 'alice', '--profile', 'lab'], { env });
    expect(login.exitCode, login.stderr).toBe(0);
    const r = await keysmith(['profiles', '--delete', 'lab'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('Logged out of lab and revoked the session on the server.\nDeleted profile lab.');
    expect(await server.count('revoke')).toBe(1);
    expect(readdirSync(join(env.HOME, '.local', 'state', 'keysmith', 'sessions'))).toEqual([]);
    const token = await keysmith(['token', '--profile', 'lab'], { env });
    expect(oneErrorLine(token.stderr)).toBe('error: no profile lab');
  });
});

describe('logout says whether the server revoked the session', () => {
  it('Tiled: revoked on the server', async () => {
    const server = await startServer('tiled');
    const env = { ...home(), KEYSMITH_PASSWORD: 'secret1' };
    expect((await keysmith(['login', server.url, '-u', 'alice'], { env })).exitCode).toBe(0);
    const r = await keysmith(['logout'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^Logged out of [^ ]+ and revoked the session on the server\.$/);
  });

  it('basic-login (no revocation): the token stays valid until it expires, and when', async () => {
    const server = await startServer('basic-login');
    const env = { ...home(), KEYSMITH_PASSWORD: 'password' };
    const login = await keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'dallan', '--profile', 'bl'], { env });
    expect(login.exitCode, login.stderr).toBe(0);
    const session = JSON.parse(readFileSync(join(env.HOME, '.local', 'state', 'keysmith', 'sessions', 'bl.json'), 'utf8')) as { expiresAt: number };
    const r = await keysmith(['logout', '--profile', 'bl'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe(
      `Logged out of bl on this machine only: the server offers no way to revoke it, so its token stays valid until it expires (${new Date(session.expiresAt).toISOString()}).`,
    );
    expect((await keysmith(['logout', '--profile', 'bl'], { env })).stderr).toBe('Not logged in to bl; nothing to do.');
  });
});

describe('keychains', () => {
  it('list-access-keys on a keychain that does not exist: nothing on stdout, exit 0, a note on stderr', async () => {
    const dir = scratch.fresh();
    for (const extra of [[], ['--json']]) {
      const r = await keysmith(['list-access-keys', '-k', 'missing', ...extra], { cwd: dir });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(extra.length ? '[]' : '');
      expect(r.stderr).toBe(`note: keychain ${join(dir, 'missing')} does not exist, so it has no keys (create one: keysmith create-access-key -k ${join(dir, 'missing')})`);
    }
    // An existing, empty keychain lists nothing and says nothing, as waved does.
    writeFileSync(join(dir, 'empty'), '');
    expect(await keysmith(['list-access-keys', '-k', 'empty'], { cwd: dir })).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
    expect(readdirSync(dir)).toEqual(['empty']);
  });

  it('verify-access-key on a keychain that does not exist: exit 1 and says so', async () => {
    const dir = scratch.fresh();
    const r = await keysmith(['verify-access-key', '-k', 'missing', 'AAAA'], { cwd: dir, input: 'secret\n' });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toBe(`error: keychain ${join(dir, 'missing')} does not exist`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('set-password without -k or $KEYSMITH_KEYCHAIN writes nothing and asks for the file', async () => {
    const dir = scratch.fresh();
    const lines = usage(await keysmith(['set-password', 'alice', '--password-stdin'], { cwd: dir, input: 'pw\n' }));
    expect(lines.error).toBe('error: set-password needs the htpasswd file: -k FILE (or $KEYSMITH_KEYCHAIN)');
    expect(lines.hint).toBe('keysmith set-password -k .htpasswd alice');
    expect(readdirSync(dir)).toEqual([]);
    const r = await keysmith(['set-password', 'alice', '--password-stdin', '--cost', '4'], { cwd: dir, input: 'pw\n', env: { KEYSMITH_KEYCHAIN: 'users.htpasswd' } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(dir)).toEqual(['users.htpasswd']);
  });

  it('plurals: one key is "a bcrypt hash", two are "hashes"; "Removed 1 access key"', async () => {
    const dir = scratch.fresh();
    const one = await keysmith(['create-access-key', '-k', 'keys', '--cost', '4'], { cwd: dir });
    expect(one.stderr).toBe(`Access key saved to ${join(dir, 'keys')}.\nCopy the secret now: it is stored only as a bcrypt hash and cannot be shown again.`);
    const two = await keysmith(['create-access-key', '-k', 'keys', '--cost', '4', '--count', '2'], { cwd: dir });
    expect(two.stderr).toBe(`2 access keys saved to ${join(dir, 'keys')}.\nCopy the secrets now: they are stored only as bcrypt hashes and cannot be shown again.`);
    const id = /H2O_WAVE_ACCESS_KEY_ID=(\w+)/.exec(one.stdout)![1]!;
    const removed = await keysmith(['remove-access-key', '-k', 'keys', id], { cwd: dir });
    expect(removed.stderr).toBe(`Removed 1 access key from ${join(dir, 'keys')}.`);
  });

  it('inspect-token with a one-key file: "the only key", never "1 keys"', async () => {
    const dir = scratch.fresh();
    const key = 'k'.repeat(64);
    writeFileSync(join(dir, 'keys.txt'), `${key}\n`);
    const token = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('15m').sign(new TextEncoder().encode(key));
    const ok = await keysmith(['inspect-token', token, '--secret-file', 'keys.txt'], { cwd: dir });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('signature: valid (HS256, the only key)');
    const forged = `${token.split('.').slice(0, 2).join('.')}.${createHmac('sha256', 'other').update(token.split('.').slice(0, 2).join('.')).digest('base64url')}`;
    const bad = await keysmith(['inspect-token', forged, '--secret-file', 'keys.txt'], { cwd: dir });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toContain('signature: does not match the key');
    expect(oneErrorLine(bad.stderr)).toBe("error: the token's signature does not match the key in keys.txt");
    expect(bad.stdout + bad.stderr).not.toMatch(/\b1 keys\b/);
  });

  it('rotate-access-key says which ID was replaced by which', async () => {
    const dir = scratch.fresh();
    const created = await keysmith(['create-access-key', '-k', 'keys', '--cost', '4', '--json'], { cwd: dir });
    const old = (JSON.parse(created.stdout) as { id: string }).id;
    const r = await keysmith(['rotate-access-key', '-k', 'keys', old, '--cost', '4', '--json'], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    const fresh = (JSON.parse(r.stdout) as { id: string }).id;
    expect(r.stderr.split('\n')[0]).toBe(`Replaced access key ${old} by ${fresh} in ${join(dir, 'keys')}.`);
    const kept = await keysmith(['rotate-access-key', '-k', 'keys', fresh, '--cost', '4', '--keep-old', '--json'], { cwd: dir });
    const added = (JSON.parse(kept.stdout) as { id: string }).id;
    expect(kept.stderr.split('\n')[0]).toBe(`Added access key ${added} next to ${fresh} in ${join(dir, 'keys')}.`);
  });

  it('eval "$(keysmith create-access-key --export)": programs started afterwards see the key', async () => {
    const dir = scratch.fresh();
    const bin = keysmithOnPath(dir);
    const child = `node -e 'console.log(process.env.H2O_WAVE_ACCESS_KEY_ID ?? "unset", process.env.H2O_WAVE_ACCESS_KEY_SECRET ?? "unset")'`;
    const script = [
      'set -eu',
      'eval "$(keysmith create-access-key -k keys --cost 4 --export)"',
      child,
      'echo "$H2O_WAVE_ACCESS_KEY_SECRET" | keysmith verify-access-key -k keys "$H2O_WAVE_ACCESS_KEY_ID"',
    ].join('\n');
    const r = await runShell('bash', script, { bin, home: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^[A-Z0-9]{20} [A-Za-z0-9]{40}$/);
    expect(r.stderr).toMatch(/: OK$/);
    // Without --export the variables stay in the shell: a program started from it does not see them.
    const plain = await runShell('bash', `eval "$(keysmith create-access-key -k keys --cost 4)"\n${child}`, { bin, home: dir });
    expect(plain.stdout).toBe('unset unset');
    // --export is one pair of variables.
    const lines = usage(await keysmith(['create-access-key', '-k', 'keys', '--export', '--count', '2'], { cwd: dir }));
    expect(lines.error).toBe('error: --export sets one pair of variables; for several keys use --json');
    expect(existsSync(join(dir, 'keys'))).toBe(true);
  });
});
