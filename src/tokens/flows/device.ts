/**
 * The device authorization flow (RFC 8628) as the user sees it, shared by every dialect that has
 * one: show where to go and which code to enter (a QR code of it on a terminal), then poll until
 * the user approves, honouring the server's interval and `slow_down`, and stop cleanly on
 * `expired_token`, `access_denied` and Ctrl-C. Each dialect brings its own wire format as a
 * `poll` function; the clock is injectable so the loop is tested without waiting.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Ctx } from '../../io/context.js';
import { KeysmithError } from '../../io/errors.js';
import { printable } from '../../io/escape.js';
import type { DialectEnv } from '../dialect.js';
import { describeBody, secondsOf } from '../dialect.js';
import { httpError, request } from '../http.js';

/** What the user needs to approve the login, whatever the server called the fields. */
export interface DeviceCodes {
  /** The page the user opens (RFC 8628 `verification_uri`; Tiled and /authorize: `authorization_uri`). */
  verificationUri: string;
  /** The page with the code already filled in, when the server gives one. */
  verificationUriComplete?: string;
  userCode: string;
  /** Seconds until the codes expire, as the server said it (checked by codeLifetime). */
  expiresIn?: unknown;
  /** Seconds to wait between polls, as the server said it (checked by pollInterval). */
  interval?: unknown;
}

/** One poll's answer, in RFC 8628 terms. */
export type PollOutcome<T> =
  | { status: 'approved'; value: T }
  | { status: 'pending' }
  | { status: 'slow_down' }
  | { status: 'expired' }
  | { status: 'denied'; reason?: string };

export interface DeviceFlowClock {
  now(): number;
  /** Wait `ms`; reject when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface DeviceFlowOptions {
  /** Draw a QR code of the address on a terminal (default true; `--no-qr`). */
  qr?: boolean;
  /** Also write the codes to stderr as one JSON line (`--json`), for tools that drive keysmith. */
  json?: boolean;
  clock?: DeviceFlowClock;
  /** Cancels the flow (Ctrl-C arrives through ctx.onInterrupt as well). */
  signal?: AbortSignal;
}

/** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default." */
export const DEFAULT_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: a `slow_down` answer adds 5 seconds to the interval for all later polls. */
export const SLOW_DOWN_SECONDS = 5;
/** When a server does not say how long its codes live (auth-adventures: 900 s). */
export const DEFAULT_EXPIRES_SECONDS = 900;

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

function systemClock(ctx: Ctx): DeviceFlowClock {
  return { now: () => ctx.now(), sleep: (ms, signal) => delay(ms, undefined, { signal }) };
}

/** Polls never come faster than this, whatever the server says (an `interval` of 0 would spin). */
export const MIN_INTERVAL_SECONDS = 1;
/** Nor slower: a huge `interval` would leave the user waiting on a code that has long expired. */
export const MAX_INTERVAL_SECONDS = 60;
/** Codes are for a person at a browser: an hour is plenty, and a longer wait is a bug or a trap. */
export const MAX_EXPIRES_SECONDS = 3600;

/** The polling interval: the server's, kept within [1 s, 60 s]; 5 s when it gives none. */
export function pollInterval(value: unknown): number {
  const n = secondsOf(value);
  return n === undefined ? DEFAULT_INTERVAL_SECONDS : Math.min(MAX_INTERVAL_SECONDS, Math.max(MIN_INTERVAL_SECONDS, n));
}

/** How long the codes live: the server's positive value, at most an hour; 900 s when it gives none. */
export function codeLifetime(value: unknown): number {
  const n = secondsOf(value);
  return n === undefined || n <= 0 ? DEFAULT_EXPIRES_SECONDS : Math.min(MAX_EXPIRES_SECONDS, n);
}

/**
 * Show the codes, then poll until the login is approved; returns what `poll` returned then.
 * Polls never come faster than the interval (plus 5 s per `slow_down`), and never after the
 * codes have expired. Nothing runs between polls but a timer (and the spinner on a terminal).
 */
export async function runDeviceFlow<T>(
  ctx: Ctx,
  codes: DeviceCodes,
  poll: (signal: AbortSignal) => Promise<PollOutcome<T>>,
  options: DeviceFlowOptions = {},
): Promise<T> {
  const clock = options.clock ?? systemClock(ctx);
  let interval = pollInterval(codes.interval);
  const expiresIn = codeLifetime(codes.expiresIn);
  const deadline = clock.now() + expiresIn * 1000;

  const controller = new AbortController();
  const cancel = () => controller.abort();
  options.signal?.addEventListener('abort', cancel, { once: true });
  if (options.signal?.aborted) cancel();
  const stopListening = ctx.onInterrupt?.(cancel);
  const signal = controller.signal;

  await announce(ctx, codes, expiresIn, options);
  const status = statusLine(ctx, clock, deadline);
  try {
    for (;;) {
      const left = deadline - clock.now();
      if (left <= 0) throw expired(expiresIn);
      await clock.sleep(Math.min(interval * 1000, left), signal);
      if (clock.now() >= deadline) throw expired(expiresIn);
      const outcome = await poll(signal);
      switch (outcome.status) {
        case 'approved':
          return outcome.value;
        case 'pending':
          break;
        case 'slow_down':
          interval += SLOW_DOWN_SECONDS;
          status.note(`The server asked keysmith to poll less often: now every ${interval} s.`);
          break;
        case 'expired':
          throw expired(expiresIn);
        case 'denied':
          throw new KeysmithError(`the login was denied${outcome.reason ? `: ${printable(outcome.reason, 300)}` : ''}`, 1, 'run keysmith login again to start over');
      }
    }
  } catch (err) {
    // Ctrl-C: whatever was in flight (a sleep, a poll's request) failed because we aborted it.
    if (signal.aborted) throw new KeysmithError('cancelled', 130);
    throw err;
  } finally {
    status.stop();
    stopListening?.();
    options.signal?.removeEventListener('abort', cancel);
  }
}

