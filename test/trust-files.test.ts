/**
 * Issue 10, the file and keychain parts: an empty pipe is no fallback to the environment (item 5),
 * replaced files keep owner, group and mode, FIFOs and devices are errors rather than hangs, and
 * stale temp files go (item 7), new names with control, zero-width or bidi characters are refused
 * (item 9), and an unknown ID's dummy hash has the keychain's most common cost (item 10).
 * End-to-end tests run the built binary; a hang fails through the helper's timeout.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcrypt';
import { execa } from 'execa';
import { describe, expect, it, vi } from 'vitest';
import { run as verifyAccessKey, typicalCost } from '../src/commands/verify-access-key.js';
import { UsageError } from '../src/io/errors.js';
import { removeStaleTemps, writeFileAtomic } from '../src/io/files.js';
import { readSecret, type SecretSource } from '../src/io/input.js';
import { appendEntries, invalidNewIdReason, parseKeychain } from '../src/keychain/format.js';
import { DEFAULT_COST, dummyHash } from '../src/keychain/hashing.js';
import { sessionPath, writeSession, type Session } from '../src/tokens/store.js';
import { fakeCtx } from './helpers/ctx.js';
import { BIN, KEYCHAIN_COMMANDS, cleanEnv, errorLine, keysmith as ks, useScratch, type RunResult } from './helpers/keychain-cli.js';

const isRoot = process.getuid?.() === 0;
/** Why device nodes of our own cannot be made here (unprivileged containers), or undefined. */
const mknodRefused = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-mknod-'));
  try {
    return spawnSync('mknod', [join(dir, 'null'), 'c', '1', '3']).status === 0 ? undefined : 'mknod not allowed here; devices are tested through /dev';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();
const HASH4 = dummyHash(4);
/** Long enough to fail a test on a hang, short enough not to hold CI for long. */
const HANG = 10_000;

const scratch = useScratch('keysmith-trust-');
const freshDir = scratch.fresh;

const statOf = (path: string) => {
  const s = statSync(path);
  return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
};

function expectUsage(r: RunResult): string {
  expect(r.exitCode, `${r.command}\n${r.stderr}`).toBe(2);
  expect(r.stdout).toBe('');
  return errorLine(r.stderr);
}

/** A non-root user and a non-root group from this machine's files (nobody, www-data or nogroup). */
function otherOwner(): { uid: number; gid: number } {
  const field = (file: string, name: string) => readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))?.split(':')[2];
  const uid = Number(field('/etc/passwd', 'nobody') ?? 65534);
  const gid = Number(field('/etc/group', 'www-data') ?? field('/etc/group', 'nogroup') ?? 65534);
  return { uid, gid };
}

