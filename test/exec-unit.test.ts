/**
 * `keysmith exec` in-process, with a fake Ctx (test/helpers/ctx.ts) and an injected spawn: the
 * variable table, --env parsing, the refresh schedule, what reaches spawn, exit codes and signals.
 */
import { EventEmitter } from 'node:events';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, variablesFor } from '../src/commands/exec.js';
import type { ChildLike, SpawnOptions } from '../src/io/context.js';
import { ExitCode, KeysmithError, UsageError } from '../src/io/errors.js';
import type { Profile, Session } from '../src/tokens/store.js';
import { msUntilStale, retryDelayMs } from '../src/tokens/token-file.js';
import { fakeCtx } from './helpers/ctx.js';
import { basicCredential, bearerSession, tempRoot, writeProfile, type TempRoot } from './helpers/exec.js';

let root: TempRoot;
beforeAll(() => {
  root = tempRoot('exec-unit');
});
afterAll(() => root?.remove());

const profile = (dialect: Profile['dialect'], extra: Partial<Profile> = {}): Profile => ({ name: 'p', url: 'http://127.0.0.1:9', dialect, ...extra });

describe('variablesFor: one table of defaults, renamed by --env', () => {
  it.each([
    ['tiled', {}, ['KEYSMITH_TOKEN=token', 'KEYSMITH_AUTH_HEADER=header', 'KEYSMITH_TOKEN_FILE=token_file', 'KEYSMITH_PROFILE=profile', 'KEYSMITH_URL=url']],
    ['apikey', {}, ['KEYSMITH_TOKEN=token', 'KEYSMITH_AUTH_HEADER=header', 'KEYSMITH_PROFILE=profile', 'KEYSMITH_URL=url']],
    ['apikey', { apiKey: { in: 'query', name: 'key' } }, ['KEYSMITH_TOKEN=token', 'KEYSMITH_API_KEY_PARAM=param', 'KEYSMITH_PROFILE=profile', 'KEYSMITH_URL=url']],
    ['basic', {}, ['KEYSMITH_USERNAME=username', 'KEYSMITH_PASSWORD=password', 'KEYSMITH_PROFILE=profile', 'KEYSMITH_URL=url']],
    ['digest', {}, ['KEYSMITH_USERNAME=username', 'KEYSMITH_PASSWORD=password', 'KEYSMITH_PROFILE=profile', 'KEYSMITH_URL=url']],
    ['wave', {}, ['H2O_WAVE_ACCESS_KEY_ID=id', 'H2O_WAVE_ACCESS_KEY_SECRET=secret', 'KEYSMITH_PROFILE=profile', 'KEYSMITH_URL=url']],
  ] as const)('%s %j', (dialect, extra, expected) => {
    const vars = variablesFor(profile(dialect, extra as Partial<Profile>), []);
    expect([...vars].map(([k, v]) => `${k}=${v}`)).toEqual(expected);
  });

  it('--env renames: the default name of a mapped field goes, the others stay', () => {
    const vars = variablesFor(profile('tiled'), ['TOKEN=token', 'ALSO=token', 'WHERE=url']);
    expect(Object.fromEntries(vars)).toEqual({ KEYSMITH_AUTH_HEADER: 'header', KEYSMITH_TOKEN_FILE: 'token_file', KEYSMITH_PROFILE: 'profile', TOKEN: 'token', ALSO: 'token', WHERE: 'url' });
  });

  it('a token dialect offers `username` only where the profile knows it', () => {
    expect(() => variablesFor(profile('tiled'), ['U=username'])).toThrow(UsageError);
    expect(variablesFor(profile('tiled', { username: 'alice' }), ['U=username']).get('U')).toBe('username');
  });

  it.each([['=token'], ['A B=token'], ['Ä=token'], ['X=TOKEN'], ['X='], ['X=token_file'], ['X=__proto__']])('refuses %j for a wave profile', (spec) => {
    expect(() => variablesFor(profile('wave'), [spec])).toThrow(UsageError);
  });
});

describe('the refresh schedule', () => {
  const session = (lifetimeMs: number, obtainedAt = 0): Session => ({ accessToken: 't', tokenType: 'bearer', obtainedAt, expiresAt: obtainedAt + lifetimeMs });

  it('wakes when `token --min-ttl` would call the token stale: min-ttl ahead, at most half the lifetime', () => {
    expect(msUntilStale(session(900_000), 0, 60)).toBe(840_000);
    expect(msUntilStale(session(2_000), 0, 60)).toBe(1_000);
    expect(msUntilStale(session(2_000), 1_500, 60)).toBe(-500);
    expect(msUntilStale({ accessToken: 't', tokenType: 'bearer', obtainedAt: 0 }, 0, 60)).toBe(Infinity);
  });

  it('retries 1 s, 2 s, 4 s ... at most 30 s apart, and before a valid token runs out', () => {
    const long = session(3_600_000);
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => retryDelayMs(n, long, 0))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    expect(retryDelayMs(5, session(4_000), 1_000)).toBe(1_500);
    expect(retryDelayMs(1, session(4_000), 3_900)).toBe(500);
    expect(retryDelayMs(9, session(4_000), 10_000)).toBe(30_000); // expired: plain backoff
  });
});

