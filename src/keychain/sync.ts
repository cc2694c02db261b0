/**
 * `keysmith sync`: keep a plain keychain file in step with a keychain on etcd (what Wave servers
 * read at start-up), and import a keychain file into etcd.
 *
 * etcd → file: the file is rewritten (locked, atomic, sorted, mode and owner kept, new files 0600)
 * only when its set of entries differs from etcd's. FileFollower then follows etcd's watch from
 * the revision it wrote: it applies events to a mirror of the keychain, coalesces a burst of them
 * into one write, resumes a lost watch from the last revision it applied (on another endpoint if
 * need be), and re-reads everything when that revision has been compacted away.
 *
 * file → etcd: entries are put in transactions of at most TXN_ENTRIES, each comparing what it
 * read (a new ID must still be absent, a replaced one unchanged since the read), so a concurrent
 * writer is never overwritten unseen.
 *
 * Loaded only by the sync and export-keychain commands; the etcd3 package loads in connectEtcd.
 */
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { ChildLike, Ctx } from '../io/context.js';
import { FormatError, KeysmithError } from '../io/errors.js';
import { safeLine } from '../io/escape.js';
import { readRegularFileOrNull, updateFile } from '../io/files.js';
import { decodeText, entries, parseKeychain, sortIds } from './format.js';
import { checkHash, entryKey, etcdError, idOfKeyValue, readKeyValues, type EtcdConnectOptions, type EtcdLocation } from './etcd.js';

/** ID → hash. */
export type EntryMap = Map<string, string>;

/** How one keychain differs from another, as sorted ID lists. */
export interface EntryDiff {
  add: string[];
  remove: string[];
  replace: string[];
  unchanged: number;
}

/** The keychain text `sync` writes: one `ID:HASH\n` line per entry, sorted by byte order (as waved lists IDs). */
export function keychainText(map: ReadonlyMap<string, string>): string {
  let text = '';
  for (const id of sortIds([...map.keys()])) text += `${id}:${map.get(id)!}\n`;
  return text;
}

/** What changes when `current` becomes `wanted`. */
export function diffEntries(current: ReadonlyMap<string, string>, wanted: ReadonlyMap<string, string>): EntryDiff {
  const diff: EntryDiff = { add: [], remove: [], replace: [], unchanged: 0 };
  for (const [id, hash] of wanted) {
    const had = current.get(id);
    if (had === undefined) diff.add.push(id);
    else if (had !== hash) diff.replace.push(id);
    else diff.unchanged++;
  }
  for (const id of current.keys()) if (!wanted.has(id)) diff.remove.push(id);
  sortIds(diff.add);
  sortIds(diff.remove);
  sortIds(diff.replace);
  return diff;
}

export function changed(diff: EntryDiff): boolean {
  return diff.add.length + diff.remove.length + diff.replace.length > 0;
}

/** The entries of keychain file bytes (checked as every keychain command checks them). */
export function fileEntries(bytes: Buffer | null, path: string): EntryMap {
  const map: EntryMap = new Map();
  if (bytes !== null) for (const e of entries(parseKeychain(decodeText(bytes, path), path))) map.set(e.id, e.hash);
  return map;
}

/** The entries of a keychain file; a missing file is an error (there is nothing to read). */
export async function readFileEntries(path: string): Promise<EntryMap> {
  const bytes = await readRegularFileOrNull(path, 'keychain');
  if (bytes === null) throw new KeysmithError(`keychain ${path} does not exist`);
  return fileEntries(bytes, path);
}

export interface FileWrite extends EntryDiff {
  /** The file was (re)written. */
  written: boolean;
  /** It did not exist before. */
  created: boolean;
  /** Entries in the file now. */
  keys: number;
}

/**
 * Make the keychain file at `path` hold exactly `wanted`: under its lock, compare with the
 * entries it has and, only when they differ (or it is missing), replace it atomically with the
 * sorted entries, keeping its mode, owner and group (a new file gets 0600). A file that is not a
 * keychain (FormatError) is left alone: `--to` may have named the wrong file. `dryRun` reads
 * without the lock and writes nothing; `checkFirst` reads without the lock before taking it.
 */
