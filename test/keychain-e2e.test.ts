/**
 * End to end: the built binary (bin/keysmith.js → dist/cli.cjs) run with execa, for every keychain
 * command: output shapes, exit codes, file modes, byte-for-byte preservation and bad input.
 * Cost 4 wherever the cost does not matter, for speed.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, FIXTURES, KEYCHAIN_COMMANDS, ROOT, cleanEnv, errorLine, keysmith, useScratch, type RunResult } from './helpers/keychain-cli.js';

const ID = /^[A-Z0-9]{20}$/;
const SECRET = /^[A-Za-z0-9]{40}$/;
const TWO_LINES = /^H2O_WAVE_ACCESS_KEY_ID=([A-Z0-9]{20})\nH2O_WAVE_ACCESS_KEY_SECRET=([A-Za-z0-9]{40})\n$/;
const HASH = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';
const isRoot = process.getuid?.() === 0;

const scratch = useScratch('keysmith-e2e-');
const freshDir = scratch.fresh;

/** Copy a fixture into a fresh directory; returns its path there. */
function fixture(name: string, as = name): string {
  const path = join(freshDir(), as);
  copyFileSync(join(FIXTURES, name), path);
  return path;
}

function write(text: string | Buffer, name = 'keychain'): string {
  const path = join(freshDir(), name);
  writeFileSync(path, text);
  return path;
}

const ks = keysmith;
const mode = (path: string) => statSync(path).mode & 0o777;
/** Files other than the keychain left in its directory (temp files, locks). */
const leftovers = (path: string) => readdirSync(join(path, '..')).filter((f) => f !== path.split('/').pop());

function parseKeyLines(stdout: string): { id: string; secret: string } {
  const m = TWO_LINES.exec(stdout);
  if (!m) throw new Error(`not the two-line key output:\n${stdout}`);
  return { id: m[1]!, secret: m[2]! };
}

async function verifies(keychain: string, id: string, secret: string): Promise<boolean> {
  const r = await ks(['verify-access-key', '-k', keychain, id], { input: secret + '\n' });
  if (r.exitCode !== 0 && r.exitCode !== 1) throw new Error(`verify exited ${r.exitCode}: ${r.stderr}`);
  return r.exitCode === 0;
}

function expectOk(r: RunResult): void {
  expect(r.exitCode, `${r.command}\n${r.stderr}`).toBe(0);
}

