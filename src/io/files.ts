import { promises as fsp, constants as fsc, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KeysmithError, NotFoundError, fileError } from './errors.js';

let tempCounter = 0;

/** Mode of files keysmith creates (secrets live in them). */
export const FILE_MODE = 0o600;
/** Mode of directories keysmith creates. */
export const DIR_MODE = 0o700;

/**
 * Read a file as bytes; `null` when it does not exist. Errors name the file. Synchronous inside:
 * the promise version reads in 512 KiB steps through the thread pool, ~5 ms more for 8 MB, and
 * a command has nothing else to do meanwhile.
 */
export async function readFileOrNull(path: string, what = 'file'): Promise<Buffer | null> {
  try {
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fileError(err, path, what);
  }
}

/**
 * Replace `path` with `data` atomically: write a temp file in the same directory with the
 * final mode, fsync it, rename it over the target, fsync the directory. A crash at any moment
 * leaves either the old or the new file, never a torn one.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const dir = dirname(path);
  // O_EXCL below guarantees we never clobber another writer's temp file; the name only has to be
  // unlikely to collide (node:crypto is not loaded for this: it costs start-up time).
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${(tempCounter++).toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    await handle.writeFile(data);
    // The umask may have narrowed the mode given to open(); set it exactly.
    await handle.chmod(mode);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, path);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw fileError(err, path);
  }
  await syncDir(dir);
}

/** Temp file names writeFileAtomic uses for `path`, with the writer's PID in group 1. */
function tempNamePattern(path: string): RegExp {
  const name = basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${name}\\.(\\d+)\\.[0-9a-z]+\\.tmp$`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove temp files that writers of `path` left behind when they were killed between creating
 * and renaming them (SIGKILL, power loss). Called under the file's lock; a temp file is removed
 * only when the process named in it is gone, so a live writer's file is never touched.
 */
async function removeStaleTemps(path: string): Promise<void> {
  const dir = dirname(path);
  const pattern = tempNamePattern(path);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (pid && pid !== process.pid && !processAlive(pid)) await fsp.rm(join(dir, name), { force: true }).catch(() => {});
  }
}

async function syncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, fsc.O_RDONLY);
    await handle.sync();
  } catch {
    // Some file systems do not support fsync on directories; the rename is still atomic.
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** Create a directory (and parents) with mode 0700 when missing. */
export async function ensureDir(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw fileError(err, dir, 'directory');
  }
}

/** Resolve symlinks so that an atomic rename replaces the real file, not the link. */
async function realTarget(path: string): Promise<string> {
  try {
    return await fsp.realpath(path);
  } catch {
    return path;
  }
}

export interface LockOptions {
  /** How long to keep trying to get the lock, in ms. */
  waitMs?: number;
}

/**
 * Run `fn` while holding a cross-process lock on `path` (proper-lockfile: an atomic mkdir of
 * `path.lock`, refreshed while held and considered stale 10 s after its holder died).
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const lockfile = await import('proper-lockfile');
  // CommonJS module: its functions sit on `default` when imported from ESM.
  const lock = (lockfile as unknown as { default?: typeof lockfile }).default?.lock ?? lockfile.lock;
  const waitMs = options.waitMs ?? 30_000;
  const started = Date.now();
  let release: (() => Promise<void>) | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      release = await lock(path, { realpath: false, stale: 10_000, update: 2_000, retries: 0 });
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The lock is a directory next to the file: ENOENT means the file's directory is missing.
      if (code === 'ENOENT') throw new NotFoundError(`cannot write ${path}: directory ${dirname(path)} does not exist`);
      if (code !== 'ELOCKED') throw fileError(err, `${path}.lock`, 'lock');
      if (Date.now() - started > waitMs) {
        throw new KeysmithError(`${path} is locked by another keysmith process (gave up after ${Math.round(waitMs / 1000)} s)`, 1,
          `if no keysmith process is running, remove ${path}.lock`);
      }
      // Back off with jitter so that many waiting processes do not wake in step.
      const delay = Math.min(5 * 1.5 ** Math.min(attempt, 10), 100) * (0.5 + Math.random());
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}

/**
 * Read-modify-write `path` under its lock. `update` receives the current bytes (null when
 * missing) and returns the new content, or `undefined` to leave the file alone. The file
 * keeps its mode; a new file gets `newFileMode`. If `update` throws, nothing is written.
 */
export async function updateFile<T>(
  path: string,
  update: (current: Buffer | null) => Promise<{ content?: string | Uint8Array; result: T }> | { content?: string | Uint8Array; result: T },
  options: { what?: string; newFileMode?: number } = {},
): Promise<T> {
  const what = options.what ?? 'file';
  const target = await realTarget(path);
  return withFileLock(target, async () => {
    const current = await readFileOrNull(target, what);
    const { content, result } = await update(current);
    if (content !== undefined) {
      let mode = options.newFileMode ?? FILE_MODE;
      if (current !== null) {
        try {
          mode = (await fsp.stat(target)).mode & 0o7777;
        } catch (err) {
          throw fileError(err, target, what);
        }
      }
      await removeStaleTemps(target);
      await writeFileAtomic(target, content, mode);
    }
    return result;
  });
}