export async function writeKeychainFile(
  path: string,
  wanted: ReadonlyMap<string, string>,
  { dryRun = false, checkFirst = false }: { dryRun?: boolean; checkFirst?: boolean } = {},
): Promise<FileWrite> {
  const plan = (bytes: Buffer | null): FileWrite => {
    const diff = diffEntries(fileEntries(bytes, path), wanted);
    return { ...diff, written: bytes === null || changed(diff), created: bytes === null, keys: wanted.size };
  };
  // checkFirst: a file that is not a keychain (`--to /etc/passwd`) is refused before a lock
  // directory is made next to it; under the lock it is checked again.
  if (dryRun || checkFirst) {
    const result = plan(await readRegularFileOrNull(path, 'keychain'));
    if (dryRun) return { ...result, written: false };
  }
  return updateFile(
    path,
    (bytes) => {
      const result = plan(bytes);
      return { content: result.written ? keychainText(wanted) : undefined, result };
    },
    { what: 'keychain' },
  );
}

/** One entry of the mirror, keyed by its etcd key; `problem` when the file parser would refuse it. */
interface MirrorEntry {
  id: string;
  hash: string;
  problem?: string;
}

/**
 * A copy of the keychain's keys on etcd, kept current by watch events. Entries that would make an
 * invalid keychain line (someone wrote them with etcdctl) are kept, with their problem, so that
 * the file is not written while one exists and is written again once it is fixed or deleted.
 */
export class Mirror {
  private readonly byKey = new Map<string, MirrorEntry>();
  private problems = 0;
  private readonly prefixBytes: number;

  constructor(private readonly location: EtcdLocation, kvs: readonly IKeyValue[] = []) {
    this.prefixBytes = Buffer.byteLength(location.prefix) + 1;
    for (const kv of kvs) this.put(kv);
  }

  get size(): number {
    return this.byKey.size;
  }

  /** A put event (or a key-value read): returns whether anything changed. */
  put(kv: IKeyValue): boolean {
    const key = kv.key.toString('latin1');
    const hash = kv.value.toString('utf8');
    const before = this.byKey.get(key);
    if (before && before.hash === hash && !before.problem) return false;
    let entry: MirrorEntry;
    try {
      const id = idOfKeyValue(this.location, this.prefixBytes, kv.key);
      checkHash(this.location, id, hash);
      entry = { id, hash };
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      entry = { id: kv.key.toString('utf8', this.prefixBytes), hash, problem: err.message };
    }
    if (before?.problem) this.problems--;
    if (entry.problem) this.problems++;
    this.byKey.set(key, entry);
    return true;
  }

  /** A delete event: returns whether anything changed. */
  delete(key: Buffer): boolean {
    const k = key.toString('latin1');
    const before = this.byKey.get(k);
    if (!before) return false;
    if (before.problem) this.problems--;
    this.byKey.delete(k);
    return true;
  }

  /** The entries as ID → hash, or the first problem that keeps them from being a keychain. */
  snapshot(): { entries: EntryMap } | { problem: string } {
    if (this.problems > 0) {
      for (const e of this.byKey.values()) if (e.problem) return { problem: e.problem };
    }
    const map: EntryMap = new Map();
    for (const e of this.byKey.values()) map.set(e.id, e.hash);
    return { entries: map };
  }
}

/** The keychain on etcd at one revision, checked (a bad entry is a FormatError naming its key). */
export async function readEtcdEntries(client: Etcd3, location: EtcdLocation): Promise<{ entries: EntryMap; revision: number; kvs: IKeyValue[] }> {
  const { kvs, revision } = await readKeyValues(client, location);
  const snapshot = new Mirror(location, kvs).snapshot();
  if ('problem' in snapshot) throw new FormatError(location.display, undefined, snapshot.problem.replace(`${location.display}: `, ''));
  return { entries: snapshot.entries, revision: Number(revision), kvs };
}

/** Entries per import transaction: one compare and one put each, under etcd's --max-txn-ops (128). */
export const TXN_ENTRIES = 100;
/** How often a transaction that lost a race is planned again from a fresh read. */
const TXN_ATTEMPTS = 5;

