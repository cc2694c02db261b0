/**
 * The device-flow polling loop (src/tokens/flows/device.ts) with a fake clock: intervals,
 * slow_down, expiry, denial, cancellation and what the user sees.
 */
import { describe, expect, it } from 'vitest';
import { KeysmithError } from '../src/io/errors.js';
import { runDeviceFlow, type DeviceCodes, type DeviceFlowClock, type PollOutcome } from '../src/tokens/flows/device.js';
import { fakeCtx } from './helpers/ctx.js';

const CODES: DeviceCodes = { verificationUri: 'https://id.example/device', userCode: 'WDJB-MJHT', expiresIn: 600, interval: 5 };

/** A clock whose sleeps return at once and move time forward; records every wait. */
function fakeClock() {
  let now = 1_000_000;
  const sleeps: number[] = [];
  const clock: DeviceFlowClock = {
    now: () => now,
    sleep: async (ms, signal) => {
      if (signal.aborted) throw signal.reason;
      sleeps.push(ms);
      now += ms;
    },
  };
  return { clock, sleeps, now: () => now };
}

/** A poll function that answers from a script (the last answer repeats) and records poll times. */
function scripted<T>(clock: DeviceFlowClock, answers: Array<PollOutcome<T>>) {
  const times: number[] = [];
  const start = clock.now();
  const poll = async () => {
    times.push(clock.now() - start);
    return answers[Math.min(times.length - 1, answers.length - 1)]!;
  };
  return { poll, times };
}

const pending = { status: 'pending' } as const;
const approved = { status: 'approved', value: 'tokens' } as const;

async function failure(promise: Promise<unknown>): Promise<KeysmithError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KeysmithError) return err;
    throw err;
  }
  throw new Error('expected the flow to fail');
}

describe('device flow polling', () => {
  it('waits the interval before every poll and returns what the approved poll gave', async () => {
    const { ctx } = fakeCtx();
    const { clock, sleeps } = fakeClock();
    const { poll, times } = scripted(clock, [pending, pending, approved]);
    await expect(runDeviceFlow(ctx, CODES, poll, { clock })).resolves.toBe('tokens');
    expect(sleeps).toEqual([5000, 5000, 5000]);
    expect(times).toEqual([5000, 10000, 15000]);
  });

  it('uses 5 s when the server gives no interval (RFC 8628 §3.2)', async () => {
    const { ctx } = fakeCtx();
    const { clock, sleeps } = fakeClock();
    const { poll } = scripted(clock, [pending, approved]);
    await runDeviceFlow(ctx, { ...CODES, interval: undefined }, poll, { clock });
    expect(sleeps).toEqual([5000, 5000]);
  });

  it('adds 5 s to the interval for every slow_down, for all later polls', async () => {
    const { ctx, stderr } = fakeCtx();
    const { clock, sleeps } = fakeClock();
    const { poll } = scripted(clock, [pending, { status: 'slow_down' }, pending, { status: 'slow_down' }, pending, approved]);
    await runDeviceFlow(ctx, { ...CODES, interval: 2 }, poll, { clock });
    expect(sleeps).toEqual([2000, 2000, 7000, 7000, 12000, 12000]);
    expect(stderr()).toContain('now every 7 s');
    expect(stderr()).toContain('now every 12 s');
  });

  it('stops on expired_token with one line telling the user to start again', async () => {
    const { ctx } = fakeCtx();
    const { clock } = fakeClock();
    const { poll, times } = scripted(clock, [pending, { status: 'expired' }]);
    const err = await failure(runDeviceFlow(ctx, CODES, poll, { clock }));
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/code expired before the login was approved/);
    expect(err.hint).toMatch(/login again/);
    expect(times).toHaveLength(2);
  });

  it('stops on access_denied with the server\'s reason', async () => {
    const { ctx } = fakeCtx();
    const { clock } = fakeClock();
    const { poll } = scripted(clock, [pending, { status: 'denied', reason: 'End-User aborted interaction' }]);
    const err = await failure(runDeviceFlow(ctx, CODES, poll, { clock }));
    expect(err.message).toBe('the login was denied: End-User aborted interaction');
    expect(err.exitCode).toBe(1);
  });

  it('never polls after the codes have expired', async () => {
    const { ctx } = fakeCtx();
    const { clock, sleeps } = fakeClock();
    const { poll, times } = scripted(clock, [pending]);
    const err = await failure(runDeviceFlow(ctx, { ...CODES, expiresIn: 12, interval: 5 }, poll, { clock }));
    expect(err.message).toMatch(/expired/);
    expect(times).toEqual([5000, 10000]);
    expect(sleeps).toEqual([5000, 5000, 2000]);
  });

  it('passes errors of a poll through unchanged', async () => {
    const { ctx } = fakeCtx();
    const { clock } = fakeClock();
    const boom = new KeysmithError('login failed: id.example answered 500: Internal Server Error');
    await expect(runDeviceFlow(ctx, CODES, async () => Promise.reject(boom), { clock })).rejects.toBe(boom);
  });

  it('Ctrl-C (ctx.onInterrupt) cancels with exit code 130 and stops listening', async () => {
    let interrupt: (() => void) | undefined;
    let listening = false;
    const base = fakeCtx();
    const ctx = {
      ...base.ctx,
      onInterrupt: (handler: () => void) => {
        interrupt = handler;
        listening = true;
        return () => void (listening = false);
      },
    };
    const { clock } = fakeClock();
    let polls = 0;
    const poll = async (): Promise<PollOutcome<string>> => {
      if (++polls === 2) interrupt!();
      return pending;
    };
    const err = await failure(runDeviceFlow(ctx, CODES, poll, { clock }));
    expect(err.message).toBe('cancelled');
    expect(err.exitCode).toBe(130);
    expect(polls).toBe(2);
    expect(listening).toBe(false);
  });

  it('an aborted signal cancels a poll in flight', async () => {
    const { ctx } = fakeCtx();
    const { clock } = fakeClock();
    const controller = new AbortController();
    const poll = (signal: AbortSignal) =>
      new Promise<PollOutcome<string>>((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(new KeysmithError('id.example: no answer within 30 s')));
        controller.abort();
      });
    const err = await failure(runDeviceFlow(ctx, CODES, poll, { clock, signal: controller.signal }));
    expect(err.exitCode).toBe(130);
  });
});

