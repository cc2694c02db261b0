/**
 * `keysmith sync` against a real 3-member etcd cluster (Debian's etcd 3.4, started here on
 * 127.0.0.1): etcd → file once and with --watch (propagation, no torn reads, bursts, --exec,
 * member and leader failures, compaction, SIGTERM), file → etcd imports (--force, --dry-run), the
 * error corpus, and the written file checked by htpasswd and passlib as file keychains are.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcrypt';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithEtcd, startEtcdCluster, type EtcdCluster } from './helpers/etcd.js';
import { passlibChecks } from './helpers/peers.js';
import { BIN, cleanEnv, errorLine, keysmith, useScratch } from './helpers/keychain-cli.js';

const CI = process.env.CI === 'true' || process.env.CI === '1';
const PYTHON = '/usr/bin/python3';
const HTPASSWD = '/usr/bin/htpasswd';
const LINE = /^[A-Z0-9]{20}:\$2[aby]\$04\$[./A-Za-z0-9]{53}$/;

const scratch = useScratch('keysmith-sync-');
let cluster: EtcdCluster;
let client: Etcd3;
let prefixes = 0;
/** A fresh key prefix per test: `/sN/keys`. */
const newPrefix = () => `/s${prefixes++}/keys`;

/** A keysmith process left running (sync --watch), with what it printed so far. */
interface Background {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal) once it has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Send `signal`, wait (bounded) for the exit; SIGKILL after the bound. */
  stop(signal?: NodeJS.Signals, waitMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<Background>();

function startSync(args: string[], cwd: string): Background {
  const child = spawn(process.execPath, [BIN, 'sync', ...args], { cwd, env: cleanEnv() as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const bg: Background = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM', waitMs = 10_000) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), waitMs);
      const result = await exited;
      clearTimeout(timer);
      running.delete(bg);
      return result;
    },
  };
  running.add(bg);
  return bg;
}

/** Poll `check` every 10 ms until it returns true; false after `timeoutMs`. */
async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const ids = (text: string) => text.split('\n').filter(Boolean).map((line) => line.slice(0, line.indexOf(':')));

/** keysmith create-access-key on etcd: the new key's ID and secret. */
async function createKey(location: string, count = 1): Promise<Array<{ id: string; secret: string }>> {
  const r = await keysmith(['create-access-key', '-k', location, '--cost', '4', '--count', String(count), '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { id: string; secret: string });
}

let hashes = 0;
/** A real bcrypt hash (cost 4) and a fresh 20-character ID, to put with the test's own client. */
async function entry(): Promise<{ id: string; hash: string }> {
  const id = `T${String(hashes++).padStart(5, '0')}${'X'.repeat(14)}`;
  return { id, hash: await bcrypt.hash(`secret-${id}`, 4) };
}

/** Wait until sync says it watches (the first write, if any, is done by then). */
async function watching(sync: Background): Promise<void> {
  const ok = await waitUntil(() => sync.stderr().includes('Watching etcd') || sync.child.exitCode !== null, 20_000);
  expect(ok && sync.child.exitCode === null, `sync did not start watching:\n${sync.stderr()}`).toBe(true);
}

/** Members started again after a test stopped them (in that test's finally), and a healthy cluster. */
async function restoreCluster(): Promise<void> {
  for (const m of cluster.members) if (!m.running) await m.start();
  await cluster.waitHealthy();
}

describeWithEtcd('keysmith sync (real 3-member etcd cluster)', () => {
  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
    const { Etcd3 } = await import('etcd3');
    client = new Etcd3({ hosts: cluster.members.map((m) => m.clientUrl) });
  }, 60_000);

  afterAll(async () => {
    for (const bg of [...running]) await bg.stop('SIGKILL', 2_000);
    client?.close();
    await cluster?.stop();
  });

  it('etcd → file: sorted ID:HASH lines, a new file 0600, rewritten only when the entries change, mode kept', async () => {
    const dir = scratch.fresh();
    const location = cluster.location(newPrefix());
    const keys = await createKey(location, 3);
    const file = join(dir, '.wave-keychain');
    let r = await keysmith(['sync', '--from', location, '--to', file]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const text = read(file);
    expect(ids(text)).toEqual(keys.map((k) => k.id).sort());
    for (const line of text.trimEnd().split('\n')) expect(line).toMatch(LINE);
    expect(text.endsWith('\n')).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(r.stderr).toMatch(/^Created .*\.wave-keychain at etcd revision \d+: added .* \(3 keys\)\n$/);

    // Same entries: nothing is written (same inode, same mtime), whatever the order or comments in the file.
    writeFileSync(file, `# managed by keysmith sync\n${text.trimEnd().split('\n').reverse().join('\n')}\n`);
    chmodSync(file, 0o640);
    const before = statSync(file);
    r = await keysmith(['sync', '--from', location, '--to', file]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/is up to date with etcd .* \(3 keys, revision \d+\)/);
    expect(statSync(file).ino).toBe(before.ino);
    expect(statSync(file).mtimeMs).toBe(before.mtimeMs);

    // A change: rewritten sorted, mode 0640 kept.
    await keysmith(['remove-access-key', '-k', location, keys[0]!.id]);
    r = await keysmith(['sync', '--from', location, '--to', file, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json).toMatchObject({ written: true, created: false, added: [], replaced: [], removed: [keys[0]!.id], keys: 2 });
    expect(read(file)).toBe(text.split('\n').filter((l) => l && !l.startsWith(keys[0]!.id)).map((l) => l + '\n').join(''));
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });

  it('etcd → file --dry-run lists IDs (never hashes) and writes nothing', async () => {
    const dir = scratch.fresh();
    const location = cluster.location(newPrefix());
    const [a, b] = await createKey(location, 2);
    const file = join(dir, 'kc');
    writeFileSync(file, `OLDKEYOLDKEYOLDKEY00:${await bcrypt.hash('x', 4)}\n${a!.id}:${await bcrypt.hash('other', 4)}\n`);
    const before = read(file);
    const r = await keysmith(['sync', '--from', location, '--to', file, '--dry-run']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([`add ${b!.id}`, `remove OLDKEYOLDKEYOLDKEY00`, `replace ${a!.id}`].sort());
    expect(r.stdout + r.stderr).not.toContain('$2');
    expect(r.stderr).toMatch(/^Dry run, nothing written: .* 1 to add, 1 to replace, 1 to remove, 0 unchanged\n$/);
    expect(read(file)).toBe(before);
    const j = await keysmith(['sync', '--from', location, '--to', file, '--dry-run', '--json']);
    expect(JSON.parse(j.stdout)).toEqual({ dry_run: true, add: [b!.id], replace: [a!.id], remove: ['OLDKEYOLDKEYOLDKEY00'], conflict: [], unchanged: 0 });
  });

  it('file → etcd: imports in transactions; a different hash on etcd is refused without --force; --dry-run shows IDs only', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const location = cluster.location(prefix);
    const entries = await Promise.all(Array.from({ length: 130 }, () => entry()));
    const file = join(dir, 'import');
    writeFileSync(file, entries.map((e) => `${e.id}:${e.hash}\n`).join(''));
    // One ID is already there with another hash, one with the same hash.
    const other = await bcrypt.hash('other', 4);
    await client.put(`${prefix}/${entries[0]!.id}`).value(other);
    await client.put(`${prefix}/${entries[1]!.id}`).value(entries[1]!.hash);

    let r = await keysmith(['sync', '--from', file, '--to', location, '--dry-run']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([...entries.slice(2).map((e) => `add ${e.id}`), `conflict ${entries[0]!.id}`]);
    expect(r.stdout + r.stderr).not.toContain('$2');
    expect(errorLine(r.stderr)).toContain(entries[0]!.id);

    r = await keysmith(['sync', '--from', file, '--to', location]);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(new RegExp(`ID ${entries[0]!.id} already on etcd .* with a different hash; nothing was imported`));
    expect((await client.getAll().prefix(`${prefix}/`).keys()).length).toBe(2);
    expect(await client.get(`${prefix}/${entries[0]!.id}`).string()).toBe(other);

    r = await keysmith(['sync', '--from', file, '--to', location, '--dry-run', '--force', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ dry_run: true, replace: [entries[0]!.id], conflict: [], unchanged: 1 });

    r = await keysmith(['sync', '--from', file, '--to', location, '--force']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/: 128 added, 1 replaced, 1 unchanged\n$/);
    const all = await client.getAll().prefix(`${prefix}/`).strings();
    expect(Object.keys(all).length).toBe(130);
    for (const e of entries) expect(all[`${prefix}/${e.id}`]).toBe(e.hash);

    // Again: nothing to do.
    r = await keysmith(['sync', '--from', file, '--to', location]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/: 0 added, 0 replaced, 130 unchanged\n$/);
  });

  it('--watch: a key created through another endpoint is in the file within 1 s; --exec runs once per burst, its output on stderr', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const [m0, , m2] = cluster.members;
    const file = join(dir, '.wave-keychain');
    const sync = startSync(['--from', cluster.location(prefix, [m0!]), '--to', file, '--watch', '--json', '--exec', 'echo ran >> exec.log; echo "exec says $KEYSMITH_SYNC_REVISION"'], dir);
    try {
      await watching(sync);
      const execRuns = () => read(join(dir, 'exec.log')).split('\n').filter(Boolean).length;
      // The first sync created the (empty) file: one write, one --exec.
      expect(await waitUntil(() => execRuns() === 1, 5_000)).toBe(true);

      for (let i = 0; i < 3; i++) {
        const [key] = await createKey(cluster.location(prefix, [m2!]));
        const created = Date.now();
        const seen = await waitUntil(() => ids(read(file)).includes(key!.id), 1_000);
        expect(seen, `key ${key!.id} not in the file 1 s after create-access-key exited (${Date.now() - created} ms)\n${sync.stderr()}`).toBe(true);
        expect(await waitUntil(() => execRuns() === 2 + i, 5_000)).toBe(true);
      }

      // A burst: 20 separate puts (20 revisions) at once → one write, one --exec.
      const burst = await Promise.all(Array.from({ length: 20 }, () => entry()));
      await Promise.all(burst.map((e) => client.put(`${prefix}/${e.id}`).value(e.hash)));
      expect(await waitUntil(() => burst.every((e) => ids(read(file)).includes(e.id)), 2_000)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect(execRuns()).toBe(5);
      const writes = sync.stdout().trimEnd().split('\n').map((line) => JSON.parse(line));
      expect(writes.length).toBe(5);
      expect(writes[4].added.sort()).toEqual(burst.map((e) => e.id).sort());
      expect(sync.stderr()).toMatch(/^exec says \d+$/m);
      expect(sync.stderr().match(/^Updated .* at etcd revision \d+: added /gm)?.length).toBe(4);
    } finally {
      const { code } = await sync.stop();
      expect(code, sync.stderr()).toBe(0);
    }
  });

  it('--watch: a reader reading the file in a loop never sees it torn or empty', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const file = join(dir, '.wave-keychain');
    const first = await entry();
    await client.put(`${prefix}/${first.id}`).value(first.hash);
    const sync = startSync(['--from', cluster.location(prefix), '--to', file, '--watch'], dir);
    let reader: ChildProcess | undefined;
    try {
      await watching(sync);
      // A separate process reads the file as fast as it can until told to stop, then reports.
      const script = `
        const fs = require('fs');
        const line = ${LINE.toString()};
        let reads = 0, bad = 0, sample = '';
        let stop = false;
        process.on('SIGTERM', () => { stop = true; });
        (function loop() {
          for (let i = 0; i < 200; i++) {
            const text = fs.readFileSync(process.argv[1], 'utf8');
            reads++;
            const lines = text.split('\\n');
            const ok = text.endsWith('\\n') && lines.pop() === '' && lines.length > 0 && lines.every((l) => line.test(l));
            if (!ok) { bad++; sample = JSON.stringify(text.slice(0, 200)); }
          }
          if (stop) process.stdout.write(JSON.stringify({ reads, bad, sample }));
          else setImmediate(loop);
        })();`;
      reader = spawn(process.execPath, ['-e', script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
      let report = '';
      reader.stdout!.setEncoding('utf8').on('data', (d: string) => (report += d));
      const readerDone = new Promise((resolve) => reader!.once('exit', resolve));
      // 12 bursts of puts and deletes, each rewriting the file.
      const live: string[] = [];
      for (let round = 0; round < 12; round++) {
        const added = await Promise.all(Array.from({ length: 5 }, () => entry()));
        await Promise.all(added.map((e) => client.put(`${prefix}/${e.id}`).value(e.hash)));
        live.push(...added.map((e) => e.id));
        if (round % 3 === 2) await client.delete().key(`${prefix}/${live.shift()!}`);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      expect(await waitUntil(() => ids(read(file)).length === live.length + 1, 3_000)).toBe(true);
      reader.kill('SIGTERM');
      await readerDone;
      const { reads, bad, sample } = JSON.parse(report) as { reads: number; bad: number; sample: string };
      expect(bad, `torn or empty read: ${sample}`).toBe(0);
      expect(reads).toBeGreaterThan(100);
      expect(sync.stderr().match(/^Updated /gm)!.length).toBeGreaterThanOrEqual(4);
    } finally {
      reader?.kill('SIGKILL');
      expect((await sync.stop()).code, sync.stderr()).toBe(0);
    }
  });

  it('--watch survives the leader being SIGKILLed and each member it may talk to being stopped and restarted', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const file = join(dir, '.wave-keychain');
    const sync = startSync(['--from', cluster.location(prefix), '--to', file, '--watch'], dir);
    try {
      await watching(sync);
      const propagated = async (label: string, through: string) => {
        const [key] = await createKey(through);
        const ok = await waitUntil(() => ids(read(file)).includes(key!.id), 15_000);
        expect(ok, `${label}: key not in the file within 15 s\n${sync.stderr()}\n${cluster.logs()}`).toBe(true);
      };
      await propagated('before', cluster.location(prefix));

      const leader = await cluster.leader();
      await leader.kill('SIGKILL');
      await propagated('leader killed', cluster.location(prefix, cluster.members.filter((m) => m !== leader)));
      await leader.start();
      await cluster.waitHealthy();

      // Stop each member in turn (one of them carries the watch), create a key meanwhile, restart it.
      for (const member of cluster.members) {
        await member.stop();
        await propagated(`${member.name} stopped`, cluster.location(prefix, cluster.members.filter((m) => m !== member)));
        await member.start();
        await cluster.waitHealthy();
        await propagated(`${member.name} restarted`, cluster.location(prefix, [member]));
      }
      expect(sync.child.exitCode).toBe(null);
      expect(ids(read(file)).length).toBe(8);
    } finally {
      const { code } = await sync.stop();
      await restoreCluster();
      expect(code, sync.stderr()).toBe(0);
    }
  }, 120_000);

  it('--watch re-reads everything when the revision it would resume from was compacted', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const file = join(dir, '.wave-keychain');
    const [a, b] = [await entry(), await entry()];
    await client.put(`${prefix}/${a.id}`).value(a.hash);
    await client.put(`${prefix}/${b.id}`).value(b.hash);
    const [m0, m1] = cluster.members;
    // Only m0: while it is down the watch cannot move elsewhere, and it misses what happens.
    const sync = startSync(['--from', cluster.location(prefix, [m0!]), '--to', file, '--watch'], dir);
    try {
      await watching(sync);
      await m0!.stop();
      const c = await entry();
      await client.put(`${prefix}/${c.id}`).value(c.hash);
      await client.delete().key(`${prefix}/${a.id}`);
      const revision = Number((await client.kv.range({ key: Buffer.from('/'), count_only: true })).header.revision);
      await cluster.etcdctl(['compact', String(revision)], { endpoints: [m1!.clientUrl] });
      await m0!.start();
      const ok = await waitUntil(() => ids(read(file)).sort().join() === [b.id, c.id].sort().join(), 20_000);
      expect(ok, sync.stderr()).toBe(true);
      expect(sync.stderr()).toMatch(/etcd watch lost \(.*\); reconnecting/);
      expect(sync.stderr()).toMatch(/etcd canceled the watch from revision \d+ .*reading the whole keychain again/);
    } finally {
      const { code } = await sync.stop();
      await restoreCluster();
      expect(code, sync.stderr()).toBe(0);
    }
  }, 90_000);

  it('SIGTERM ends sync --watch with exit 0, leaves no temp file, and passes the signal to a running --exec', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const file = join(dir, 'kc');
    let sync = startSync(['--from', cluster.location(prefix), '--to', file, '--watch'], dir);
    await watching(sync);
    // Writes in flight while the signal arrives.
    const burst = await Promise.all(Array.from({ length: 10 }, () => entry()));
    await Promise.all(burst.map((e) => client.put(`${prefix}/${e.id}`).value(e.hash)));
    // About when the burst's write starts (100 ms without events).
    await new Promise((resolve) => setTimeout(resolve, 105));
    let result = await sync.stop('SIGTERM');
    expect(result, sync.stderr()).toEqual({ code: 0, signal: null });
    expect(sync.stderr()).toMatch(/Stopped \(SIGTERM\)\.\n$/);
    expect(readdirSync(dir).filter((name) => name !== 'kc')).toEqual([]);
    for (const line of read(file).split('\n').filter(Boolean)) expect(line).toMatch(LINE);

    // SIGINT during an --exec that would take 60 s: it gets the signal too, and sync ends at once.
    sync = startSync(['--from', cluster.location(prefix), '--to', join(dir, 'kc2'), '--watch', '--exec', 'echo started; sleep 60'], dir);
    expect(await waitUntil(() => sync.stderr().includes('started'), 20_000), sync.stderr()).toBe(true);
    const t = Date.now();
    result = await sync.stop('SIGINT');
    expect(result.code, sync.stderr()).toBe(0);
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(readdirSync(dir).sort()).toEqual(['kc', 'kc2']);
  });

  it('bad entries on etcd: a one-shot sync fails with one line; --watch leaves the file as it was until the entry is fixed', async () => {
    const dir = scratch.fresh();
    const prefix = newPrefix();
    const file = join(dir, 'kc');
    const good = await entry();
    await client.put(`${prefix}/${good.id}`).value(good.hash);
    const sync = startSync(['--from', cluster.location(prefix), '--to', file, '--watch'], dir);
    try {
      await watching(sync);
      expect(ids(read(file))).toEqual([good.id]);
      await client.put(`${prefix}/BROKEN`).value('not a hash');
      expect(await waitUntil(() => sync.stderr().includes('not updating'), 3_000), sync.stderr()).toBe(true);
      expect(sync.stderr()).toMatch(/not updating .*kc: .*BROKEN.*; waiting for the entry to be fixed or removed/);
      const later = await entry();
      await client.put(`${prefix}/${later.id}`).value(later.hash);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(ids(read(file))).toEqual([good.id]);

      const r = await keysmith(['sync', '--from', cluster.location(prefix), '--to', join(dir, 'other')]);
      expect(r.exitCode).toBe(2);
      expect(errorLine(r.stderr)).toMatch(/BROKEN/);
      expect(existsSync(join(dir, 'other'))).toBe(false);

      await client.delete().key(`${prefix}/BROKEN`);
      expect(await waitUntil(() => ids(read(file)).length === 2, 3_000), sync.stderr()).toBe(true);
    } finally {
      expect((await sync.stop()).code, sync.stderr()).toBe(0);
    }
  });

  it('the error corpus: one line each, exit 2 for usage, exit 1 when etcd cannot be reached; nothing written', async () => {
    const dir = scratch.fresh();
    const location = cluster.location(newPrefix());
    const file = join(dir, 'kc');
    writeFileSync(join(dir, 'exists'), '');
    const passwd = 'root:x:0:0:root:/root:/bin/bash\n';
    writeFileSync(join(dir, 'passwd'), passwd);
    const cases: Array<[string[], number, RegExp]> = [
      [['--to', file], 2, /--from is required/],
      [['--from', location], 2, /--to is required/],
      [['--from', file, '--to', join(dir, 'exists')], 2, /one of --from and --to must be etcd/],
      [['--from', location, '--to', location], 2, /must be a file/],
      [['--from', location, '--to', file, '--force'], 2, /--force is for imports/],
      [['--from', join(dir, 'exists'), '--to', location, '--watch'], 2, /--watch follows etcd into a file/],
      [['--from', join(dir, 'exists'), '--to', location, '--exec', 'true'], 2, /--exec runs after a file is written/],
      [['--from', location, '--to', file, '--dry-run', '--watch'], 2, /--dry-run writes nothing/],
      [['--from', location, '--to', file, '--exec', ' '], 2, /--exec is empty/],
      [['--from', 'etcd://127.0.0.1:1/', '--to', file], 2, /bad etcd location/],
      [['--from', 'etcd://127.0.0.1:1/x', '--to', file, '--timeout', '2'], 1, /cannot reach etcd at 127\.0\.0\.1:1/],
      [['--from', join(dir, 'missing'), '--to', location], 1, /keychain .*missing does not exist/],
      [['--from', location, '--to', join(dir, 'no-dir', 'kc')], 1, /directory .*no-dir does not exist/],
      [['--from', location, '--to', '/etc/passwd', '--dry-run'], 2, /\/etc\/passwd line 1: /],
      // Not a keychain: refused before a lock directory is made next to it.
      [['--from', location, '--to', join(dir, 'passwd')], 2, /passwd line 1: /],
    ];
    for (const [args, code, message] of cases) {
      const r = await keysmith(['sync', ...args], { timeout: 20_000 });
      expect(r.exitCode, `sync ${args.join(' ')}\n${r.stderr}`).toBe(code);
      expect(errorLine(r.stderr), args.join(' ')).toMatch(message);
      expect(r.stdout).toBe('');
    }
    expect(readdirSync(dir).sort()).toEqual(['exists', 'passwd']);
    expect(read(join(dir, 'passwd'))).toBe(passwd);
  }, 120_000);

  it("a file written by sync passes the file keychains' interop checks: htpasswd -vb and passlib", async (t) => {
    const missing = !existsSync(HTPASSWD) ? 'htpasswd not found (Debian: apache2-utils)'
      : spawnSync(PYTHON, ['-c', 'import passlib.apache, bcrypt']).status !== 0 ? `${PYTHON} cannot import passlib and bcrypt (Debian: python3-passlib, python3-bcrypt)` : undefined;
    if (missing) {
      if (CI) expect.fail(`${missing}; .ci/run installs it`);
      t.skip(missing);
    }
    const dir = scratch.fresh();
    const location = cluster.location(newPrefix());
    const keys = await createKey(location, 4);
    const file = join(dir, '.wave-keychain');
    const r = await keysmith(['sync', '--from', location, '--to', file]);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const { id, secret } of keys) {
      expect(spawnSync(HTPASSWD, ['-vb', file, id, secret]).status).toBe(0);
      expect(spawnSync(HTPASSWD, ['-vb', file, id, secret + 'x']).status).not.toBe(0);
    }
    const p = passlibChecks(file, keys);
    expect(p.status, p.stderr).toBe(0);
    expect(p.results).toEqual(keys.map(() => [true, false]));
  });
});