export interface ImportPlan extends EntryDiff {
  /** IDs on etcd whose hash differs from the file's (replaced only with --force). */
  conflict: string[];
}

/** What importing `wanted` into a keychain holding `current` does (nothing is removed from etcd). */
export function planImport(current: ReadonlyMap<string, string>, wanted: ReadonlyMap<string, string>, force: boolean): ImportPlan {
  const diff = diffEntries(current, wanted);
  return force
    ? { ...diff, remove: [], conflict: [] }
    : { ...diff, remove: [], replace: [], conflict: diff.replace };
}

/** "A, B, C and 7 more": IDs for a one-line message. */
export function idList(ids: readonly string[], max = 5): string {
  const shown = ids.slice(0, max).map((id) => safeLine(id)).join(', ');
  return ids.length > max ? `${shown} and ${ids.length - max} more` : shown;
}

/**
 * What the keychain on etcd holds, as the import compares it: ID → hash and mod_revision. Entries
 * are not checked here (a bad one elsewhere on etcd does not stop an import of other IDs).
 */
export async function readCurrent(client: Etcd3, location: EtcdLocation, options: EtcdConnectOptions = {}): Promise<Map<string, { hash: string; mod: string }>> {
  let kvs: IKeyValue[];
  try {
    ({ kvs } = await readKeyValues(client, location));
  } catch (err) {
    throw etcdError(err, location, options);
  }
  const prefixBytes = Buffer.byteLength(location.prefix) + 1;
  const seen = new Map<string, { hash: string; mod: string }>();
  for (const kv of kvs) seen.set(kv.key.toString('utf8', prefixBytes), { hash: kv.value.toString('utf8'), mod: kv.mod_revision });
  return seen;
}

/**
 * Put `wanted` into the keychain on etcd, in transactions of at most TXN_ENTRIES entries. Each one
 * compares what the plan was made from: a new ID must still be absent (create_revision 0), a
 * replaced one must still have the mod_revision that was read. A transaction that loses a race is
 * planned again from a fresh read of its keys; an ID that someone else created or changed with a
 * different hash meanwhile is a conflict (refused without `force`). Returns what was done.
 */
export async function importEntries(
  client: Etcd3,
  location: EtcdLocation,
  wanted: ReadonlyMap<string, string>,
  force: boolean,
  options: EtcdConnectOptions = {},
): Promise<{ added: number; replaced: number; unchanged: number }> {
  const done = { added: 0, replaced: 0, unchanged: 0 };
  const seen = await readCurrent(client, location, options);
  const current = new Map([...seen].map(([id, v]) => [id, v.hash]));
  const plan = planImport(current, wanted, force);
  if (plan.conflict.length > 0) throw conflictError(location, plan.conflict, done);
  done.unchanged = plan.unchanged;
  const todo = [...plan.add, ...plan.replace];
  for (let start = 0; start < todo.length; start += TXN_ENTRIES) {
    let batch = todo.slice(start, start + TXN_ENTRIES);
    for (let attempt = 1; batch.length > 0; attempt++) {
      const txn = client.if(entryKey(location, batch[0]!), ...compareOf(seen.get(batch[0]!)));
      for (const id of batch.slice(1)) txn.and(entryKey(location, id), ...compareOf(seen.get(id)));
      txn.then(...batch.map((id) => client.put(entryKey(location, id)).value(wanted.get(id)!)));
      let succeeded = false;
      try {
        succeeded = (await txn.commit()).succeeded;
      } catch (err) {
        // No answer (a leader change, a timeout) does not say whether it was applied: read again.
        if (attempt >= TXN_ATTEMPTS) throw etcdError(err, location, options);
      }
      if (succeeded) {
        for (const id of batch) (seen.has(id) ? done.replaced++ : done.added++);
        break;
      }
      if (attempt >= TXN_ATTEMPTS) throw new KeysmithError(`etcd ${location.display}: the keys kept changing during the import; imported ${done.added + done.replaced} entries so far`, 1, 'run the import again');
      // Someone else wrote some of these keys: see what they hold now and plan the batch again.
      const again: string[] = [];
      for (const id of batch) {
        let kv: IKeyValue | undefined;
        try {
          kv = (await client.kv.range({ key: Buffer.from(entryKey(location, id)) })).kvs[0];
        } catch (err) {
          throw etcdError(err, location, options);
        }
        const was = seen.get(id);
        if (kv === undefined) {
          seen.delete(id);
          again.push(id);
        } else if (kv.value.toString('utf8') === wanted.get(id)) {
          done.unchanged++;
        } else if (!force && was === undefined) {
          throw conflictError(location, [id], done, ' (created by someone else during the import)');
        } else if (!force && was !== undefined && was.mod !== kv.mod_revision) {
          throw conflictError(location, [id], done, ' (changed by someone else during the import)');
        } else {
          seen.set(id, { hash: kv.value.toString('utf8'), mod: kv.mod_revision });
          again.push(id);
        }
      }
      batch = again;
    }
  }
  return done;
}

