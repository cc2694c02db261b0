import { promises as fsp, constants as fsc, closeSync, fstatSync, openSync, readFileSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KeysmithError, NotFoundError, UsageError, fileError } from './errors.js';

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

/** Who owns a file: a replacement gets the same owner and group. */
export interface Owner {
  uid: number;
  gid: number;
}

/** "keychain x is a FIFO (named pipe), expected a regular file"; directories as fileError says them. */
function notRegularFile(path: string, what: string, stats: Stats): UsageError {
  if (stats.isDirectory()) return new UsageError(`${what} ${path} is a directory, expected a file`);
  const kind = stats.isFIFO() ? 'a FIFO (named pipe)'
    : stats.isCharacterDevice() ? 'a character device'
    : stats.isBlockDevice() ? 'a block device'
    : stats.isSocket() ? 'a socket'
    : 'not a regular file';
  return new UsageError(`${what} ${path} is ${kind}, expected a regular file`);
}

/**
 * Read a regular file with its stats; `null` when it does not exist. Anything else (a FIFO, a
 * device, a directory) is a UsageError, never a hang: the file is opened with O_NONBLOCK (which
 * regular files ignore, and which keeps open() of a FIFO from waiting for a writer) and checked
 * with fstat on the same descriptor before a byte is read, so it cannot be swapped in between.
 */
function readRegular(path: string, what: string): { bytes: Buffer; stats: Stats } | null {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | (fsc.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    // open() of a Unix socket fails with ENXIO.
    if (code === 'ENXIO') throw new UsageError(`${what} ${path} is not a regular file`);
    throw fileError(err, path, what);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw notRegularFile(path, what, stats);
    return { bytes: readFileSync(fd), stats };
  } catch (err) {
    throw err instanceof KeysmithError ? err : fileError(err, path, what);
  } finally {
    closeSync(fd);
  }
}

/**
 * readFileOrNull for files keysmith may replace (keychains, rotate-secret's FILE): a FIFO, a device
 * or a directory is an error (exit 2) instead of a read that blocks or never ends.
 */
export async function readRegularFileOrNull(path: string, what = 'file'): Promise<Buffer | null> {
  return readRegular(path, what)?.bytes ?? null;
}

/** Throw when `path` exists but is not a regular file; any other question is left to the read. */
function checkRegularOrMissing(path: string, what: string): void {
  let stats: Stats | undefined;
  try {
    stats = statSync(path, { throwIfNoEntry: false });
  } catch {
    return;
  }
  if (stats && !stats.isFile()) throw notRegularFile(path, what, stats);
}

/** The owner of `path`, or null when it does not exist (or cannot be looked at: the write will say why). */
function ownerOf(path: string): Owner | null {
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    return stats ? { uid: stats.uid, gid: stats.gid } : null;
  } catch {
    return null;
  }
}

/**
 * Give the temp file `owner`'s uid and gid, so that replacing a `root:www-data 0640` file keeps it
 * readable by the group. root can always; another user can keep their own files and give them any
 * group they are in. Where that is not allowed, the write stops: silently handing the file to the
 * writer would change who can read it.
 */
async function keepOwner(handle: fsp.FileHandle, owner: Owner, path: string, what: string): Promise<void> {
  if (process.getuid === undefined) return; // Windows: no POSIX owners.
  try {
    await handle.chown(owner.uid, owner.gid);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EINVAL') throw err;
    // File systems without owners (vfat, some network mounts) refuse every chown: fine if nothing changes.
    const made = await handle.stat();
    if (made.uid === owner.uid && made.gid === owner.gid) return;
    const whose = made.uid !== owner.uid ? `it belongs to uid ${owner.uid}` : `its group gid ${owner.gid} is not one of yours`;
    throw new UsageError(`cannot replace ${what} ${path} without changing its owner (${whose}); nothing was written`,
      `run keysmith as the file's owner or as root`);
  }
}

export interface WriteOptions {
  /**
   * Owner and group for the new file: by default those of the file being replaced (looked up with
   * one stat), none for a new one; `null` keeps whatever the new file gets.
   */
  owner?: Owner | null;
  /** What the file is, for messages ("keychain"). */
  what?: string;
}

/**
 * Replace `path` with `data` atomically: write a temp file in the same directory with the
 * final mode, fsync it, rename it over the target, fsync the directory. A crash at any moment
 * leaves either the old or the new file, never a torn one. The new file keeps the owner and group
 * of the one it replaces (see WriteOptions).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number, options: WriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const what = options.what ?? 'file';
  const owner = options.owner === undefined ? ownerOf(path) : options.owner;
  // O_EXCL below guarantees we never clobber another writer's temp file; the name only has to be
  // unlikely to collide (node:crypto is not loaded for this: it costs start-up time).
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${(tempCounter++).toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    if (owner) await keepOwner(handle, owner, path, what);
    await handle.writeFile(data);
    // The umask may have narrowed the mode given to open(), and chown clears set-ID bits; set it exactly.
    await handle.chmod(mode);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, path);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err instanceof KeysmithError ? err : fileError(err, path, what);
  }
  await syncDir(dir);
}

/** Temp file names writeFileAtomic uses for `path`, with the writer's PID in group 1. */
function tempNamePattern(path: string, anyFile: boolean): RegExp {
  const name = anyFile ? '.+' : basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${name}\\.(\\d+)\\.[0-9a-z]+\\.tmp$`);
}

/** True while a process of that ID exists (also one of another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove temp files that writers of `path` left behind when they were killed between creating
 * and renaming them (SIGKILL, power loss); such files may hold secrets or tokens. updateFile calls
 * it under the file's lock; callers of writeFileAtomic that do not go through updateFile (sessions)
 * call it themselves. A temp file is removed only when the process named in it is gone, so a live
 * writer's file is never touched. `anyFile`: those of every file in the directory (one that only
 * keysmith writes to, like the sessions directory).
 */
export async function removeStaleTemps(path: string, { anyFile = false }: { anyFile?: boolean } = {}): Promise<void> {
  const dir = dirname(path);
  const pattern = tempNamePattern(path, anyFile);
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
 * keeps its mode, owner and group; a new file gets `newFileMode`. `mode` and `group`, when given,
 * are what the user asked for (set-password --mode/--group): the written file gets them, new or
 * not. If `update` throws, nothing is written. A path that is not a regular file (a FIFO, a
 * device, a directory) is a UsageError.
 */
export async function updateFile<T>(
  path: string,
  update: (current: Buffer | null) => Promise<{ content?: string | Uint8Array; result: T }> | { content?: string | Uint8Array; result: T },
  options: { what?: string; newFileMode?: number; mode?: number; group?: number } = {},
): Promise<T> {
  const what = options.what ?? 'file';
  const target = await realTarget(path);
  // Before the lock: a FIFO or a device gets no lock directory next to it.
  checkRegularOrMissing(target, what);
  return withFileLock(target, async () => {
    const current = readRegular(target, what);
    const { content, result } = await update(current?.bytes ?? null);
    if (content !== undefined) {
      const mode = options.mode ?? (current ? current.stats.mode & 0o7777 : options.newFileMode ?? FILE_MODE);
      const uid = current?.stats.uid ?? process.geteuid?.();
      const gid = options.group ?? current?.stats.gid;
      const owner = uid !== undefined && gid !== undefined ? { uid, gid } : null;
      await removeStaleTemps(target);
      await writeFileAtomic(target, content, mode, { owner, what });
    }
    return result;
  });
}