function expired(expiresIn: number): KeysmithError {
  const after = expiresIn >= 120 ? `${Math.round(expiresIn / 60)} min` : `${Math.round(expiresIn)} s`;
  return new KeysmithError(`the code expired before the login was approved (it was valid for ${after})`, 1, 'run keysmith login again for a new code');
}

/** Tell the user where to go: plain lines, a QR code on a terminal, and the JSON line for tools. */
async function announce(ctx: Ctx, codes: DeviceCodes, expiresIn: number, options: DeviceFlowOptions): Promise<void> {
  // The server chose these: shown escaped, so they cannot move the cursor or hide text.
  const lines = ['To log in, open this address in a browser:', `  ${printable(codes.verificationUri, 500)}`, 'and enter the code:', `  ${printable(codes.userCode, 100)}`];
  if (codes.verificationUriComplete) lines.push('or open this address, which carries the code:', `  ${printable(codes.verificationUriComplete, 500)}`);
  ctx.stderr.write(lines.join('\n') + '\n');
  if (ctx.isTTY.stderr && options.qr !== false) {
    ctx.stderr.write((await qrCode(codes.verificationUriComplete ?? codes.verificationUri)) + '\n');
  }
  if (options.json) {
    ctx.stderr.write(
      JSON.stringify({
        verification_uri: codes.verificationUri,
        verification_uri_complete: codes.verificationUriComplete ?? null,
        user_code: codes.userCode,
        expires_in: Math.round(expiresIn),
      }) + '\n',
    );
  }
}

async function qrCode(text: string): Promise<string> {
  const mod = await import('qrcode-terminal');
  const qrcode = (mod as unknown as { default?: typeof mod }).default ?? mod;
  let drawn = '';
  qrcode.generate(text, { small: true }, (out: string) => (drawn = out));
  return drawn;
}

interface StatusLine {
  /** A message between polls (on a terminal, above the spinner). */
  note(message: string): void;
  stop(): void;
}

/**
 * On a terminal: a spinner with the time left, redrawn by a timer. Otherwise one plain line
 * now and one per note, so logs stay readable.
 */
function statusLine(ctx: Ctx, clock: DeviceFlowClock, deadline: number): StatusLine {
  if (!ctx.isTTY.stderr) {
    const minutes = Math.max(1, Math.round((deadline - clock.now()) / 60_000));
    ctx.stderr.write(`Waiting for the login to be approved (the code expires in ${minutes} min; Ctrl-C to cancel)...\n`);
    return { note: (message) => ctx.stderr.write(message + '\n'), stop: () => {} };
  }
  let frame = 0;
  const draw = () => {
    const left = Math.max(0, Math.ceil((deadline - clock.now()) / 1000));
    const time = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
    ctx.stderr.write(`\r\x1b[2K${SPINNER[frame++ % SPINNER.length]} Waiting for the login to be approved... ${time} left (Ctrl-C to cancel)`);
  };
  draw();
  const timer = setInterval(draw, 100);
  timer.unref();
  return {
    note: (message) => {
      ctx.stderr.write(`\r\x1b[2K${message}\n`);
      draw();
    },
    stop: () => {
      clearInterval(timer);
      ctx.stderr.write('\r\x1b[2K');
    },
  };
}

/** A device flow started at an `/authorize` endpoint (Tiled external providers, auth-adventures). */
export interface AuthorizeStart {
  codes: DeviceCodes;
  deviceCode: string;
  /** The server's `verification_uri`, which (despite its name) is where the client polls. */
  pollUrl?: string;
}

/**
 * POST {url} with no body → {authorization_uri, verification_uri, device_code, user_code,
 * interval?, expires_in?}. The user opens `authorization_uri` and enters `user_code`; the client
 * polls `verification_uri` (wire-reference §1.10 and §2: the names are swapped against RFC 8628).
 */
export async function startAuthorizeFlow(env: DialectEnv, url: string): Promise<AuthorizeStart> {
  const res = await request(env.fetch, url, { method: 'POST' }, env.http);
  if (res.status !== 200) throw httpError(res, 'device authorization');
  const body = (res.json ?? {}) as Record<string, unknown>;
  const field = (key: string) => (typeof body[key] === 'string' && body[key] !== '' ? (body[key] as string) : undefined);
  const open = field('authorization_uri');
  const deviceCode = field('device_code');
  const userCode = field('user_code');
  if (!open || !deviceCode || !userCode) {
    throw new KeysmithError(`device authorization: expected authorization_uri, device_code and user_code, got ${describeBody(res)}`);
  }
  return {
    codes: { verificationUri: open, userCode, expiresIn: body.expires_in, interval: body.interval },
    deviceCode,
    pollUrl: field('verification_uri'),
  };
}