describe('create-access-key', () => {
  it('prints exactly two sourceable lines; the copy-now text and the path go to stderr', async () => {
    const dir = freshDir();
    const keychain = join(dir, 'keys');
    const r = await ks(['create-access-key', '-k', keychain, '--cost', '4']);
    expectOk(r);
    const { id, secret } = parseKeyLines(r.stdout);
    expect(r.stderr).toContain(keychain);
    expect(r.stderr).toMatch(/copy the secret now/i);
    expect(r.stderr).toMatch(/cannot be shown again/);
    expect(readFileSync(keychain, 'utf8')).toMatch(new RegExp(`^${id}:\\$2b\\$04\\$[./A-Za-z0-9]{53}\\n$`));
    expect(readFileSync(keychain, 'utf8')).not.toContain(secret);
    expect(mode(keychain)).toBe(0o600);
    expect(await verifies(keychain, id, secret)).toBe(true);
  });

  it('output can be eval-ed by a shell', async () => {
    const keychain = join(freshDir(), 'keys');
    const script = `eval "$("${process.execPath}" "${BIN}" create-access-key -k "${keychain}" --cost 4 2>/dev/null)" && printf '%s %s' "$H2O_WAVE_ACCESS_KEY_ID" "$H2O_WAVE_ACCESS_KEY_SECRET"`;
    const r = await execa('sh', ['-c', script], { env: cleanEnv(), extendEnv: false, stdin: 'ignore', timeout: 20_000 });
    const [id, secret] = r.stdout.split(' ');
    expect(id).toMatch(ID);
    expect(secret).toMatch(SECRET);
    expect(await verifies(keychain, id!, secret!)).toBe(true);
  });

  it('uses bcrypt cost 10 by default', async () => {
    const keychain = join(freshDir(), 'keys');
    expectOk(await ks(['create-access-key', '-k', keychain]));
    expect(readFileSync(keychain, 'utf8')).toMatch(/^[A-Z0-9]{20}:\$2b\$10\$/);
  });

  it('--json prints one object per key per line', async () => {
    const keychain = join(freshDir(), 'keys');
    const r = await ks(['create-access-key', '-k', keychain, '--cost', '4', '--json']);
    expectOk(r);
    const lines = r.stdout.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('');
    const key = JSON.parse(lines[0]!);
    expect(Object.keys(key)).toEqual(['id', 'secret', 'keychain']);
    expect(key.id).toMatch(ID);
    expect(key.secret).toMatch(SECRET);
    expect(key.keychain).toBe(keychain);
    expect(await verifies(keychain, key.id, key.secret)).toBe(true);
  });

  it('--count N creates N distinct keys in one write', async () => {
    const keychain = join(freshDir(), 'keys');
    const json = await ks(['create-access-key', '-k', keychain, '--cost', '4', '--count', '5', '--json']);
    expectOk(json);
    const keys = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; secret: string });
    expect(keys).toHaveLength(5);
    expect(new Set(keys.map((k) => k.id)).size).toBe(5);
    expect(json.stderr).toMatch(/5 access keys saved to/);

    const plain = await ks(['create-access-key', '-k', keychain, '--cost', '4', '-n', '3']);
    expectOk(plain);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(6);
    lines.forEach((line, i) => expect(line).toMatch(i % 2 === 0 ? /^H2O_WAVE_ACCESS_KEY_ID=[A-Z0-9]{20}$/ : /^H2O_WAVE_ACCESS_KEY_SECRET=[A-Za-z0-9]{40}$/));

    const list = await ks(['list-access-keys', '-k', keychain]);
    expect(list.stdout.trimEnd().split('\n')).toHaveLength(8);
    // Keys are appended in the order they were printed.
    const fileIds = readFileSync(keychain, 'utf8').trimEnd().split('\n').map((l) => l.split(':')[0]);
    expect(fileIds.slice(0, 5)).toEqual(keys.map((k) => k.id));
    for (const k of [keys[0]!, keys[4]!]) expect(await verifies(keychain, k.id, k.secret)).toBe(true);
  });

  it.each([['0'], ['-1'], ['x'], ['1.5'], ['10001']])('--count %s is a usage error', async (count) => {
    const keychain = join(freshDir(), 'keys');
    const r = await ks(['create-access-key', '-k', keychain, '--cost', '4', '--count', count]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    errorLine(r.stderr);
    expect(existsSync(keychain)).toBe(false);
  });
});

describe('list-access-keys', () => {
  it('lists IDs sorted by byte order, one per line', async () => {
    const keychain = write(`zeta:${HASH}\n# comment: not an ID\nAlpha:${HASH}\n\n10:${HASH}\nalpha:${HASH}\nBeta:${HASH}\n`);
    const r = await ks(['list-access-keys', '-k', keychain]);
    expectOk(r);
    expect(r.stdout).toBe('10\nAlpha\nBeta\nalpha\nzeta\n');
    expect(r.stderr).toBe('');
  });

  it('--json gives id, algorithm and bcrypt cost', async () => {
    const r = await ks(['list-access-keys', '-k', fixture('mixed.htpasswd'), '--json']);
    expectOk(r);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(JSON.parse(r.stdout)).toEqual([
      { id: 'alice', algorithm: 'bcrypt', cost: 5 },
      { id: 'bob', algorithm: 'apr1' },
      { id: 'carol', algorithm: 'sha1' },
      { id: 'dave', algorithm: 'crypt' },
      { id: 'erin', algorithm: 'plain' },
      { id: 'frank', algorithm: 'crypt' },
      { id: 'grace', algorithm: 'unknown' },
    ]);
  });

  it('a missing or empty keychain lists nothing and exits 0 (a missing one says so on stderr)', async () => {
    const dir = freshDir();
    for (const keychain of [join(dir, 'missing'), write(''), write('# only a comment\n\n')]) {
      const r = await ks(['list-access-keys', '-k', keychain]);
      expectOk(r);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(keychain.endsWith('missing') ? `note: keychain ${keychain} does not exist, so it has no keys (create one: keysmith create-access-key -k ${keychain})\n` : '');
      const json = await ks(['list-access-keys', '-k', keychain, '--json']);
      expect(json.stdout).toBe('[]\n');
    }
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });

  it('reads CRLF files and files without a final newline', async () => {
    expect((await ks(['list-access-keys', '-k', fixture('crlf.keychain')])).stdout).toBe('AAAA\nBBBB\n');
    expect((await ks(['list-access-keys', '-k', fixture('no-final-newline.keychain')])).stdout).toBe('AAAA\nBBBB\n');
    expect((await ks(['list-access-keys', '-k', fixture('wave.keychain')])).stdout).toBe('ABCDEFGHIJ0123456789\nZZZZZZZZZZZZZZZZZZZZ\n');
  });
});