/** The comparison that makes a put safe: the key is still absent, or unchanged since it was read. */
function compareOf(seen: { mod: string } | undefined): ['Create' | 'Mod', '==', string | number] {
  return seen === undefined ? ['Create', '==', 0] : ['Mod', '==', seen.mod];
}

function conflictError(location: EtcdLocation, ids: string[], done: { added: number; replaced: number }, why = ''): KeysmithError {
  const n = ids.length;
  const so = done.added + done.replaced > 0 ? `; ${done.added + done.replaced} entries were imported before this` : '; nothing was imported';
  return new KeysmithError(
    `${n === 1 ? 'ID' : `${n} IDs`} ${idList(ids)} already on etcd ${location.display} with a different hash${why}${so}`,
    1,
    'compare them, then import with --force to replace them with the file\'s hashes',
  );
}

/** One stderr line about a write: what changed, how many keys, which revision. */
export function describeWrite(path: string, w: FileWrite, revision: number): string {
  const parts: string[] = [];
  if (w.add.length) parts.push(`added ${idList(w.add)}`);
  if (w.replace.length) parts.push(`replaced ${idList(w.replace)}`);
  if (w.remove.length) parts.push(`removed ${idList(w.remove)}`);
  const what = parts.length > 0 ? parts.join('; ') : 'created';
  return `${w.created ? 'Created' : 'Updated'} ${safeLine(path)} at etcd revision ${revision}: ${what} (${w.keys} key${w.keys === 1 ? '' : 's'})`;
}

/** The environment of --exec's command: ours without etcd's password, plus what was written. */
function execEnv(ctx: Ctx, path: string, revision: number): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...ctx.env, KEYSMITH_SYNC_FILE: path, KEYSMITH_SYNC_REVISION: String(revision) };
  delete env.KEYSMITH_ETCD_PASSWORD;
  return env;
}

/**
 * Runs --exec's command with `/bin/sh -c` in a process group of its own, its output passed on to
 * stderr (stdout is for data); resolves with its exit code (128 + n for a signal). `kill` passes a
 * signal on to the whole group (the shell does not pass it on to what it runs), then SIGKILL if
 * the command has not ended after KILL_AFTER_MS.
 */
export class ExecRunner {
  private child: ChildLike | undefined;

  constructor(private readonly ctx: Ctx, private readonly command: string) {}

  async run(path: string, revision: number): Promise<number> {
    if (!this.ctx.spawn) throw new KeysmithError('--exec: this environment cannot start programs');
    const child = this.ctx.spawn('/bin/sh', ['-c', this.command], {
      env: execEnv(this.ctx, path, revision),
      cwd: this.ctx.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      group: true,
    });
    this.child = child;
    const pass = (chunk: string | Uint8Array) => void this.ctx.stderr.write(chunk);
    child.stdout?.on('data', pass);
    child.stderr?.on('data', pass);
    try {
      return await new Promise<number>((resolve, reject) => {
        child.on('error', (err) => reject(new KeysmithError(`--exec: cannot run /bin/sh: ${err.message}`)));
        // 'exit', not 'close': a daemon the command starts in the background may keep its pipes open.
        child.on('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
      });
    } finally {
      this.child = undefined;
    }
  }

  /** Pass a signal on to the running command's process group, if any. */
  kill(signal: NodeJS.Signals): void {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.once('exit', () => clearTimeout(timer));
  }
}

/** How long a command that got sync's SIGTERM may take to end before it gets SIGKILL. */
const KILL_AFTER_MS = 5_000;

function signalNumber(signal: NodeJS.Signals | null): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal ?? ''] ?? 0;
}

