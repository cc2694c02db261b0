import { isAbsolute, resolve } from 'node:path';
import { out, outJson, say, type Ctx } from '../io/context.js';
import { KeysmithError, UsageError } from '../io/errors.js';
import { safeLine } from '../io/escape.js';
import type { EtcdCliOptions, EtcdLocation } from '../keychain/etcd.js';
import type { EntryDiff, FileWrite } from '../keychain/sync.js';

export interface SyncOptions extends EtcdCliOptions {
  from?: string;
  to?: string;
  watch?: boolean;
  exec?: string;
  force?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

type Side = { kind: 'file'; path: string } | { kind: 'etcd'; location: EtcdLocation };

async function side(ctx: Ctx, flag: '--from' | '--to', value: string | undefined): Promise<Side> {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`, 'keysmith sync --from etcd://HOST:PORT/PREFIX --to FILE, or --from FILE --to etcd://...');
  const { isEtcdLocation, parseEtcdLocation } = await import('../keychain/etcd.js');
  if (isEtcdLocation(value)) return { kind: 'etcd', location: parseEtcdLocation(value) };
  return { kind: 'file', path: isAbsolute(value) ? value : resolve(ctx.cwd, value) };
}

/**
 * etcd → file: write the file when its entries differ from etcd's (and, with --watch, follow etcd
 * and keep doing so until SIGTERM/SIGINT; --exec runs after each write). file → etcd: import the
 * file's entries in transactions, refusing to replace a different hash without --force.
 */
export async function run(opts: SyncOptions, ctx: Ctx): Promise<void> {
  const from = await side(ctx, '--from', opts.from);
  const to = await side(ctx, '--to', opts.to);
  if (from.kind === to.kind) {
    throw new UsageError(from.kind === 'file' ? 'sync copies between etcd and a file: one of --from and --to must be etcd://...' : 'sync copies between etcd and a file: one of --from and --to must be a file');
  }
  if (opts.exec !== undefined && opts.exec.trim() === '') throw new UsageError('--exec is empty');
  if (from.kind === 'etcd' && to.kind === 'file') {
    if (opts.force) throw new UsageError('--force is for imports into etcd (--to etcd://...); a file is always made to match etcd');
    if (opts.dryRun && (opts.watch || opts.exec !== undefined)) throw new UsageError(`--dry-run writes nothing, so it does not go with ${opts.watch ? '--watch' : '--exec'}`);
    return toFile(ctx, opts, from.location, to.path);
  }
  if (from.kind === 'file' && to.kind === 'etcd') {
    if (opts.watch) throw new UsageError('--watch follows etcd into a file (--from etcd://... --to FILE)');
    if (opts.exec !== undefined) throw new UsageError('--exec runs after a file is written (--from etcd://... --to FILE)');
    return toEtcd(ctx, opts, from.path, to.location);
  }
}

/** The dry run's listing: one `add|replace|remove|conflict ID` line each, or one JSON object. */
function printPlan(ctx: Ctx, opts: SyncOptions, plan: EntryDiff & { conflict?: string[] }): void {
  if (opts.json) {
    outJson(ctx, { dry_run: true, add: plan.add, replace: plan.replace, remove: plan.remove, conflict: plan.conflict ?? [], unchanged: plan.unchanged });
    return;
  }
  for (const [word, ids] of [['add', plan.add], ['replace', plan.replace], ['remove', plan.remove], ['conflict', plan.conflict ?? []]] as const) {
    for (const id of ids) out(ctx, `${word} ${safeLine(id)}`);
  }
}

function counts(plan: EntryDiff): string {
  return `${plan.add.length} to add, ${plan.replace.length} to replace, ${plan.remove.length} to remove, ${plan.unchanged} unchanged`;
}

function writeJson(ctx: Ctx, source: string, path: string, write: FileWrite, revision: number): void {
  outJson(ctx, {
    file: path, source, revision, written: write.written, created: write.created,
    added: write.add, replaced: write.replace, removed: write.remove, keys: write.keys,
  });
}

async function toFile(ctx: Ctx, opts: SyncOptions, location: EtcdLocation, path: string): Promise<void> {
  const etcd = await import('../keychain/etcd.js');
  const sync = await import('../keychain/sync.js');
  const connect = await etcd.etcdConnectOptions(ctx, opts, location);
  // Listen before anything else: a SIGTERM during the first write waits for it to finish.
  const exec = opts.exec === undefined ? undefined : new sync.ExecRunner(ctx, opts.exec);
  let signalled: NodeJS.Signals | undefined;
  let onStop: ((signal: NodeJS.Signals) => void) | undefined;
  const unlisten = opts.watch ? listen(ctx, (signal) => {
    signalled ??= signal;
    exec?.kill(signal);
    onStop?.(signal);
  }) : undefined;
  const client = await etcd.connectEtcd(location, connect);
  try {
    let read: Awaited<ReturnType<typeof sync.readEtcdEntries>>;
    try {
      read = await sync.readEtcdEntries(client, location);
    } catch (err) {
      throw etcd.etcdError(err, location, connect);
    }
    const write = await sync.writeKeychainFile(path, read.entries, { dryRun: opts.dryRun, checkFirst: true });
    if (opts.dryRun) {
      printPlan(ctx, opts, write);
      say(ctx, `Dry run, nothing written: ${safeLine(path)} from etcd ${location.display} at revision ${read.revision}: ${counts(write)}`);
      return;
    }
    if (write.written) {
      say(ctx, sync.describeWrite(path, write, read.revision));
      if (write.keys === 0) say(ctx, `warning: ${safeLine(path)} now has no access keys; a Wave server started with it accepts the default key pair`);
    } else {
      say(ctx, `${safeLine(path)} is up to date with etcd ${location.display} (${write.keys} key${write.keys === 1 ? '' : 's'}, revision ${read.revision})`);
    }
    if (opts.json) writeJson(ctx, location.display, path, write, read.revision);
    if (write.written && exec && signalled === undefined) {
      const code = await exec.run(path, read.revision);
      if (code !== 0 && signalled === undefined) {
        if (!opts.watch) throw new KeysmithError(`${safeLine(path)} was written, but the --exec command exited with ${code}`);
        say(ctx, `--exec command exited with ${code}`);
      }
    }
    if (!opts.watch || signalled !== undefined) return;

    const follower = new sync.FileFollower({
      client, location, path, kvs: read.kvs, revision: read.revision, exec,
      log: (line) => say(ctx, line),
      onWrite: opts.json ? (w, revision) => writeJson(ctx, location.display, path, w, revision) : undefined,
    });
    say(ctx, `Watching etcd ${location.display} from revision ${read.revision + 1}${exec ? `; after each write: ${safeLine(opts.exec!)}` : ''}`);
    // gRPC streams may come and go while reconnecting; this keeps the process up until a signal.
    const keepAlive = setInterval(() => {}, 1 << 30);
    try {
      const signal = await new Promise<NodeJS.Signals>((resolveStop) => {
        onStop = resolveStop;
        follower.start();
      });
      await follower.stop(signal);
      say(ctx, `Stopped (${signal}).`);
    } finally {
      clearInterval(keepAlive);
    }
  } finally {
    unlisten?.();
    client.close();
  }
}

/** Run `handler` on SIGTERM and SIGINT (instead of dying); returns the function that stops listening. */
function listen(ctx: Ctx, handler: (signal: NodeJS.Signals) => void): () => void {
  if (ctx.onSignal) return ctx.onSignal(['SIGTERM', 'SIGINT'], handler);
  return ctx.onInterrupt?.(() => handler('SIGINT')) ?? (() => {});
}

async function toEtcd(ctx: Ctx, opts: SyncOptions, path: string, location: EtcdLocation): Promise<void> {
  const etcd = await import('../keychain/etcd.js');
  const sync = await import('../keychain/sync.js');
  const wanted = await sync.readFileEntries(path);
  const connect = await etcd.etcdConnectOptions(ctx, opts, location);
  const client = await etcd.connectEtcd(location, connect);
  try {
    if (opts.dryRun) {
      const seen = await sync.readCurrent(client, location, connect);
      const current = new Map([...seen].map(([id, v]) => [id, v.hash]));
      const plan = sync.planImport(current, wanted, opts.force ?? false);
      printPlan(ctx, opts, plan);
      say(ctx, `Dry run, nothing written: ${safeLine(path)} into etcd ${location.display}: ${counts(plan)}`);
      if (plan.conflict.length > 0) {
        throw new KeysmithError(`${plan.conflict.length} ID${plan.conflict.length === 1 ? '' : 's'} already on etcd with a different hash (${sync.idList(plan.conflict)}): the import would stop`,
          1, 'compare them, then import with --force to replace them with the file\'s hashes');
      }
      return;
    }
    const done = await sync.importEntries(client, location, wanted, opts.force ?? false, connect);
    say(ctx, `Imported ${safeLine(path)} into etcd ${location.display}: ${done.added} added, ${done.replaced} replaced, ${done.unchanged} unchanged`);
    if (opts.json) outJson(ctx, { file: path, target: location.display, ...done });
  } finally {
    client.close();
  }
}
