/**
 * The token file of `keysmith exec`, kept the way Kubernetes projects a service account's token
 * into a pod: a 0600 file holding the bare token (no newline), replaced atomically ahead of each
 * expiry while the child runs, so a child that runs for many token lifetimes reads a valid token
 * whenever it looks. `KEYSMITH_TOKEN` in the child's environment cannot change after it starts;
 * this file can.
 *
 * Where: $XDG_RUNTIME_DIR/keysmith/PROFILE.PID.RANDOM.token (a 0700 directory on the per-user
 * tmpfs that the system empties at logout); without $XDG_RUNTIME_DIR, a private mkdtemp directory
 * (0700) under $TMPDIR, removed with the file. Files left by a keysmith that was killed (SIGKILL)
 * in the runtime directory are removed by the next `exec`.
 *
 * Refreshing goes through `currentSession`, the one refresh policy: the loop wakes when the token
 * becomes stale by the same rule as `keysmith token --min-ttl`, so concurrent exec and token
 * processes still refresh once between them (the session lock), and a refresh token is never
 * replayed.
 */
import { closeSync, fchmodSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, rmdirSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from '../io/context.js';
import { KeysmithError, UsageError, fileError } from '../io/errors.js';
import { warn } from '../io/escape.js';
import { DIR_MODE, FILE_MODE, processAlive, writeFileAtomic } from '../io/files.js';
import { checkSession } from './dialect.js';
import { isExpired, isStale } from './policy.js';
import { currentSession, type SessionOptions } from './session.js';
import type { Profile, Session } from './store.js';

export interface TokenFile {
  readonly path: string;
  /** Replace the token, atomically (readers see the old token or the new one, never a mix). */
  write(token: string): Promise<void>;
  /** Remove the file (and the private directory it was made in). Idempotent, synchronous. */
  remove(): void;
}

/**
 * In the runtime directory, PID in group 1: token files (PROFILE.PID.RANDOM.token) and the temp
 * files writeFileAtomic makes next to them (.NAME.PID.RANDOM.tmp).
 */
const LEFT_BEHIND = [/\.(\d+)\.[0-9a-z]+\.token$/, /^\..+\.(\d+)\.[0-9a-z]+\.tmp$/];

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10) || '0';
}

/**
 * $XDG_RUNTIME_DIR/keysmith, made 0700 when missing; an existing one must be a directory of ours
 * (not a link) and is made private again if someone widened its mode.
 */
function runtimeDir(base: string): string {
  const dir = join(base, 'keysmith');
  try {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw fileError(err, dir, 'directory');
  }
  const stats = lstatSync(dir);
  const uid = process.geteuid?.();
  if (!stats.isDirectory() || (uid !== undefined && stats.uid !== uid)) {
    throw new UsageError(`${dir} is not a directory of yours; the token file cannot be kept there`, 'remove it, or unset XDG_RUNTIME_DIR');
  }
  if ((stats.mode & 0o077) !== 0) {
    const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      fchmodSync(fd, DIR_MODE);
    } finally {
      closeSync(fd);
    }
  }
  return dir;
}