describe('device flow display', () => {
  it('shows the address and code on stderr, plain and without a QR code when stderr is not a terminal', async () => {
    const { ctx, stderr, stdout } = fakeCtx();
    const { clock } = fakeClock();
    const complete = `${CODES.verificationUri}?user_code=WDJB-MJHT`;
    await runDeviceFlow(ctx, { ...CODES, verificationUriComplete: complete }, scripted(clock, [approved]).poll, { clock });
    expect(stdout()).toBe('');
    expect(stderr()).toContain('  https://id.example/device\n');
    expect(stderr()).toContain('  WDJB-MJHT\n');
    expect(stderr()).toContain(`  ${complete}\n`);
    expect(stderr()).toMatch(/Waiting for the login to be approved \(the code expires in 10 min/);
    expect(stderr()).not.toMatch(/[█▀▄\r\x1b]/);
    expect(stderr()).not.toContain('{');
  });

  it('--json writes exactly one JSON line with the codes', async () => {
    const { ctx, stderr } = fakeCtx();
    const { clock } = fakeClock();
    await runDeviceFlow(ctx, CODES, scripted(clock, [approved]).poll, { clock, json: true });
    const lines = stderr().split('\n').filter((l) => l.startsWith('{'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      verification_uri: 'https://id.example/device',
      verification_uri_complete: null,
      user_code: 'WDJB-MJHT',
      expires_in: 600,
    });
  });

  it('on a terminal draws a QR code of the address and a countdown, and clears the line at the end', async () => {
    const { ctx, stderr } = fakeCtx({ tty: true });
    const { clock } = fakeClock();
    await runDeviceFlow(ctx, CODES, scripted(clock, [pending, approved]).poll, { clock });
    expect(stderr()).toMatch(/[█▀▄]{10}/);
    expect(stderr()).toMatch(/Waiting for the login to be approved\.\.\. 10:00 left/);
    expect(stderr().endsWith('\r\x1b[2K')).toBe(true);
  });

  it('--no-qr leaves the QR code out on a terminal', async () => {
    const { ctx, stderr } = fakeCtx({ tty: true });
    const { clock } = fakeClock();
    await runDeviceFlow(ctx, CODES, scripted(clock, [approved]).poll, { clock, qr: false });
    expect(stderr()).not.toMatch(/[█▀▄]/);
  });
});

describe('device flow wire formats of Tiled and /authorize servers', () => {
  /** A fetch that answers each request from a list of [method+path, status, body], in order. */
  function scriptedFetch(answers: Array<[string, number, unknown]>) {
    const seen: string[] = [];
    const hosts = new Set<string>();
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(String(input));
      const key = `${init?.method ?? 'GET'} ${url.pathname}`;
      seen.push(`${key} ${typeof init?.body === 'string' ? init.body : ''}`.trim());
      hosts.add(url.host);
      const next = answers.find(([k]) => k === key);
      if (!next) return new Response('{"detail":"Not Found"}', { status: 404, headers: { 'content-type': 'application/json' } });
      if (answers.filter(([k]) => k === key).length > 1) answers.splice(answers.indexOf(next), 1);
      return new Response(JSON.stringify(next[2]), { status: next[1], headers: { 'content-type': 'application/json' } });
    }) as typeof fetch;
    return { fetchFn, seen, hosts };
  }

  const start = { authorization_uri: 'https://idp.example/auth?x=1', verification_uri: 'http://t.example/api/v1/auth/provider/orcid/token', interval: 0.01, device_code: 'ab12', expires_in: 900.0, user_code: 'ABCD-1234' };
  const tiledAbout = { authentication: { providers: [{ provider: 'orcid', mode: 'external', links: { auth_endpoint: 'http://t.example/api/v1/auth/provider/orcid/authorize' } }], links: {} } };

  async function tiledLogin(pollAnswers: Array<[number, unknown]>) {
    const { tiled } = await import('../src/tokens/dialects/tiled.js');
    const { fetchFn, seen } = scriptedFetch([
      ['GET /api/v1/', 200, tiledAbout],
      ['POST /api/v1/auth/provider/orcid/authorize', 200, start],
      ...pollAnswers.map(([status, body]): [string, number, unknown] => ['POST /api/v1/auth/provider/orcid/token', status, body]),
    ]);
    const { ctx, stderr } = fakeCtx();
    const profile = { name: 't', url: 'http://t.example', dialect: 'tiled' as const, provider: 'orcid' };
    const login = tiled.login({ ctx, fetch: fetchFn, http: {} }, { profile, credentials: async () => Promise.reject(new Error('no password')) });
    return { login, seen, stderr, profile };
  }

  it('Tiled: polls verification_uri with JSON {device_code, grant_type}; 400 authorization_pending is pending', async () => {
    const tokens = { access_token: 'a.b.c', expires_in: 900.0, refresh_token: 'r', token_type: 'bearer', identity: { id: 'erin', provider: 'orcid' } };
    const { login, seen, stderr, profile } = await tiledLogin([[400, { detail: { error: 'authorization_pending' } }], [200, tokens]]);
    const { session, settings } = await login;
    expect(session.accessToken).toBe('a.b.c');
    // The dialect returns what it learned and leaves the profile it was given alone.
    expect(settings).toMatchObject({ username: 'erin', flow: 'device', provider: 'orcid' });
    expect(profile).toEqual({ name: 't', url: 'http://t.example', dialect: 'tiled', provider: 'orcid' });
    expect(seen.filter((s) => s.startsWith('POST /api/v1/auth/provider/orcid/token'))).toEqual([
      'POST /api/v1/auth/provider/orcid/token {"device_code":"ab12","grant_type":"urn:ietf:params:oauth:grant-type:device_code"}',
      'POST /api/v1/auth/provider/orcid/token {"device_code":"ab12","grant_type":"urn:ietf:params:oauth:grant-type:device_code"}',
    ]);
    expect(stderr()).toContain('  https://idp.example/auth?x=1\n');
  });

  it('Tiled: 404 "No such device_code" is an expired code; another 404 is an error', async () => {
    const expired = await tiledLogin([[404, { detail: 'No such device_code. The pending request may have expired.' }]]);
    await expect(expired.login).rejects.toThrow(/code expired before the login was approved/);
    const other = await tiledLogin([[401, { detail: 'Invalid device code' }]]);
    await expect(other.login).rejects.toThrow(/login failed: t\.example answered 401: Invalid device code/);
  });

  it('basic-login: polls POST /token with form device_code; 401 pending, then 401 unrecognized device code is expiry', async () => {
    const { basicLogin } = await import('../src/tokens/dialects/basic-login.js');
    const { fetchFn, seen, hosts } = scriptedFetch([
      ['POST /authorize', 200, { ...start, verification_uri: 'http://localhost:8000/token', user_code: 'ABCD1234' }],
      ['POST /token', 401, { error: 'pending' }],
      ['POST /token', 401, { error: 'unrecognized device code -- maybe expired' }],
    ]);
    const { ctx } = fakeCtx();
    const profile = { name: 'b', url: 'http://b.example:9000', dialect: 'basic-login' as const, flow: 'device' };
    const login = basicLogin.login({ ctx, fetch: fetchFn, http: {} }, { profile, credentials: async () => Promise.reject(new Error('no password')) });
    await expect(login).rejects.toThrow(/code expired/);
    // Polls go to the server we logged in to, not to the hard-coded localhost:8000 of the answer.
    expect(seen.slice(1)).toEqual(['POST /token device_code=ab12', 'POST /token device_code=ab12']);
    expect([...hosts]).toEqual(['b.example:9000']);
  });
});