/** A child that exits when told to; records signals it is sent. */
class FakeChild extends EventEmitter implements ChildLike {
  readonly signals: NodeJS.Signals[] = [];
  constructor(readonly pid: number | undefined) {
    super();
  }
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.signals.push(signal);
    return true;
  }
}

function harness(session: Session, dialect: Profile['dialect'] = 'tiled', extra: Partial<Profile> = {}) {
  const home = root.dir('home');
  const tmp = root.dir('tmp');
  writeProfile(home, { ...profile(dialect, extra) }, session);
  const fake = fakeCtx({ env: { HOME: home, TMPDIR: tmp, PATH: '/usr/bin:/bin' } });
  const spawned: Array<{ command: string; args: readonly string[]; options: SpawnOptions; child: FakeChild }> = [];
  let signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  let behaviour: (child: FakeChild) => void = (child) => setImmediate(() => child.emit('exit', 0, null));
  fake.ctx.spawn = (command, args, options) => {
    const child = new FakeChild(behaviour === failing ? undefined : 4242);
    spawned.push({ command, args, options, child });
    behaviour(child);
    return child;
  };
  fake.ctx.onSignal = (_signals, handler) => {
    signalHandler = handler;
    return () => (signalHandler = undefined);
  };
  const failing = (child: FakeChild) => setImmediate(() => child.emit('error', Object.assign(new Error('spawn x ENOENT'), { code: 'ENOENT' })));
  return {
    ctx: fake.ctx,
    fake,
    tmp,
    spawned,
    signal: (s: NodeJS.Signals) => signalHandler?.(s),
    behave: (b: (child: FakeChild) => void) => (behaviour = b),
    failing,
  };
}

describe('run with an injected spawn', () => {
  it('gives the child the variables in its environment, its argv untouched, stdio inherited', async () => {
    const h = harness({ accessToken: basicCredential('ada', 'pw-0123456789'), tokenType: 'basic', obtainedAt: Date.now() }, 'basic');
    await run(['app', '--flag', 'arg'], {}, h.ctx);
    const [s] = h.spawned;
    expect(s!.command).toBe('app');
    expect(s!.args).toEqual(['--flag', 'arg']);
    expect(s!.options.stdio).toBe('inherit');
    expect(s!.options.env).toMatchObject({ PATH: '/usr/bin:/bin', KEYSMITH_USERNAME: 'ada', KEYSMITH_PASSWORD: 'pw-0123456789', KEYSMITH_PROFILE: 'p' });
    expect(h.fake.stdout()).toBe('');
    expect(h.fake.stderr()).toBe('');
  });

  it("ends with the child's code (ExitCode) and 128+N for a signal", async () => {
    const h = harness(bearerSession('tok'));
    h.behave((child) => setImmediate(() => child.emit('exit', 3, null)));
    await expect(run(['x'], {}, h.ctx)).rejects.toEqual(new ExitCode(3));
    h.behave((child) => setImmediate(() => child.emit('exit', null, 'SIGKILL')));
    await expect(run(['x'], {}, h.ctx)).rejects.toMatchObject({ exitCode: 137 });
    expect(readdirSync(h.tmp)).toEqual([]);
  });

  it('127 with one line when the command is not found', async () => {
    const h = harness(bearerSession('tok'));
    h.behave(h.failing);
    const err = await run(['nope'], {}, h.ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeysmithError);
    expect(err).toMatchObject({ exitCode: 127, message: 'nope: command not found' });
    expect(readdirSync(h.tmp)).toEqual([]);
  });

  it('passes SIGTERM and SIGHUP on to the child, which decides how to end', async () => {
    const h = harness(bearerSession('tok'));
    h.behave((child) => {
      setImmediate(() => {
        h.signal('SIGTERM');
        h.signal('SIGHUP');
        child.emit('exit', 7, null);
      });
    });
    await expect(run(['x'], {}, h.ctx)).rejects.toMatchObject({ exitCode: 7 });
    expect(h.spawned[0]!.child.signals).toEqual(['SIGTERM', 'SIGHUP']);
  });

  it('a token with a line break never reaches KEYSMITH_AUTH_HEADER: refused before anything runs', async () => {
    const h = harness(bearerSession('tok\r\nX-Evil: 1'));
    await expect(run(['x'], {}, h.ctx)).rejects.toThrow(/characters a token cannot have/);
    expect(h.spawned).toEqual([]);
  });
});