describe('remove-access-key', () => {
  it('removes entries and keeps everything else byte for byte', async () => {
    const keychain = fixture('comments-mixed-eol.keychain');
    const before = readFileSync(keychain, 'latin1');
    const r = await ks(['remove-access-key', '-k', keychain, 'BBBBBBBBBBBBBBBBBBBB']);
    expectOk(r);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Removed 1 access key from/);
    expect(readFileSync(keychain, 'latin1')).toBe(before.replace(`BBBBBBBBBBBBBBBBBBBB:${HASH}\n`, ''));
  });

  it('removes several at once', async () => {
    const keychain = fixture('mixed.htpasswd');
    const before = readFileSync(keychain, 'utf8');
    expectOk(await ks(['remove-access-key', '-k', keychain, 'bob', 'grace']));
    expect(readFileSync(keychain, 'utf8')).toBe(before.split('\n').filter((l) => !/^(bob|grace):/.test(l)).join('\n'));
  });

  it('an unknown ID exits 1, names it, and removes nothing', async () => {
    const keychain = fixture('wave.keychain');
    const before = readFileSync(keychain);
    const r = await ks(['remove-access-key', '-k', keychain, 'ZZZZZZZZZZZZZZZZZZZZ', 'NOPE']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toBe(`error: access key ID NOPE not found in keychain ${keychain}; nothing removed`);
    expect(readFileSync(keychain).equals(before)).toBe(true);
    expect(leftovers(keychain)).toEqual([]);
    // Without a keychain file: still "not found", and no file appears.
    const missing = join(freshDir(), 'missing');
    const m = await ks(['remove-access-key', '-k', missing, 'AAAA']);
    expect(m.exitCode).toBe(1);
    expect(errorLine(m.stderr)).toMatch(/AAAA not found/);
    expect(existsSync(missing)).toBe(false);
  });

  it('warns when the keychain is left without keys', async () => {
    const keychain = fixture('wave.keychain');
    const r = await ks(['remove-access-key', '-k', keychain, 'ABCDEFGHIJ0123456789', 'ZZZZZZZZZZZZZZZZZZZZ']);
    expectOk(r);
    expect(r.stderr).toMatch(/Removed 2 access keys/);
    expect(r.stderr).toMatch(/warning: .* now has no access keys/);
    expect(readFileSync(keychain, 'utf8')).toBe('');
  });

  it('without an ID is a usage error', async () => {
    const r = await ks(['remove-access-key', '-k', fixture('wave.keychain')]);
    expect(r.exitCode).toBe(2);
    errorLine(r.stderr);
  });
});

describe('verify-access-key', () => {
  let keychain: string;
  let id: string;
  let secret: string;
  beforeAll(async () => {
    keychain = join(freshDir(), 'keys');
    ({ id, secret } = parseKeyLines((await ks(['create-access-key', '-k', keychain, '--cost', '4'])).stdout));
  });

  it('reads the secret from stdin (one trailing newline dropped)', async () => {
    for (const input of [secret, `${secret}\n`, `${secret}\r\n`]) {
      const r = await ks(['verify-access-key', '-k', keychain, id], { input });
      expectOk(r);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('OK');
    }
    const twoNewlines = await ks(['verify-access-key', '-k', keychain, id], { input: `${secret}\n\n` });
    expect(twoNewlines.exitCode).toBe(1);
  });

  it('reads the secret from $H2O_WAVE_ACCESS_KEY_SECRET', async () => {
    expectOk(await ks(['verify-access-key', '-k', keychain, id], { env: { H2O_WAVE_ACCESS_KEY_SECRET: secret } }));
    const wrong = await ks(['verify-access-key', '-k', keychain, id], { env: { H2O_WAVE_ACCESS_KEY_SECRET: secret + 'x' } });
    expect(wrong.exitCode).toBe(1);
  });

  it('a wrong secret and an unknown ID both exit 1 with one error line', async () => {
    const wrong = await ks(['verify-access-key', '-k', keychain, id], { input: 'not the secret\n' });
    expect(wrong.exitCode).toBe(1);
    expect(errorLine(wrong.stderr)).toBe(`error: access key ${id}: verification failed`);
    const unknown = await ks(['verify-access-key', '-k', keychain, 'UNKNOWN0000000000000'], { input: secret });
    expect(unknown.exitCode).toBe(1);
    expect(errorLine(unknown.stderr)).toBe('error: access key UNKNOWN0000000000000: verification failed');
    const noFile = await ks(['verify-access-key', '-k', join(freshDir(), 'missing'), id], { input: secret });
    expect(noFile.exitCode).toBe(1);
  });

  it('without a TTY and without a secret source it exits 2 at once, never waits', async () => {
    const started = Date.now();
    const r = await ks(['verify-access-key', '-k', keychain, id], { timeout: 15_000 });
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toMatch(/no secret given and no terminal/);
    expect(r.stderr).toMatch(/hint: .*H2O_WAVE_ACCESS_KEY_SECRET/);
    // Not a timing assertion on keysmith's speed: only proof that it did not sit waiting for input.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('an empty pipe is an error, not a fallback to the environment variable (issue 10)', async () => {
    const r = await ks(['verify-access-key', '-k', keychain, id], { input: '', env: { H2O_WAVE_ACCESS_KEY_SECRET: secret } });
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toBe('error: no secret on standard input (it was empty)');
  });
});