/** Remove what keysmith processes that are gone (SIGKILL) left in the runtime directory. */
function sweep(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = LEFT_BEHIND[0]!.exec(name) ?? LEFT_BEHIND[1]!.exec(name);
    const pid = Number(m?.[1]);
    if (pid && pid !== process.pid && !processAlive(pid)) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Create the token file with its first token. The first write needs no rename: nobody knows the
 * name yet, so the file is created exclusively (O_EXCL) with mode 0600 and written once. This is
 * on the path of every `exec`, so it is synchronous (fs.promises alone costs ~1.5 ms to load).
 */
export function createTokenFile(ctx: Ctx, profile: string, token: string): TokenFile {
  const xdg = ctx.env.XDG_RUNTIME_DIR;
  let dir: string;
  let ownDir = false;
  if (xdg && xdg.startsWith('/')) {
    dir = runtimeDir(xdg);
    sweep(dir);
  } else {
    const tmp = ctx.env.TMPDIR && ctx.env.TMPDIR.startsWith('/') ? ctx.env.TMPDIR : '/tmp';
    try {
      dir = mkdtempSync(join(tmp, 'keysmith-exec-')); // mode 0700
    } catch (err) {
      throw new KeysmithError(`cannot create a private directory for the token file in ${tmp}: ${(err as Error).message}`);
    }
    ownDir = true;
  }
  const path = join(dir, `${encodeURIComponent(profile)}.${process.pid}.${randomSuffix()}.token`);
  let removed = false;
  const remove = () => {
    removed = true;
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
    if (ownDir) {
      try {
        rmdirSync(dir);
      } catch {
        rmSync(dir, { recursive: true, force: true }); // something else was left in it
      }
    }
  };
  try {
    const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, FILE_MODE);
    try {
      fchmodSync(fd, FILE_MODE); // exactly 0600, whatever the umask
      writeSync(fd, token);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    remove();
    throw new KeysmithError(`cannot write the token file ${path}: ${(err as Error).message}`);
  }
  return {
    path,
    async write(next: string) {
      if (removed) return;
      await writeFileAtomic(path, next, FILE_MODE, { owner: null, what: 'token file' });
      // Removed while the new token was being written: take it away again.
      if (removed) remove();
    },
    remove,
  };
}

/** Longest wait of one timer: Node's timers overflow past 2^31-1 ms (24.8 days). */
const MAX_DELAY_MS = 24 * 3600 * 1000;
/** Shortest wait: a timer that fired a little early must not spin. */
const MIN_DELAY_MS = 50;
/** Retries after a failed refresh: 1 s, 2 s, 4 s, ... at most 30 s apart. */
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/**
 * Milliseconds from `nowMs` until the session becomes stale under `isStale`'s rule (refresh
 * `minTtl` seconds ahead of expiry, at most half the token's lifetime ahead); Infinity for a token
 * of unknown lifetime, which is never refreshed.
 */
export function msUntilStale(session: Session, nowMs: number, minTtlSeconds: number): number {
  if (session.expiresAt === undefined) return Infinity;
  const lifetime = session.expiresAt - session.obtainedAt;
  const ahead = Math.min(minTtlSeconds * 1000, Math.max(lifetime, 0) / 2);
  return session.expiresAt - ahead - nowMs;
}

/** How long to wait before retry number `failures` (1, 2, ...), given the current token. */
export function retryDelayMs(failures: number, session: Session, nowMs: number): number {
  const backoff = Math.min(FIRST_RETRY_MS * 2 ** Math.min(failures - 1, 10), MAX_RETRY_MS);
  const left = session.expiresAt === undefined ? Infinity : session.expiresAt - nowMs;
  // While the token is still valid, try again before it runs out.
  return left > 0 ? Math.min(backoff, Math.max(left / 2, 500)) : backoff;
}

export interface Refresher {
  /** Stop refreshing; resolves when a refresh that was under way has finished (and been saved). */
  stop(): Promise<void>;
}

export interface RefreshOptions extends SessionOptions {
  minTtl: number;
}

/**
 * Keep `file` holding a valid token of `profile` until stop(): wake when the token becomes stale,
 * refresh it through `currentSession` and write the new one. A failed refresh is reported once on
 * stderr and retried with backoff (before the current token runs out, while it is valid); once it
 * has expired that is said once too, and the loop keeps trying, so a `keysmith login` in another
 * terminal brings the child a fresh token. Timers are unref'd: they never keep keysmith alive.
 */
export function keepTokenFresh(ctx: Ctx, profile: Profile, first: Session, file: TokenFile, options: RefreshOptions): Refresher {
  let current = first;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failures = 0;
  let quiet = false;
  let saidExpired = false;
  // currentSession warns by itself when a refresh fails while the token is still valid: the first
  // such warning is shown, the retries after it are quiet until a refresh works again.
  const stderr = { write: (chunk: string | Uint8Array) => (quiet ? true : ctx.stderr.write(chunk)) };
  const refreshCtx = Object.create(ctx, { stderr: { value: stderr } }) as Ctx;

  const schedule = (ms: number) => {
    if (stopped || !Number.isFinite(ms)) return;
    timer = setTimeout(tick, Math.min(Math.max(ms, MIN_DELAY_MS), MAX_DELAY_MS));
    timer.unref?.();
  };

  const failed = (message: string | undefined) => {
    if (message !== undefined && !quiet) warn(ctx, `could not refresh the token of profile ${profile.name} for ${file.path}: ${message}`);
    quiet = true;
    const now = ctx.now();
    if (!saidExpired && isExpired(current, now)) {
      saidExpired = true;
      warn(ctx, `the token in ${file.path} has expired; keysmith keeps trying to refresh it (or run: keysmith login --profile ${profile.name})`);
    }
    failures += 1;
    schedule(retryDelayMs(failures, current, now));
  };

  const refresh = async () => {
    try {
      const session = checkSession(await currentSession(refreshCtx, profile, options), 'refresh');
      if (stopped) return;
      if (session.accessToken !== current.accessToken) {
        await file.write(session.accessToken);
        current = session;
      }
    } catch (err) {
      if (!stopped) failed(err instanceof Error ? err.message : String(err));
      return;
    }
    if (stopped) return;
    // Still stale: the refresh failed and currentSession kept the valid token (and said why).
    if (isStale(current, ctx.now(), options.minTtl)) return failed(undefined);
    failures = 0;
    quiet = false;
    saidExpired = false;
    schedule(msUntilStale(current, ctx.now(), options.minTtl));
  };

  const tick = () => {
    running = refresh()
      .catch(() => {}) // only a warning that could not be written (stderr closed) gets here
      .finally(() => {
        running = undefined;
      });
  };

  schedule(msUntilStale(current, ctx.now(), options.minTtl));
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      // A refresh under way is let finish: the server may have rotated the refresh token, and the
      // new one must reach the session file, or the next refresh would replay a retired token.
      await running;
    },
  };
}
