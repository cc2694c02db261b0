/**
 * The OS keyring — Secret Service on Linux, Keychain on macOS, Credential Manager on Windows —
 * through @napi-rs/keyring, asked in a short-lived child process that is killed when it does not
 * answer in time. A keyring can block: a locked collection waits on an unlock prompt, a stopped
 * daemon on D-Bus. A native call that blocks cannot be interrupted in-process, and a thread
 * blocked in one (libuv's pool or a worker) even keeps process.exit from returning; a child can
 * always be killed. Secrets travel on the child's stdin and stdout, never in its argv.
 *
 * Nothing here is loaded by the cached `token` path: only reading or writing a secret kept in the
 * keyring comes here (src/tokens/secret-store.ts decides when).
 */
import { isAbsolute } from 'node:path';
import type { Ctx } from '../io/context.js';
import { KeysmithError } from '../io/errors.js';

export type KeyringOp = { op: 'get'; account: string } | { op: 'set'; account: string; value: string } | { op: 'delete'; account: string };

/** get: the value or null; set: true; delete: whether there was an entry. */
export type KeyringResult = string | boolean | null;

/**
 * Why the keyring could not be used: `absent` (no keyring service answers: no D-Bus session, no
 * Secret Service, no native module for this platform), `locked` (present but locked, or the
 * unlock prompt was dismissed), `timeout` (no answer within the bound), `refused` (anything else).
 */
export type KeyringFailure = 'absent' | 'locked' | 'timeout' | 'refused';

export class KeyringError extends KeysmithError {
  readonly kind: KeyringFailure;
  /** The keyring's own words, one line (already in `message`). */
  readonly detail: string;
  constructor(kind: KeyringFailure, detail: string, hint?: string) {
    super(`${describeFailure(kind)}${detail ? ` (${detail})` : ''}`, 1, hint);
    this.name = 'KeyringError';
    this.kind = kind;
    this.detail = detail;
  }
}

export function describeFailure(kind: KeyringFailure): string {
  switch (kind) {
    case 'absent':
      return 'no OS keyring answers';
    case 'locked':
      return 'the OS keyring is locked';
    case 'timeout':
      return 'the OS keyring did not answer in time';
    case 'refused':
      return 'the OS keyring refused';
  }
}

/** Every keyring entry of keysmith's is under this service name. */
export const KEYRING_SERVICE = 'keysmith';

/** How long a keyring may take to answer, in seconds: $KEYSMITH_KEYRING_TIMEOUT, else 5. */
export function keyringTimeoutMs(ctx: Ctx): number {
  const raw = ctx.env.KEYSMITH_KEYRING_TIMEOUT;
  const n = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 600) * 1000 : 5_000;
}

/**
 * Linux without a session bus (no $DBUS_SESSION_BUS_ADDRESS and no $XDG_RUNTIME_DIR/bus: a
 * server, a container, CI) has no Secret Service to ask: known without starting a child.
 */
async function noSessionBus(ctx: Ctx): Promise<boolean> {
  if (process.platform !== 'linux' || ctx.env.DBUS_SESSION_BUS_ADDRESS) return false;
  const runtime = ctx.env.XDG_RUNTIME_DIR;
  if (!runtime || !runtime.startsWith('/')) return true;
  const { promises: fsp } = await import('node:fs');
  try {
    return !(await fsp.stat(`${runtime}/bus`)).isSocket();
  } catch {
    return true;
  }
}

/**
 * The child: reads {module, service, ops} as JSON on stdin, runs the ops in order with the
 * synchronous API, writes {results} or {error, done} as JSON on stdout. On Linux the entries are
 * pinned to the Secret Service: the kernel keyring (the library's fallback) forgets them at logout.
 */
const CHILD = `
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const { module, service, ops } = JSON.parse(input);
  const results = [];
  let out;
  try {
    const { Entry } = require(module);
    for (const o of ops) {
      const entry = new Entry(service, o.account, { linux: { store: 'secret-service' } });
      if (o.op === 'get') results.push(entry.getPassword() ?? null);
      else if (o.op === 'set') { entry.setPassword(o.value); results.push(true); }
      else results.push(entry.deleteCredential());
    }
    out = { results };
  } catch (err) {
    out = { error: String((err && err.message) || err), code: err && err.code, done: results.length };
  }
  process.stdout.write(JSON.stringify(out));
});
`;

/** Where the child finds @napi-rs/keyring: next to the bundle (CommonJS) or from the working directory. */
function modulePath(): string {
  try {
    return typeof require === 'function' ? require.resolve('@napi-rs/keyring') : '@napi-rs/keyring';
  } catch {
    return '@napi-rs/keyring';
  }
}

/** Sort the library's error text into a kind the caller can act on. */
export function classify(message: string): KeyringFailure {
  if (/autolaunch|Failed to connect to socket|DBUS_SESSION_BUS_ADDRESS|not provided by any \.service files|ServiceUnknown|Cannot find module|Could not connect/i.test(message)) return 'absent';
  if (/Couldn't access platform storage|NoStorageAccess|locked|prompt was dismissed|dismissed/i.test(message)) return 'locked';
  return 'refused';
}

/**
 * Run `ops` against the OS keyring in one child process, bounded by keyringTimeoutMs. Resolves
 * with one result per op; rejects with a KeyringError when the keyring is absent, locked,
 * refusing or silent (the child is killed then).
 */
export async function keyringOps(ctx: Ctx, ops: KeyringOp[], service = KEYRING_SERVICE): Promise<KeyringResult[]> {
  if (ops.length === 0) return [];
  if (await noSessionBus(ctx)) throw new KeyringError('absent', 'no D-Bus session: $DBUS_SESSION_BUS_ADDRESS is not set');
  const { spawn } = await import('node:child_process');
  const timeoutMs = keyringTimeoutMs(ctx);
  const module = modulePath();
  return new Promise<KeyringResult[]>((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD], {
      env: ctx.env as NodeJS.ProcessEnv,
      ...(!isAbsolute(module) && { cwd: ctx.cwd }),
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(() => reject(new KeyringError('timeout', `no answer within ${timeoutMs / 1000} s`, 'unlock the keyring, or raise $KEYSMITH_KEYRING_TIMEOUT (seconds)')));
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => finish(() => reject(new KeyringError('refused', `cannot start the keyring helper: ${err.message}`))));
    child.stdin.on('error', () => {}); // a child that died early: its exit says why
    child.on('close', (code, signal) => {
      finish(() => {
        let answer: { results?: KeyringResult[]; error?: string } | undefined;
        try {
          answer = JSON.parse(stdout) as typeof answer;
        } catch {
          answer = undefined;
        }
        if (answer?.results && answer.results.length === ops.length) return resolve(answer.results);
        const detail = oneLine(answer?.error ?? (stderr.trim() || `the keyring helper exited with ${signal ?? code}`));
        reject(new KeyringError(classify(detail), detail));
      });
    });
    child.stdin.end(JSON.stringify({ module, service, ops }));
  });
}

function oneLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.trim().slice(0, 300);
}