describe('rotate-access-key', () => {
  async function threeKeys() {
    const keychain = join(freshDir(), 'keys');
    const r = await ks(['create-access-key', '-k', keychain, '--cost', '4', '--count', '3', '--json']);
    expectOk(r);
    const keys = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; secret: string });
    return { keychain, keys };
  }

  it('replaces the key in place, in one write, and prints the new one like create', async () => {
    const { keychain, keys } = await threeKeys();
    const before = readFileSync(keychain, 'utf8').split('\n');
    const r = await ks(['rotate-access-key', '-k', keychain, keys[1]!.id, '--cost', '4']);
    expectOk(r);
    const fresh = parseKeyLines(r.stdout);
    expect(fresh.id).not.toBe(keys[1]!.id);
    const after = readFileSync(keychain, 'utf8').split('\n');
    expect(after).toHaveLength(before.length);
    expect(after[0]).toBe(before[0]);
    expect(after[1]!.startsWith(`${fresh.id}:$2b$04$`)).toBe(true);
    expect(after[2]).toBe(before[2]);
    expect(await verifies(keychain, fresh.id, fresh.secret)).toBe(true);
    expect(await verifies(keychain, keys[1]!.id, keys[1]!.secret)).toBe(false);
    expect(await verifies(keychain, keys[0]!.id, keys[0]!.secret)).toBe(true);
  });

  it('--keep-old keeps both, the new one right after the old one', async () => {
    const { keychain, keys } = await threeKeys();
    const before = readFileSync(keychain, 'utf8').split('\n');
    const r = await ks(['rotate-access-key', '-k', keychain, keys[0]!.id, '--keep-old', '--cost', '4', '--json']);
    expectOk(r);
    const fresh = JSON.parse(r.stdout) as { id: string; secret: string; keychain: string };
    expect(fresh.keychain).toBe(keychain);
    expect(r.stderr).toContain(`The old key ${keys[0]!.id} stays valid`);
    const after = readFileSync(keychain, 'utf8').split('\n');
    expect(after).toEqual([before[0], expect.stringMatching(new RegExp(`^${fresh.id}:`)), ...before.slice(1)]);
    expect(await verifies(keychain, keys[0]!.id, keys[0]!.secret)).toBe(true);
    expect(await verifies(keychain, fresh.id, fresh.secret)).toBe(true);
  });

  it('keeps CRLF and a missing final newline', async () => {
    const crlf = fixture('crlf.keychain');
    expectOk(await ks(['rotate-access-key', '-k', crlf, 'AAAA', '--cost', '4']));
    expect(readFileSync(crlf, 'utf8')).toMatch(/^[A-Z0-9]{20}:\$2b\$04\$[./A-Za-z0-9]{53}\r\nBBBB:\S+\r\n$/);
    const bare = fixture('no-final-newline.keychain');
    expectOk(await ks(['rotate-access-key', '-k', bare, 'BBBB', '--cost', '4']));
    expect(readFileSync(bare, 'utf8')).toMatch(/^AAAA:\S+\n[A-Z0-9]{20}:\$2b\$04\$[./A-Za-z0-9]{53}$/);
  });

  it('an unknown ID exits 1 and changes nothing', async () => {
    const keychain = fixture('wave.keychain');
    const before = readFileSync(keychain);
    const r = await ks(['rotate-access-key', '-k', keychain, 'NOPE', '--cost', '4']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/NOPE not found in keychain/);
    expect(r.stdout).toBe('');
    expect(readFileSync(keychain).equals(before)).toBe(true);
  });
});