export interface FollowOptions {
  client: Etcd3;
  location: EtcdLocation;
  path: string;
  /** The keychain as read at `revision` (the file was brought in step with it). */
  kvs: readonly IKeyValue[];
  revision: number;
  /** Lines for people (stderr). */
  log(line: string): void;
  /** After each write (and its --exec): for --json. */
  onWrite?(write: FileWrite, revision: number): void;
  exec?: ExecRunner;
  /** A burst ends after this many ms without events... */
  quietMs?: number;
  /** ...or this many ms after it began, whichever comes first. */
  maxDelayMs?: number;
}

export const QUIET_MS = 100;
export const MAX_DELAY_MS = 500;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The first line of an error, for a log line. */
function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return safeLine(message.split('\n')[0]!.replace(/^(?:[A-Za-z]*Error: )+/, ''), 300);
}

/**
 * Follows etcd's watch and keeps the file in step (see the top of this module). Its own watcher
 * per connection, rather than etcd3's built-in resubscription: etcd3 resumes from the revision in
 * the last response header, which can be past events not yet received (a watch catching up gets
 * them in batches that all carry the current revision), while this resumes from the last revision
 * whose events were applied.
 */
export class FileFollower {
  private mirror: Mirror;
  private revision: number;
  private watcher: Watcher | undefined;
  private stopped = false;
  /** Events applied but not written yet. */
  private dirty = false;
  private burstStart: number | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  private retryMs = RETRY_MIN_MS;
  private writeRetryMs = RETRY_MIN_MS;
  /** Why the watch is down (logged once per outage), or undefined while it is up. */
  private outage: string | undefined;
  /** Sleeps to cut short on stop(). */
  private readonly wakers = new Set<() => void>();
  private readonly prefix: string;
  private readonly quietMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly o: FollowOptions) {
    this.mirror = new Mirror(o.location, o.kvs);
    this.revision = o.revision;
    this.prefix = entryKey(o.location, '');
    this.quietMs = o.quietMs ?? QUIET_MS;
    this.maxDelayMs = o.maxDelayMs ?? MAX_DELAY_MS;
  }

  /** Start watching from the revision after the one read. */
  start(): void {
    this.openWatch();
  }

  /**
   * Stop: no more watching or writing; a write in progress is finished (no temp file stays
   * behind) and a running --exec command gets `signal` and is waited for.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const wake of [...this.wakers]) wake();
    const watcher = this.watcher;
    this.watcher = undefined;
    this.o.exec?.kill(signal);
    await Promise.all([
      watcher ? Promise.race([watcher.cancel().catch(() => {}), sleep(1_000)]) : undefined,
      this.flushing,
    ]);
  }

  private openWatch(): void {
    if (this.stopped) return;
    const from = this.revision + 1;
    const watcher = this.o.client.watch().prefix(this.prefix).startRevision(String(from)).watcher();
    this.watcher = watcher;
    const current = () => watcher === this.watcher && !this.stopped;
    watcher.on('connected', () => {
      if (!current()) return;
      if (this.outage !== undefined) this.o.log(`etcd watch resumed from revision ${from}`);
      this.outage = undefined;
      this.retryMs = RETRY_MIN_MS;
    });
    watcher.on('data', (res: IWatchResponse) => {
      if (current()) this.apply(res);
    });
    // The stream broke (the endpoint went away, a leader change cut it): a new watcher from the
    // last applied revision, on whichever endpoint the client picks.
    watcher.on('disconnected', (err: Error) => {
      if (!current()) return;
      this.watcher = undefined;
      void watcher.cancel().catch(() => {});
      this.lost(`etcd watch lost (${reason(err)}); reconnecting`);
      void this.after(this.nextRetry()).then(() => this.openWatch());
    });
    // etcd canceled the watch: its start revision was compacted away, or it was refused.
    watcher.on('error', (err: Error) => {
      if (!current()) return;
      this.watcher = undefined;
      void watcher.cancel().catch(() => {});
      this.o.log(`etcd canceled the watch from revision ${from} (${reason(err) || 'no reason given'}); reading the whole keychain again`);
      void this.resync();
    });
  }

  /** Log the start of an outage once. */
  private lost(line: string): void {
    if (this.outage === undefined) this.o.log(line);
    this.outage = line;
  }

  private nextRetry(): number {
    const ms = this.retryMs * (0.75 + Math.random() / 2);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    return ms;
  }

  /** Sleep, cut short by stop(). */
  private after(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  /** Read the whole keychain again (after a compaction), retrying until it works or sync stops. */
  private async resync(): Promise<void> {
    let lastError = '';
    while (!this.stopped) {
      try {
        const { kvs, revision } = await readKeyValues(this.o.client, this.o.location);
        if (this.stopped) return;
        this.mirror = new Mirror(this.o.location, kvs);
        this.revision = Number(revision);
        this.outage = undefined;
        this.retryMs = RETRY_MIN_MS;
        this.markDirty(true);
        this.openWatch();
        return;
      } catch (err) {
        const line = `cannot read etcd ${this.o.location.display}: ${reason(err)}; retrying`;
        if (line !== lastError) this.o.log(line);
        lastError = line;
        await this.after(this.nextRetry());
      }
    }
  }

  private apply(res: IWatchResponse): void {
    let changes = false;
    for (const event of res.events) {
      const kv = event.kv;
      changes = (event.type === 'Delete' ? this.mirror.delete(kv.key) : this.mirror.put(kv)) || changes;
      this.revision = Math.max(this.revision, Number(kv.mod_revision));
    }
    // A progress notification (no events): everything up to its revision has been seen.
    if (res.events.length === 0 && res.header?.revision) this.revision = Math.max(this.revision, Number(res.header.revision));
    if (changes) this.markDirty(false);
  }

  /** Note a change and (re)arm the timer that ends the burst. */
  private markDirty(now: boolean): void {
    this.dirty = true;
    const t = Date.now();
    this.burstStart ??= t;
    clearTimeout(this.timer);
    const due = now ? t : Math.min(t + this.quietMs, this.burstStart + this.maxDelayMs);
    this.timer = setTimeout(() => this.flush(), Math.max(0, due - t));
  }

  private flush(): void {
    this.timer = undefined;
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    if (!this.dirty || this.stopped) return;
    this.dirty = false;
    this.burstStart = undefined;
    this.flushing = this.writeOnce().finally(() => {
      this.flushing = undefined;
      if (this.flushAgain && !this.stopped) {
        this.flushAgain = false;
        this.flush();
      }
    });
  }

  private async writeOnce(): Promise<void> {
    const snapshot = this.mirror.snapshot();
    const revision = this.revision;
    if ('problem' in snapshot) {
      this.o.log(`not updating ${safeLine(this.o.path)}: ${safeLine(snapshot.problem)}; waiting for the entry to be fixed or removed`);
      return;
    }
    let write: FileWrite;
    try {
      write = await writeKeychainFile(this.o.path, snapshot.entries);
      this.writeRetryMs = RETRY_MIN_MS;
    } catch (err) {
      // A full disk, a lost permission: try again later (the events are kept), say so once per try.
      const wait = this.writeRetryMs;
      this.writeRetryMs = Math.min(this.writeRetryMs * 2, 30_000);
      this.o.log(`cannot update ${safeLine(this.o.path)}: ${reason(err)}; trying again in ${Math.ceil(wait / 1000)} s`);
      if (!this.stopped) {
        this.dirty = true;
        this.timer = setTimeout(() => this.markDirty(true), wait);
      }
      return;
    }
    if (!write.written) return;
    this.o.log(describeWrite(this.o.path, write, revision));
    if (write.keys === 0) this.o.log(`warning: ${safeLine(this.o.path)} now has no access keys; a Wave server started with it accepts the default key pair`);
    this.o.onWrite?.(write, revision);
    if (this.o.exec && !this.stopped) {
      const code = await this.o.exec.run(this.o.path, revision);
      if (code !== 0 && !this.stopped) this.o.log(`--exec command exited with ${code}`);
    }
  }
}