/** The PID of a process that has exited (for stale temp files). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

describe('item 5: a piped secret is the only source', () => {
  const secretSource: SecretSource = {
    what: 'secret',
    stdin: 'if-piped',
    envVar: 'SECRET_VAR',
    prompt: 'Secret:',
    howTo: 'pipe it',
  };

  it.each(['', '\n', '\r\n'])('empty piped stdin (%j) is a UsageError, not the environment variable', async (input) => {
    const f = fakeCtx({ stdin: input, env: { SECRET_VAR: 'from-env' } });
    const err = await readSecret(f.ctx, secretSource).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toBe('no secret on standard input (it was empty)');
  });

  it('--*-stdin (always) with an empty pipe is an error even when the variable is set', async () => {
    const f = fakeCtx({ stdin: '', env: { SECRET_VAR: 'from-env' } });
    await expect(readSecret(f.ctx, { ...secretSource, stdin: 'always' })).rejects.toBeInstanceOf(UsageError);
  });

  it('with nothing piped, the environment variable is used as before', async () => {
    const f = fakeCtx({ env: { SECRET_VAR: 'from-env' } });
    expect(await readSecret(f.ctx, secretSource)).toBe('from-env');
    expect(await readSecret(fakeCtx({ stdin: 'piped\n', env: { SECRET_VAR: 'from-env' } }).ctx, secretSource)).toBe('piped');
  });

  it('verify-access-key: `echo -n | H2O_WAVE_ACCESS_KEY_SECRET=right keysmith verify-access-key ID` is exit 2', async () => {
    const dir = freshDir();
    const keychain = join(dir, 'keys');
    const created = await ks(['create-access-key', '-k', keychain, '--cost', '4', '--json']);
    expect(created.exitCode, created.stderr).toBe(0);
    const { id, secret } = JSON.parse(created.stdout) as { id: string; secret: string };
    const env = { H2O_WAVE_ACCESS_KEY_SECRET: secret };
    for (const input of ['', '\n']) {
      const r = await ks(['verify-access-key', '-k', keychain, id], { input, env });
      expect(expectUsage(r)).toBe('error: no secret on standard input (it was empty)');
    }
    // stdin not piped (/dev/null): the variable still works.
    expect((await ks(['verify-access-key', '-k', keychain, id], { env })).exitCode).toBe(0);
  });
});

describe('item 7: replaced files keep owner, group and mode', () => {
  const owner = otherOwner();

  function ownedFile(name: string, text: string): string {
    const path = join(freshDir(), name);
    writeFileSync(path, text);
    chownSync(path, owner.uid, owner.gid);
    chmodSync(path, 0o640);
    return path;
  }

  it.skipIf(!isRoot)('set-password as root keeps a nobody:www-data 0640 htpasswd file as it was', async () => {
    const htpasswd = ownedFile('htpasswd', `bob:${HASH4}\n`);
    const r = await ks(['set-password', '-k', htpasswd, 'alice', '--password-stdin', '--cost', '4'], { input: 'pw\n' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(htpasswd, 'utf8')).toMatch(/^bob:.*\nalice:\$2b\$04\$/);
    expect(statOf(htpasswd)).toEqual({ ...owner, mode: 0o640 });
  });

  it.skipIf(!isRoot)('create-access-key and remove-access-key as root keep the keychain\'s owner and group', async () => {
    const keychain = ownedFile('keychain', `KEEPME:${HASH4}\n`);
    expect((await ks(['create-access-key', '-k', keychain, '--cost', '4'])).exitCode).toBe(0);
    expect(statOf(keychain)).toEqual({ ...owner, mode: 0o640 });
    expect((await ks(['remove-access-key', '-k', keychain, 'KEEPME'])).exitCode).toBe(0);
    expect(statOf(keychain)).toEqual({ ...owner, mode: 0o640 });
  });

  it.skipIf(!isRoot)('rotate-secret as root keeps a YAML file\'s owner and group', async () => {
    const config = ownedFile('config.yml', 'authentication:\n  secret_keys:\n    - "0123456789abcdef0123456789abcdef"\n');
    const r = await ks(['rotate-secret', config]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(config, 'utf8').match(/^ {4}- /gm)).toHaveLength(2);
    expect(statOf(config)).toEqual({ ...owner, mode: 0o640 });
  });

  it.skipIf(!isRoot)('sessions (writeFileAtomic without updateFile) keep their owner too', async () => {
    const ctx = fakeCtx({ env: { XDG_STATE_HOME: freshDir() } }).ctx;
    await writeSession(ctx, 'p', { accessToken: 'one' } as unknown as Session);
    const path = sessionPath(ctx, 'p');
    chownSync(path, owner.uid, owner.gid);
    await writeSession(ctx, 'p', { accessToken: 'two' } as unknown as Session);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ accessToken: 'two' });
    expect(statOf(path)).toEqual({ ...owner, mode: 0o600 });
  });

  it.skipIf(!isRoot)('a user who may not keep the owner gets one line, exit 2, and the file as it was', async () => {
    // root:root 0666 in a world-writable directory: nobody can write it, but cannot give a file to root.
    chmodSync(scratch.root(), 0o755);
    const dir = freshDir();
    chmodSync(dir, 0o777);
    const htpasswd = join(dir, 'htpasswd');
    const before = `bob:${HASH4}\n`;
    writeFileSync(htpasswd, before);
    chmodSync(htpasswd, 0o666);
    const nobody = otherOwner().uid;
    const r = (await execa(process.execPath, [BIN, 'set-password', '-k', htpasswd, 'alice', '--password-stdin', '--cost', '4'], {
      uid: nobody,
      gid: nobody,
      input: 'pw\n',
      env: cleanEnv(),
      extendEnv: false,
      reject: false,
      timeout: HANG,
    })) as unknown as RunResult;
    expect(expectUsage(r)).toBe(`error: cannot replace keychain ${htpasswd} without changing its owner (it belongs to uid 0); nothing was written`);
    expect(r.stderr).toMatch(/^hint: run keysmith as the file's owner or as root$/m);
    expect(readFileSync(htpasswd, 'utf8')).toBe(before);
    expect(statOf(htpasswd)).toEqual({ uid: 0, gid: 0, mode: 0o666 });
    expect(readdirSync(dir)).toEqual(['htpasswd']);
  });

  // Not root: the owner tests above show as skipped, and this says why.
  if (!isRoot) it.skip('owner and group preservation needs root (CI runs as root)', () => {});
});

describe('item 7: a keychain that is not a regular file is an error, not a hang', () => {
  function fifo(name = 'fifo'): string {
    const path = join(freshDir(), name);
    const r = spawnSync('mkfifo', [path]);
    if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
    return path;
  }

  const commands = KEYCHAIN_COMMANDS;

  it.each(commands)('a FIFO: %s', async (_label, args, input) => {
    const path = fifo();
    const r = await ks([...args, '-k', path], { input, timeout: HANG });
    expect(expectUsage(r)).toBe(`error: keychain ${path} is a FIFO (named pipe), expected a regular file`);
    expect(statSync(path).isFIFO()).toBe(true);
    expect(readdirSync(join(path, '..'))).toEqual(['fifo']);
  });

  it.each([
    ['/dev/null', ['list-access-keys']],
    ['/dev/zero', ['list-access-keys']],
    ['/dev/null', ['verify-access-key', 'AAAA']],
  ])('a device, read only: %s %s', async (device, args) => {
    const r = await ks([...args, '-k', device], { input: 'secret\n', timeout: HANG });
    expect(expectUsage(r)).toBe(`error: keychain ${device} is a character device, expected a regular file`);
  });

  it.skipIf(mknodRefused !== undefined).each(commands)(`a device node of our own (like /dev/null)${mknodRefused ? ` (skipped: ${mknodRefused})` : ''}: %s`, async (_label, args, input) => {
    const dir = freshDir();
    const path = join(dir, 'null');
    expect(spawnSync('mknod', [path, 'c', '1', '3']).status).toBe(0);
    const r = await ks([...args, '-k', path], { input, timeout: HANG });
    expect(expectUsage(r)).toBe(`error: keychain ${path} is a character device, expected a regular file`);
    expect(statSync(path).isCharacterDevice()).toBe(true);
    expect(readdirSync(dir)).toEqual(['null']);
  });

  it.each([[[]], [['--dry-run']], [['--print']]])('rotate-secret on a FIFO %j', async (flags) => {
    const path = fifo('config.yml');
    const r = await ks(['rotate-secret', path, ...flags], { timeout: HANG });
    expect(expectUsage(r)).toBe(`error: file ${path} is a FIFO (named pipe), expected a regular file`);
    expect(readdirSync(join(path, '..'))).toEqual(['config.yml']);
  });

  it('rotate-secret on a directory still says so', async () => {
    const dir = join(freshDir(), 'dir.env');
    mkdirSync(dir);
    const r = await ks(['rotate-secret', dir], { timeout: HANG });
    expect(expectUsage(r)).toBe(`error: file ${dir} is a directory, expected a file`);
  });
});

describe('item 7: temp files of killed writers', () => {
  it('writeSession removes dead writers\' temp files of every session in the directory, and no live writer\'s', async () => {
    const ctx = fakeCtx({ env: { XDG_STATE_HOME: freshDir() } }).ctx;
    await writeSession(ctx, 'p', { accessToken: 'one' } as unknown as Session);
    const path = sessionPath(ctx, 'p');
    const dir = join(path, '..');
    const dead = `.p.json.${deadPid()}.1abcdef.tmp`;
    const alive = `.p.json.${process.ppid}.1abcdef.tmp`;
    const other = `.q.json.${deadPid()}.1abcdef.tmp`;
    for (const name of [dead, alive, other]) writeFileSync(join(dir, name), '{"refreshToken":"leaked"}');
    await writeSession(ctx, 'p', { accessToken: 'two' } as unknown as Session);
    expect(readdirSync(dir).sort()).toEqual([alive, 'p.json'].sort());
  });

  it('removeStaleTemps(path) is there for the token code (logout)', async () => {
    const dir = freshDir();
    const path = join(dir, 'x.json');
    const dead = `.x.json.${deadPid()}.0zz.tmp`;
    writeFileSync(join(dir, dead), 'secret');
    await removeStaleTemps(path);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('writeFileAtomic with owner: null creates the file as the writer', async () => {
    const path = join(freshDir(), 'new');
    await writeFileAtomic(path, 'x', 0o600, { owner: null });
    expect(statOf(path).mode).toBe(0o600);
    expect(existsSync(path)).toBe(true);
  });
});

describe('item 9: new names are data', () => {
  const bad: Array<[string, string, string]> = [
    ['a C0 control', 'al\u0001ice', '\\u0001'],
    ['DEL', 'al\u007fice', '\\u007f'],
    ['a C1 control (NEL)', 'al\u0085ice', '\\u0085'],
    ['a C1 control (CSI)', 'al\u009bice', '\\u009b'],
    ['a zero-width space', 'al\u200bice', '\\u200b'],
    ['a zero-width joiner', 'al\u200dice', '\\u200d'],
    ['a word joiner', 'al\u2060ice', '\\u2060'],
    ['a right-to-left override', 'al\u202eice', '\\u202e'],
    ['a left-to-right embedding', 'al\u202aice', '\\u202a'],
    ['a right-to-left isolate', 'al\u2067ice', '\\u2067'],
    ['a pop directional isolate', 'al\u2069ice', '\\u2069'],
    ['a left-to-right mark', 'al\u200eice', '\\u200e'],
    ['a right-to-left mark', 'al\u200fice', '\\u200f'],
    ['an Arabic letter mark', 'al\u061cice', '\\u061c'],
  ];

  it.each(bad)('invalidNewIdReason: %s', (_label, id, escaped) => {
    const reason = invalidNewIdReason(id);
    expect(reason).toContain(escaped);
    expect(reason).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069]/);
  });

  it('ordinary names, non-ASCII letters included, are fine', () => {
    for (const id of ['alice', 'ALICE0123456789', 'jürgen', 'łukasz', 'θ', 'user@example.com']) expect(invalidNewIdReason(id)).toBeUndefined();
  });

  it('appendEntries refuses such an ID whatever made it', () => {
    const keychain = parseKeychain('', 'k');
    expect(() => appendEntries(keychain, [{ id: 'a\u202eb', hash: HASH4 }])).toThrow(UsageError);
    expect(keychain.lines).toEqual([]);
  });

  it.each(bad)('set-password refuses a user name with %s: exit 2, one line, nothing written', async (_label, user, escaped) => {
    const dir = freshDir();
    const htpasswd = join(dir, 'htpasswd');
    const before = `bob:${HASH4}\n`;
    writeFileSync(htpasswd, before);
    const r = await ks(['set-password', '-k', htpasswd, user, '--password-stdin', '--cost', '4'], { input: 'pw\n' });
    const line = expectUsage(r);
    expect(line).toMatch(/^error: invalid user name: /);
    expect(line).toContain(escaped);
    expect(readFileSync(htpasswd, 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['htpasswd']);
  });

  it('an existing file with a zero-width character in an ID is still read', async () => {
    const dir = freshDir();
    const keychain = join(dir, 'keys');
    writeFileSync(keychain, `al\u200bice:${HASH4}\nbob:${HASH4}\n`);
    const r = await ks(['list-access-keys', '-k', keychain]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('al\u200bice\nbob\n');
    // And other changes to it still work.
    expect((await ks(['remove-access-key', '-k', keychain, 'bob'])).exitCode).toBe(0);
    expect(readFileSync(keychain, 'utf8')).toBe(`al\u200bice:${HASH4}\n`);
  });
});

describe('item 10: the dummy hash has the most common cost', () => {
  const line = (id: string, cost: number) => `${id}:${dummyHash(cost)}\n`;

  it('1 entry of cost 4 first, then 3 of cost 5: cost 5', () => {
    const keychain = parseKeychain(line('A', 4) + line('B', 5) + line('C', 5) + line('D', 5), 'k');
    expect(typicalCost(keychain)).toBe(5);
  });

  it('ties go to the higher cost, whatever the order', () => {
    expect(typicalCost(parseKeychain(line('A', 6) + line('B', 4), 'k'))).toBe(6);
    expect(typicalCost(parseKeychain(line('A', 4) + line('B', 6), 'k'))).toBe(6);
  });

  it('non-bcrypt entries do not count; none at all: the default cost', () => {
    const apr1 = 'old:$apr1$salt1234$' + 'a'.repeat(22) + '\n';
    const sha = 'sha:{SHA}' + 'A'.repeat(27) + '=\n';
    expect(typicalCost(parseKeychain('', 'k'))).toBe(DEFAULT_COST);
    expect(typicalCost(parseKeychain(apr1 + sha, 'k'))).toBe(DEFAULT_COST);
    expect(typicalCost(parseKeychain(apr1 + sha + line('A', 5) + '# comment\n', 'k'))).toBe(5);
  });

  it('verify-access-key compares an unknown ID against a hash of that cost', async () => {
    const dir = freshDir();
    const keychain = join(dir, 'keys');
    writeFileSync(keychain, line('AAAA', 4) + line('BBBB', 5) + line('CCCC', 5) + line('DDDD', 5));
    const compare = vi.spyOn(bcrypt, 'compare');
    try {
      const f = fakeCtx({ stdin: 'wrong\n' });
      await expect(verifyAccessKey('UNKNOWN', { keychain }, f.ctx)).rejects.toMatchObject({ exitCode: 1 });
      expect(compare.mock.calls.map((c) => c[1])).toEqual([dummyHash(5)]);
    } finally {
      compare.mockRestore();
    }
  });

  it('stays one cheap pass on 100,000 entries', () => {
    let text = '';
    for (let i = 0; i < 100_000; i++) text += line(`ID${i}`, i % 3 === 0 ? 4 : 5);
    const keychain = parseKeychain(text, 'k');
    expect(typicalCost(keychain)).toBe(5);
  });
});