describe('set-password', () => {
  it('adds a user at the end, leaving every other line untouched', async () => {
    const file = fixture('mixed.htpasswd');
    const before = readFileSync(file, 'utf8');
    const r = await ks(['set-password', '-k', file, 'heidi', '--password-stdin', '--cost', '4'], { input: 'correct horse\n' });
    expectOk(r);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Added user heidi/);
    const after = readFileSync(file, 'utf8');
    expect(after.startsWith(before)).toBe(true);
    expect(after.slice(before.length)).toMatch(/^heidi:\$2b\$04\$[./A-Za-z0-9]{53}\n$/);
    expect(await verifies(file, 'heidi', 'correct horse')).toBe(true);
  });

  it.each([
    ['a bcrypt user', 'alice'],
    ['an $apr1$ user', 'bob'],
    ['a {SHA} user', 'carol'],
  ])('updates %s in place; other hash kinds stay as they were', async (_kind, user) => {
    const file = fixture('mixed.htpasswd');
    const before = readFileSync(file, 'utf8').split('\n');
    const r = await ks(['set-password', '-k', file, user, '--password-stdin', '--cost', '4'], { input: 'new password' });
    expectOk(r);
    expect(r.stderr).toMatch(new RegExp(`Updated user ${user}`));
    const after = readFileSync(file, 'utf8').split('\n');
    expect(after).toHaveLength(before.length);
    after.forEach((line, i) => {
      if (before[i]!.startsWith(`${user}:`)) expect(line).toMatch(new RegExp(`^${user}:\\$2b\\$04\\$`));
      else expect(line).toBe(before[i]);
    });
    expect(await verifies(file, user, 'new password')).toBe(true);
  });

  it('creates a missing file with mode 0600', async () => {
    const file = join(freshDir(), '.htpasswd');
    expectOk(await ks(['set-password', '-k', file, 'alice', '--password-stdin', '--cost', '4'], { input: 'pw' }));
    expect(readFileSync(file, 'utf8')).toMatch(/^alice:\$2b\$04\$[./A-Za-z0-9]{53}\n$/);
    expect(mode(file)).toBe(0o600);
  });

  it('without --password-stdin and without a TTY it exits 2 at once', async () => {
    const file = fixture('mixed.htpasswd');
    const before = readFileSync(file);
    const r = await ks(['set-password', '-k', file, 'alice'], { timeout: 15_000 });
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toMatch(/no password given and no terminal/);
    expect(r.stderr).toMatch(/hint: .*--password-stdin/);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it.each([
    ['an empty password', 'alice', '\n', /no password on standard input/],
    ['a user name with ":"', 'al:ice', 'pw', /invalid user name/],
    ['a user name with a space', 'al ice', 'pw', /invalid user name/],
    ['a user name starting with #', '#alice', 'pw', /invalid user name/],
  ])('refuses %s', async (_name, user, input, message) => {
    const file = fixture('mixed.htpasswd');
    const before = readFileSync(file);
    const r = await ks(['set-password', '-k', file, user, '--password-stdin', '--cost', '4'], { input });
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toMatch(message);
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});

describe('keychain location', () => {
  it('defaults to .wave-keychain in the current directory', async () => {
    const dir = freshDir();
    const r = await ks(['create-access-key', '--cost', '4'], { cwd: dir });
    expectOk(r);
    const { id } = parseKeyLines(r.stdout);
    expect(r.stderr).toContain(join(dir, '.wave-keychain'));
    expect((await ks(['list-access-keys'], { cwd: dir })).stdout).toBe(`${id}\n`);
  });

  it('uses $KEYSMITH_KEYCHAIN, and -k/--keychain wins over it; relative paths are from the current directory', async () => {
    const dir = freshDir();
    const env = { KEYSMITH_KEYCHAIN: join(dir, 'from-env') };
    const a = parseKeyLines((await ks(['create-access-key', '--cost', '4'], { env, cwd: dir })).stdout);
    expect(readFileSync(join(dir, 'from-env'), 'utf8')).toContain(a.id);
    const b = parseKeyLines((await ks(['create-access-key', '--cost', '4', '-k', 'from-flag'], { env, cwd: dir })).stdout);
    expect(readFileSync(join(dir, 'from-flag'), 'utf8')).toContain(b.id);
    const c = parseKeyLines((await ks(['create-access-key', '--cost', '4', '--keychain=from-flag'], { env, cwd: dir })).stdout);
    expect((await ks(['list-access-keys'], { env, cwd: dir })).stdout).toBe(`${a.id}\n`);
    expect((await ks(['list-access-keys', '--keychain', join(dir, 'from-flag')], { env })).stdout).toBe([b.id, c.id].sort().join('\n') + '\n');
    expect(existsSync(join(dir, '.wave-keychain'))).toBe(false);
  });

  it('writes through a symlink to the real file', async () => {
    const real = fixture('wave.keychain');
    const link = join(freshDir(), 'link');
    await execa('ln', ['-s', real, link]);
    expectOk(await ks(['create-access-key', '-k', link, '--cost', '4']));
    expect((await execa('readlink', [link])).stdout).toBe(real);
    expect(readFileSync(real, 'utf8').split('\n')).toHaveLength(4);
  });

  it('a missing directory is an error naming it', async () => {
    const r = await ks(['create-access-key', '-k', join(scratch.root(), 'no', 'such', 'dir', 'keys'), '--cost', '4']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toContain(`directory ${join(scratch.root(), 'no', 'such', 'dir')} does not exist`);
  });
});

describe('file modes and shape', () => {
  it('new files are 0600 whatever the umask', async () => {
    const keychain = join(freshDir(), 'keys');
    await execa('sh', ['-c', `umask 000 && exec "${process.execPath}" "${BIN}" create-access-key -k "${keychain}" --cost 4`], {
      env: cleanEnv(),
      extendEnv: false,
      stdin: 'ignore',
      timeout: 20_000,
    });
    expect(mode(keychain)).toBe(0o600);
  });

  it('an existing file keeps its mode (0640) through every kind of write', async () => {
    const keychain = fixture('mixed.htpasswd');
    chmodSync(keychain, 0o640);
    const created = parseKeyLines((await ks(['create-access-key', '-k', keychain, '--cost', '4'])).stdout);
    expect(mode(keychain)).toBe(0o640);
    expectOk(await ks(['rotate-access-key', '-k', keychain, created.id, '--cost', '4']));
    expect(mode(keychain)).toBe(0o640);
    expectOk(await ks(['set-password', '-k', keychain, 'alice', '--password-stdin', '--cost', '4'], { input: 'pw' }));
    expect(mode(keychain)).toBe(0o640);
    expectOk(await ks(['remove-access-key', '-k', keychain, 'bob']));
    expect(mode(keychain)).toBe(0o640);
    expect(leftovers(keychain)).toEqual([]);
  });

  it('keeps comments, blank lines and CRLF byte for byte, and appends with the file line ending', async () => {
    const keychain = fixture('comments-mixed-eol.keychain');
    const before = readFileSync(keychain);
    const r = await ks(['create-access-key', '-k', keychain, '--cost', '4']);
    expectOk(r);
    const { id } = parseKeyLines(r.stdout);
    const after = readFileSync(keychain);
    expect(after.subarray(0, before.length).equals(before)).toBe(true);
    expect(after.subarray(before.length).toString('latin1')).toMatch(new RegExp(`^${id}:\\$2b\\$04\\$[./A-Za-z0-9]{53}\\r\\n$`));
  });

  it('gives a file without a final newline one before appending, and adds no blank lines or comments', async () => {
    const keychain = fixture('no-final-newline.keychain');
    const before = readFileSync(keychain, 'utf8');
    const { id } = parseKeyLines((await ks(['create-access-key', '-k', keychain, '--cost', '4'])).stdout);
    const after = readFileSync(keychain, 'utf8');
    expect(after).toMatch(new RegExp(`^${before.replace(/\$/g, '\\$')}\\n${id}:\\$2b\\$04\\$[./A-Za-z0-9]{53}\\n$`));
    expect(after).not.toMatch(/\n\n|^#/m);
  });

  it('removes temp files that killed writers left behind, but never a live process\'s', async () => {
    const keychain = fixture('wave.keychain');
    const dir = join(keychain, '..');
    const child = execa(process.execPath, ['-e', '0']);
    const dead = { pid: child.pid! };
    await child;
    const deadTemp = `.wave.keychain.${dead.pid}.0abc123.tmp`;
    const liveTemp = `.wave.keychain.${process.pid}.1def456.tmp`;
    const otherFile = `.other.${dead.pid}.0abc123.tmp`;
    for (const name of [deadTemp, liveTemp, otherFile]) writeFileSync(join(dir, name), 'partial');
    expectOk(await ks(['create-access-key', '-k', keychain, '--cost', '4']));
    expect(readdirSync(dir).sort()).toEqual([liveTemp, otherFile, 'wave.keychain'].sort());
    // Reading never cleans up (no lock is taken).
    writeFileSync(join(dir, deadTemp), 'partial');
    expectOk(await ks(['list-access-keys', '-k', keychain]));
    expect(readdirSync(dir)).toContain(deadTemp);
  });

  it('a failed write leaves the file byte-identical and leaves no temp file', async () => {
    const keychain = fixture('comments-mixed-eol.keychain');
    const before = readFileSync(keychain);
    const r = await ks(['remove-access-key', '-k', keychain, 'AAAAAAAAAAAAAAAAAAAA', 'XXXX']);
    expect(r.exitCode).toBe(1);
    expect(readFileSync(keychain).equals(before)).toBe(true);
    expect(leftovers(keychain)).toEqual([]);
  });
});

describe('help, version and usage errors', () => {
  const keychainCommands = ['create-access-key', 'list-access-keys', 'remove-access-key', 'verify-access-key', 'rotate-access-key', 'set-password'];

  it('--help lists every keychain command', async () => {
    const r = await ks(['--help']);
    expectOk(r);
    for (const name of keychainCommands) expect(r.stdout).toContain(name);
    expect(r.stdout).toMatch(/^Usage: keysmith/);
  });

  it.each(keychainCommands)('help %s and %s --help show its options', async (name) => {
    const a = await ks(['help', name]);
    expectOk(a);
    expect(a.stdout).toContain(`Usage: keysmith ${name}`);
    expect(a.stdout).toContain('--keychain <path>');
    const b = await ks([name, '--help']);
    expectOk(b);
    expect(b.stdout).toBe(a.stdout);
  });

  it('--version, -V, -v and version print keysmith and the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V', '-v', 'version']) {
      const r = await ks([flag]);
      expectOk(r);
      expect(r.stdout).toBe(`keysmith ${version}\n`);
      expect(r.stderr).toBe('');
    }
  });

  it.each([
    [['creat-access-key'], /unknown command 'creat-access-key'/, /^hint: keysmith create-access-key$/m],
    [['list-access-key'], /unknown command/, /^hint: keysmith list-access-keys$/m],
    [['list-access-keys', '--jsn'], /unknown option '--jsn'/, /^hint: keysmith list-access-keys --json$/m],
    [['create-access-key', '--cont', '2'], /unknown option '--cont'/, /^hint: keysmith create-access-key .*--count/m],
    [['set-password', 'alice', '--password-stdn'], /unknown option/, /^hint: keysmith set-password alice --password-stdin$/m],
  ])('%j exits 2 and suggests the closest as a hint', async (args, error, suggestion) => {
    const r = await ks(args);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(errorLine(r.stderr)).toMatch(error);
    expect(r.stderr).toMatch(suggestion);
  });
});

describe('bad input: exit 2, one error line with file and line, file unchanged', () => {
  const bad: Array<[string, number, RegExp]> = [
    ['bad-no-colon.keychain', 2, /expected "ID:hash", found no ":"/],
    ['bad-empty-id.keychain', 2, /empty ID/],
    ['bad-id-space.keychain', 2, /ID "BB BB" contains whitespace/],
    ['bad-id-colon.keychain', 2, /unrecognised password hash .*for ID user$/],
    ['bad-empty-hash.keychain', 2, /empty hash for ID BBBB/],
    ['bad-duplicate-id.keychain', 3, /duplicate ID AAAA \(first on line 1\)/],
    ['bad-malformed-bcrypt.keychain', 2, /malformed bcrypt hash/],
    ['bad-malformed-apr1.htpasswd', 1, /malformed \$apr1\$ hash/],
    ['bad-unknown-hash.keychain', 2, /unrecognised password hash/],
    ['bad-2x.keychain', 2, /unsupported bcrypt variant \$2x\$/],
    ['bad-cost.keychain', 2, /bcrypt cost 3 out of range/],
    ['bad-bom.keychain', 1, /byte-order mark/],
    ['bad-binary.keychain', 2, /not UTF-8 text/],
    ['bad-nul.keychain', 2, /NUL byte/],
    ['bad-indented-comment.keychain', 4, /found no ":"/],
  ];

  it('every bad-* fixture is covered here', () => {
    const files = readdirSync(FIXTURES).filter((n) => n.startsWith('bad-')).sort();
    expect(files).toEqual(bad.map(([name]) => name).sort());
  });

  const commands = KEYCHAIN_COMMANDS;

  describe.each(bad)('%s', (name, line, message) => {
    it.each(commands)('%s', async (_label, args, input) => {
      const keychain = fixture(name);
      const before = readFileSync(keychain);
      const r = await ks([...args, '-k', keychain], { input });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      const error = errorLine(r.stderr);
      expect(error).toContain(`${keychain} line ${line}: `);
      expect(error).toMatch(message);
      expect(r.stderr).toBe(`${error}\n`);
      expect(readFileSync(keychain).equals(before)).toBe(true);
      expect(leftovers(keychain)).toEqual([]);
    });
  });

  it.each(commands)('a directory as keychain: %s', async (_label, args, input) => {
    const dir = join(freshDir(), 'keychain-dir');
    mkdirSync(dir);
    const r = await ks([...args, '-k', dir], { input });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(errorLine(r.stderr)).toBe(`error: keychain ${dir} is a directory, expected a file`);
    expect(readdirSync(dir)).toEqual([]);
    expect(readdirSync(join(dir, '..'))).toEqual(['keychain-dir']);
  });

  // As root (the usual container), chmod 000 does not stop reads, so this runs only for other users.
  it.skipIf(isRoot)(`an unreadable keychain${isRoot ? ' (skipped: root reads any file)' : ''}`, async () => {
    const keychain = fixture('wave.keychain');
    chmodSync(keychain, 0);
    for (const [, args, input] of commands) {
      const r = await ks([...args, '-k', keychain], { input });
      expect(r.exitCode).toBe(2);
      expect(errorLine(r.stderr)).toBe(`error: cannot access keychain ${keychain}: permission denied`);
    }
  });

  it('secrets over 72 bytes are refused, not truncated', async () => {
    const keychain = join(freshDir(), 'keys');
    const { id } = parseKeyLines((await ks(['create-access-key', '-k', keychain, '--cost', '4'])).stdout);
    const before = readFileSync(keychain);
    const long = 'a'.repeat(73);
    const multiByte = 'é'.repeat(37); // 37 characters, 74 bytes
    for (const options of [{ input: long }, { input: multiByte + '\n' }, { env: { H2O_WAVE_ACCESS_KEY_SECRET: long } }]) {
      const r = await ks(['verify-access-key', '-k', keychain, id], options);
      expect(r.exitCode).toBe(2);
      expect(errorLine(r.stderr)).toMatch(/is (73|74) bytes long; bcrypt uses only the first 72/);
    }
    for (const input of [long, multiByte]) {
      const r = await ks(['set-password', '-k', keychain, 'alice', '--password-stdin', '--cost', '4'], { input });
      expect(r.exitCode).toBe(2);
      expect(errorLine(r.stderr)).toMatch(/the password is (73|74) bytes long/);
    }
    expect(readFileSync(keychain).equals(before)).toBe(true);
    // 72 bytes are fine.
    expectOk(await ks(['set-password', '-k', keychain, 'alice', '--password-stdin', '--cost', '4'], { input: 'é'.repeat(36) }));
    expect(await verifies(keychain, 'alice', 'é'.repeat(36))).toBe(true);
  });

  it.each([
    [['create-access-key', '--frobnicate']],
    [['list-access-keys', '-x']],
    [['remove-access-key', 'AAAA', '--force']],
    [['create-access-key', '--cost', '3']],
    [['create-access-key', '--cost', '32']],
    [['create-access-key', '--cost', 'high']],
    [['rotate-access-key', 'AAAA', '--cost', '3']],
    [['rotate-access-key', 'AAAA', '--cost', '32']],
    [['set-password', 'alice', '--password-stdin', '--cost', '3']],
    [['set-password', 'alice', '--password-stdin', '--cost', '32']],
  ])('%j exits 2 with one error line and leaves the file alone', async (args) => {
    const keychain = fixture('wave.keychain');
    const before = readFileSync(keychain);
    const r = await ks([...args, '-k', keychain], { input: 'pw\n' });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    const error = errorLine(r.stderr);
    if (args.includes('--cost') && !args.includes('--frobnicate')) expect(error).toMatch(/--cost must be a whole number from 4 to 31/);
    expect(readFileSync(keychain).equals(before)).toBe(true);
    expect(leftovers(keychain)).toEqual([]);
  });
});
