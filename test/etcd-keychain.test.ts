/**
 * Keychains on etcd (-k etcd://...), against a real 3-member etcd cluster started here (Debian's
 * etcd 3.4; test/helpers/etcd.ts), plus single-member clusters with TLS and with user/password
 * auth. Every command runs through the built binary; etcdctl looks at what was written. The
 * transactions' compares are also checked in-process, with the store and a real client.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeCtx } from './helpers/ctx.js';
import { describeWithEtcd, freePorts, startEtcdCluster, type EtcdCluster } from './helpers/etcd.js';
import { errorLine, keysmith, useScratch, type RunResult } from './helpers/keychain-cli.js';

const scratch = useScratch('keysmith-etcd-keychain-');
let prefixCounter = 0;
/** A key prefix no other test uses. */
const freshPrefix = () => `/keysmith-test/p${prefixCounter++}`;

function ok(r: RunResult): RunResult {
  if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** `keysmith create-access-key --json` output → the keys. */
function keysOf(r: RunResult): Array<{ id: string; secret: string; keychain: string }> {
  return r.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { id: string; secret: string; keychain: string });
}

/** Every key under `prefix` with its value and revisions, as etcdctl sees them (values and keys base64 in JSON). */
async function etcdKeys(cluster: EtcdCluster, prefix: string): Promise<{ revision: number; kvs: Array<{ key: string; value: string; create: number; mod: number }> }> {
  const raw = await cluster.etcdctl(['get', '--prefix', `${prefix}/`, '-w', 'json']);
  const json = JSON.parse(raw) as { header: { revision: number }; kvs?: Array<{ key: string; value: string; create_revision: number; mod_revision: number }> };
  const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  return {
    revision: json.header.revision,
    kvs: (json.kvs ?? []).map((kv) => ({ key: b64(kv.key), value: b64(kv.value), create: kv.create_revision, mod: kv.mod_revision })),
  };
}

describeWithEtcd('keychains on etcd (3-member cluster)', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('every keychain command works on etcd, one key per entry, with the output a file keychain gives', async () => {
    const prefix = freshPrefix();
    const k = cluster.location(prefix);
    const created = keysOf(ok(await keysmith(['create-access-key', '-k', k, '--cost', '4', '-n', '3', '--json'])));
    expect(created).toHaveLength(3);
    for (const key of created) {
      expect(key.id).toMatch(/^[A-Z0-9]{20}$/);
      expect(key.keychain).toBe(k);
    }
    // One etcd key per entry: PREFIX/ID → the bcrypt hash.
    const stored = await etcdKeys(cluster, prefix);
    expect(stored.kvs.map((kv) => kv.key).sort()).toEqual(created.map((c) => `${prefix}/${c.id}`).sort());
    for (const kv of stored.kvs) expect(kv.value).toMatch(/^\$2b\$04\$[./A-Za-z0-9]{53}$/);

    // The same entries in a file list the same, byte for byte (plain and --json).
    const file = join(scratch.fresh(), 'keychain');
    writeFileSync(file, stored.kvs.map((kv) => `${kv.key.slice(prefix.length + 1)}:${kv.value}\n`).reverse().join(''), { mode: 0o600 });
    const ids = created.map((c) => c.id).sort();
    for (const args of [[], ['--json']]) {
      const fromEtcd = ok(await keysmith(['list-access-keys', '-k', k, ...args]));
      const fromFile = ok(await keysmith(['list-access-keys', '-k', file, ...args]));
      expect(fromEtcd.stdout).toBe(fromFile.stdout);
      expect(fromEtcd.stderr).toBe('');
    }
    expect(ok(await keysmith(['list-access-keys', '-k', k])).stdout).toBe(ids.join('\n') + '\n');

    // verify: the right secret passes, a wrong one and an unknown ID fail with one line, exit 1.
    const [first] = created;
    const good = ok(await keysmith(['verify-access-key', '-k', k, first!.id], { input: first!.secret + '\n' }));
    expect(good.stderr).toBe(`access key ${first!.id}: OK\n`);
    for (const [id, secret] of [[first!.id, 'wrong'], ['NOSUCHID', first!.secret]] as const) {
      const bad = await keysmith(['verify-access-key', '-k', k, id], { input: secret + '\n' });
      expect(bad.exitCode).toBe(1);
      expect(errorLine(bad.stderr)).toBe(`error: access key ${id}: verification failed`);
    }

    // set-password adds, then updates in place; verify sees each.
    expect(ok(await keysmith(['set-password', '-k', k, 'alice', '--password-stdin', '--cost', '4'], { input: 'pw-one\n' })).stderr)
      .toBe(`Added user alice in ${k}.\n`);
    expect(ok(await keysmith(['set-password', '-k', k, 'alice', '--password-stdin', '--cost', '4'], { input: 'pw-two\n' })).stderr)
      .toBe(`Updated user alice in ${k}.\n`);
    ok(await keysmith(['verify-access-key', '-k', k, 'alice'], { input: 'pw-two\n' }));
    expect((await keysmith(['verify-access-key', '-k', k, 'alice'], { input: 'pw-one\n' })).exitCode).toBe(1);

    // remove: the message a file gives; the key is gone from etcd.
    const removed = ok(await keysmith(['remove-access-key', '-k', k, 'alice']));
    expect(removed.stderr).toContain(`from ${k}.`);
    expect((await etcdKeys(cluster, prefix)).kvs.map((kv) => kv.key)).not.toContain(`${prefix}/alice`);
  });

  it('$KEYSMITH_KEYCHAIN=etcd://... works like -k', async () => {
    const prefix = freshPrefix();
    const env = { KEYSMITH_KEYCHAIN: cluster.location(prefix) };
    const [key] = keysOf(ok(await keysmith(['create-access-key', '--cost', '4', '--json'], { env })));
    expect(ok(await keysmith(['list-access-keys'], { env })).stdout).toBe(`${key!.id}\n`);
    ok(await keysmith(['verify-access-key', key!.id], { env: { ...env, H2O_WAVE_ACCESS_KEY_SECRET: key!.secret } }));
  });

  it('remove is all-or-nothing: one unknown ID removes none, in one transaction', async () => {
    const prefix = freshPrefix();
    const k = cluster.location(prefix);
    const ids = keysOf(ok(await keysmith(['create-access-key', '-k', k, '--cost', '4', '-n', '3', '--json']))).map((c) => c.id);
    const before = await etcdKeys(cluster, prefix);
    const r = await keysmith(['remove-access-key', '-k', k, ids[0]!, 'NOPE', ids[1]!]);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toBe(`error: access key ID NOPE not found in keychain ${k}; nothing removed`);
    const after = await etcdKeys(cluster, prefix);
    expect(after.kvs).toEqual(before.kvs);
    expect(after.revision).toBe(before.revision);

    // Removing them all: one revision for all deletes, and the "no keys left" warning.
    ok(await keysmith(['remove-access-key', '-k', k, ids[0]!, ids[1]!]));
    const last = ok(await keysmith(['remove-access-key', '-k', k, ids[2]!]));
    expect(last.stderr).toMatch(/now has no access keys/);
    const gone = await etcdKeys(cluster, prefix);
    expect(gone.kvs).toEqual([]);
    expect(gone.revision).toBe(before.revision + 2);
  });

  it('rotate deletes the old key and puts the new one in one transaction; --keep-old keeps both', async () => {
    const prefix = freshPrefix();
    const k = cluster.location(prefix);
    const [old] = keysOf(ok(await keysmith(['create-access-key', '-k', k, '--cost', '4', '--json'])));
    const before = await etcdKeys(cluster, prefix);
    const [fresh] = keysOf(ok(await keysmith(['rotate-access-key', '-k', k, old!.id, '--cost', '4', '--json'])));
    expect(fresh!.id).not.toBe(old!.id);
    const after = await etcdKeys(cluster, prefix);
    // One transaction is one revision: the new key was made at the revision that deleted the old one.
    expect(after.revision).toBe(before.revision + 1);
    expect(after.kvs.map((kv) => kv.key)).toEqual([`${prefix}/${fresh!.id}`]);
    expect(after.kvs[0]!.create).toBe(after.revision);
    ok(await keysmith(['verify-access-key', '-k', k, fresh!.id], { input: fresh!.secret }));
    expect((await keysmith(['verify-access-key', '-k', k, old!.id], { input: old!.secret })).exitCode).toBe(1);

    const kept = ok(await keysmith(['rotate-access-key', '-k', k, fresh!.id, '--cost', '4', '--keep-old', '--json']));
    expect(kept.stderr).toMatch(/stays valid until you remove it/);
    expect((await etcdKeys(cluster, prefix)).kvs).toHaveLength(2);

    const missing = await keysmith(['rotate-access-key', '-k', k, 'NOPE', '--cost', '4']);
    expect(missing.exitCode).toBe(1);
    expect(errorLine(missing.stderr)).toBe(`error: access key ID NOPE not found in keychain ${k}`);
  });

  it('more keys than one transaction may hold: one line, exit 1, nothing written', async () => {
    const prefix = freshPrefix();
    const r = await keysmith(['create-access-key', '-k', cluster.location(prefix), '--cost', '4', '-n', '129']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/the transaction has more operations than the server allows \(etcd --max-txn-ops, default 128\)$/);
    expect(r.stdout).toBe('');
    expect((await etcdKeys(cluster, prefix)).kvs).toEqual([]);
  });

  it('bad data in etcd is reported like a bad keychain file: one line naming the key, exit 2', async () => {
    const prefix = freshPrefix();
    const k = cluster.location(prefix);
    await cluster.etcdctl(['put', `${prefix}/GOODID`, '$2b$04$' + 'a'.repeat(53)]);
    await cluster.etcdctl(['put', `${prefix}/BADHASH`, 'not-a-hash']);
    for (const args of [['list-access-keys'], ['list-access-keys', '--json']]) {
      const r = await keysmith([...args, '-k', k]);
      expect(r.exitCode).toBe(2);
      expect(errorLine(r.stderr)).toMatch(new RegExp(`^error: ${k.replace(/[.]/g, '\\.')}: unrecognised password hash .* for ID BADHASH$`));
      expect(r.stdout).toBe('');
    }
    await cluster.etcdctl(['del', `${prefix}/BADHASH`]);
    await cluster.etcdctl(['put', `${prefix}/bad id`, '$2b$04$' + 'a'.repeat(53)]);
    const r = await keysmith(['list-access-keys', '-k', k]);
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toMatch(/key ".*\/bad id": ID "bad id" contains whitespace/);
  });

  it('the store\'s create transaction refuses an ID that appeared meanwhile (create_revision must be 0)', async () => {
    const { openEtcdKeychain } = await import('../src/keychain/etcd-store.js');
    const prefix = freshPrefix();
    const store = await openEtcdKeychain(cluster.location(prefix), fakeCtx().ctx, {});
    try {
      // Someone else created TAKEN (with another hash) after our keys were made, before our write.
      const theirs = '$2b$04$' + 'T'.repeat(53);
      await cluster.etcdctl(['put', `${prefix}/TAKEN`, theirs]);
      const keys = [{ id: 'TAKEN', secret: 's', hash: '$2b$04$' + 'O'.repeat(53) }, { id: 'FREE', secret: 's', hash: '$2b$04$' + 'F'.repeat(53) }];
      await store.addKeys(keys);
      expect(keys[0]!.id).not.toBe('TAKEN');
      const stored = new Map((await etcdKeys(cluster, prefix)).kvs.map((kv) => [kv.key, kv.value]));
      expect(stored.get(`${prefix}/TAKEN`)).toBe(theirs);
      expect(stored.get(`${prefix}/${keys[0]!.id}`)).toBe(keys[0]!.hash);
      expect(stored.get(`${prefix}/FREE`)).toBe(keys[1]!.hash);
    } finally {
      await store.close();
    }
  });

  it('set-password\'s transaction compares the revision it read: a change in between is not overwritten blindly', async () => {
    const { openEtcdKeychain } = await import('../src/keychain/etcd-store.js');
    const prefix = freshPrefix();
    const store = await openEtcdKeychain(cluster.location(prefix), fakeCtx().ctx, {});
    try {
      const kv = (store as unknown as { client: { kv: { range: (...a: unknown[]) => Promise<unknown>; txn: (...a: unknown[]) => Promise<{ succeeded: boolean }> } } }).client.kv;
      const range = kv.range.bind(kv);
      const txn = kv.txn.bind(kv);
      // Right after set-password reads `bob` (missing), another writer creates him.
      let injected = false;
      kv.range = async (...a: unknown[]) => {
        const result = await range(...a);
        if (!injected) {
          injected = true;
          await cluster.etcdctl(['put', `${prefix}/bob`, '$2b$04$' + 'X'.repeat(53)]);
        }
        return result;
      };
      const outcomes: boolean[] = [];
      kv.txn = async (...a: unknown[]) => {
        const result = await txn(...a);
        outcomes.push(result.succeeded);
        return result;
      };
      const added = await store.setHash('bob', '$2b$04$' + 'Y'.repeat(53));
      // The first transaction was refused (bob's revision was no longer 0); the second, on what
      // was there by then, went through and reports an update, not an add.
      expect(outcomes).toEqual([false, true]);
      expect(added).toBe(false);
      expect((await etcdKeys(cluster, prefix)).kvs.map((x) => x.value)).toEqual(['$2b$04$' + 'Y'.repeat(53)]);
    } finally {
      await store.close();
    }
  });

  it('a write whose answer was lost is retried and finds itself: no key made twice, no false "not found"', async () => {
    const { openEtcdKeychain } = await import('../src/keychain/etcd-store.js');
    const { GRPCUnavailableError } = await import('etcd3');
    const prefix = freshPrefix();
    const store = await openEtcdKeychain(cluster.location(prefix), fakeCtx().ctx, {});
    try {
      const kv = (store as unknown as { client: { kv: { txn: (...a: unknown[]) => Promise<unknown> } } }).client.kv;
      const txn = kv.txn.bind(kv);
      // The next transaction commits, then its answer is lost (as when a leader dies).
      let loseNext = false;
      let lost = 0;
      kv.txn = async (...a: unknown[]) => {
        const result = await txn(...a);
        if (loseNext) {
          loseNext = false;
          lost++;
          throw new GRPCUnavailableError('14 UNAVAILABLE: connection lost');
        }
        return result;
      };
      const keys = [{ id: 'LOSTANSWER1', secret: 's', hash: '$2b$04$' + 'L'.repeat(53) }];
      loseNext = true;
      await store.addKeys(keys);
      expect(keys[0]!.id).toBe('LOSTANSWER1');
      loseNext = true;
      expect(await store.setHash('carol', '$2b$04$' + 'C'.repeat(53))).toBe(true);
      expect((await etcdKeys(cluster, prefix)).kvs.map((x) => x.key)).toEqual([`${prefix}/LOSTANSWER1`, `${prefix}/carol`]);
      loseNext = true;
      expect(await store.remove(['LOSTANSWER1', 'carol'])).toEqual({ missing: [], remaining: 0 });
      expect((await etcdKeys(cluster, prefix)).kvs).toEqual([]);
      expect(lost).toBe(3);
    } finally {
      await store.close();
    }
  });

  it('10 processes x 10 creates while the leader is killed: every create that exited 0 is listed, exactly once', async () => {
    const prefix = freshPrefix();
    const k = cluster.location(prefix);
    const results: Array<{ exitCode: number; ids: string[]; stderr: string }> = [];
    let done = 0;
    let killed: Promise<void> | undefined;
    const worker = async () => {
      for (let i = 0; i < 10; i++) {
        const r = await keysmith(['create-access-key', '-k', k, '--cost', '4', '--json'], { timeout: 30_000 });
        results.push({ exitCode: r.exitCode ?? -1, ids: r.exitCode === 0 ? keysOf(r).map((x) => x.id) : [], stderr: r.stderr });
        // Midway, SIGKILL the leader (once).
        if (++done === 30) killed = cluster.leader().then((leader) => leader.kill('SIGKILL'));
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    await killed;
    expect(results).toHaveLength(100);
    for (const r of results) {
      expect([0, 1]).toContain(r.exitCode);
      if (r.exitCode !== 0) errorLine(r.stderr);
    }
    const succeeded = results.flatMap((r) => r.ids);
    // The cluster keeps a majority: the creates go on through the other two members.
    expect(succeeded.length).toBeGreaterThanOrEqual(90);
    expect(new Set(succeeded).size).toBe(succeeded.length);
    const listed = ok(await keysmith(['list-access-keys', '-k', k])).stdout.trim().split('\n');
    expect(listed).toEqual([...succeeded].sort());
    // And as etcd itself has them.
    expect((await etcdKeys(cluster, prefix)).kvs.map((kv) => kv.key.slice(prefix.length + 1))).toEqual(listed);
    // Bring the member back for whatever runs next.
    await Promise.all(cluster.members.filter((m) => !m.running).map((m) => m.start()));
  }, 120_000);
});

describeWithEtcd('keychains on etcd: TLS and user/password auth', () => {
  let tlsCluster: EtcdCluster;
  let authCluster: EtcdCluster;
  const user = 'keysmith';
  const password = 'pw-' + Math.random().toString(36).slice(2);
  beforeAll(async () => {
    [tlsCluster, authCluster] = await Promise.all([
      startEtcdCluster({ members: 1, tls: { clientCerts: true } }),
      startEtcdCluster({ members: 1, auth: { user, password, prefix: '/allowed/' } }),
    ]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([tlsCluster?.stop(), authCluster?.stop()]);
  });

  it('etcds:// with a CA file and a client certificate', async () => {
    const k = tlsCluster.location('/wave/keys');
    const tls = tlsCluster.tls!;
    const flags = ['--etcd-cacert', tls.ca, '--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey];
    expect(k).toMatch(/^etcds:\/\//);
    const [key] = keysOf(ok(await keysmith(['create-access-key', '-k', k, '--cost', '4', '--json', ...flags])));
    expect(ok(await keysmith(['list-access-keys', '-k', k, ...flags])).stdout).toBe(`${key!.id}\n`);
    ok(await keysmith(['verify-access-key', '-k', k, key!.id, ...flags], { input: key!.secret }));
  });

  it('etcds:// without the CA, or without a client certificate the server requires: one line, exit 1', async () => {
    const k = tlsCluster.location('/wave/keys');
    const tls = tlsCluster.tls!;
    const noCa = await keysmith(['list-access-keys', '-k', k, '--timeout', '3', '--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey]);
    expect(noCa.exitCode).toBe(1);
    expect(errorLine(noCa.stderr)).toMatch(/^error: cannot reach etcd at 127\.0\.0\.1:\d+: TLS failed/);
    const noCert = await keysmith(['list-access-keys', '-k', k, '--timeout', '3', '--etcd-cacert', tls.ca]);
    expect(noCert.exitCode).toBe(1);
    expect(errorLine(noCert.stderr)).toMatch(/^error: cannot reach etcd at 127\.0\.0\.1:\d+/);
    // Plain gRPC to a TLS port.
    const plain = await keysmith(['list-access-keys', '-k', k.replace(/^etcds/, 'etcd'), '--timeout', '3']);
    expect(plain.exitCode).toBe(1);
    expect(errorLine(plain.stderr)).toMatch(/^error: /);
  });

  it('user and password from $KEYSMITH_ETCD_PASSWORD or --etcd-password-stdin', async () => {
    const k = authCluster.location('/allowed/keys');
    const env = { KEYSMITH_ETCD_PASSWORD: password };
    const [key] = keysOf(ok(await keysmith(['create-access-key', '-k', k, '--etcd-user', user, '--cost', '4', '--json'], { env })));
    const listed = ok(await keysmith(['list-access-keys', '-k', k, '--etcd-user', user, '--etcd-password-stdin'], { input: password + '\n' }));
    expect(listed.stdout).toBe(`${key!.id}\n`);
    // $KEYSMITH_ETCD_USER instead of the flag; verify's secret from the environment (stdin held the password).
    ok(await keysmith(['verify-access-key', '-k', k, key!.id, '--etcd-password-stdin'], {
      input: password, env: { KEYSMITH_ETCD_USER: user, H2O_WAVE_ACCESS_KEY_SECRET: key!.secret },
    }));
  });

  it('the error corpus: wrong password, no credentials, permission denied on the prefix: one line, exit 1', async () => {
    const wrong = await keysmith(['list-access-keys', '-k', authCluster.location('/allowed/keys'), '--etcd-user', user], { env: { KEYSMITH_ETCD_PASSWORD: 'wrong' } });
    expect(wrong.exitCode).toBe(1);
    expect(errorLine(wrong.stderr)).toMatch(/: authentication failed \(wrong user or password\)$/);

    const anonymous = await keysmith(['list-access-keys', '-k', authCluster.location('/allowed/keys')]);
    expect(anonymous.exitCode).toBe(1);
    expect(errorLine(anonymous.stderr)).toMatch(/the server wants a user and password|permission denied/);

    // The user's role covers /allowed/ only.
    const denied = await keysmith(['create-access-key', '-k', authCluster.location('/other/keys'), '--etcd-user', user, '--cost', '4'], { env: { KEYSMITH_ETCD_PASSWORD: password } });
    expect(denied.exitCode).toBe(1);
    expect(errorLine(denied.stderr)).toMatch(/: permission denied on keys under \/other\/keys\//);
    expect(denied.stdout).toBe('');
    const deniedList = await keysmith(['list-access-keys', '-k', authCluster.location('/other/keys'), '--etcd-user', user], { env: { KEYSMITH_ETCD_PASSWORD: password } });
    expect(deniedList.exitCode).toBe(1);
    expect(errorLine(deniedList.stderr)).toMatch(/permission denied/);
  });

  it('no password anywhere and no terminal: exit 2 at once; both stdin flags at once: exit 2', async () => {
    const noPassword = await keysmith(['list-access-keys', '-k', authCluster.location('/allowed/keys'), '--etcd-user', user]);
    expect(noPassword.exitCode).toBe(2);
    expect(errorLine(noPassword.stderr)).toMatch(/no password for etcd user "keysmith"/);
    const empty = await keysmith(['list-access-keys', '-k', authCluster.location('/allowed/keys'), '--etcd-user', user, '--etcd-password-stdin'], { input: '' });
    expect(empty.exitCode).toBe(2);
    expect(errorLine(empty.stderr)).toMatch(/no etcd password on standard input/);
    const both = await keysmith(['set-password', 'x', '-k', authCluster.location('/allowed/keys'), '--etcd-user', user, '--etcd-password-stdin', '--password-stdin'], { input: 'a\n' });
    expect(both.exitCode).toBe(2);
    expect(errorLine(both.stderr)).toMatch(/cannot both read standard input/);
  });
});

describe('keychain locations: errors that need no etcd', () => {
  it('no endpoint reachable: one line, exit 1, within the timeout', async () => {
    const [port] = await freePorts(1);
    const started = Date.now();
    const r = await keysmith(['list-access-keys', '-k', `etcd://127.0.0.1:${port}/wave/keys`, '--timeout', '2']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toBe(`error: cannot reach etcd at 127.0.0.1:${port}: no endpoint reachable`);
    expect(Date.now() - started).toBeLessThan(6_000);
  });

  it.each([
    ['etcd://127.0.0.1:2379', /no key prefix/],
    ['etcd://127.0.0.1:2379/', /no key prefix/],
    ['etcd:///wave', /no endpoint/],
    ['etcd://127.0.0.1:99999/wave', /port 99999 out of range/],
    ['etcd://127.0.0.1:2379,/wave', /empty endpoint/],
    ['etcd://bad_host!/wave', /is not HOST:PORT/],
    ['etcd://root:secret@127.0.0.1:2379/wave', /no user or password in the location/],
    ['etcd://127.0.0.1:2379/wa ve', /contains a space or control character/],
    ['etcd://127.0.0.1:2379/wave?x=1', /contains "\?"/],
    ['ftp://example.com/keys', /unknown keychain location "ftp:\/\/\.\.\."/],
  ])('%s is a usage error (exit 2, one line)', async (location, message) => {
    const r = await keysmith(['list-access-keys', '-k', location]);
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toMatch(message);
    expect(r.stderr).not.toMatch(/secret/);
  });

  it('etcd flags on a file keychain, and TLS flags on etcd://, are usage errors', async () => {
    const file = join(scratch.fresh(), 'keychain');
    const r = await keysmith(['list-access-keys', '-k', file, '--etcd-user', 'x']);
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toBe('error: --etcd-user is for keychains on etcd (-k etcd://HOST:PORT/PREFIX), not files');
    const tls = await keysmith(['list-access-keys', '-k', 'etcd://127.0.0.1:1/x', '--etcd-cacert', file]);
    expect(tls.exitCode).toBe(2);
    expect(errorLine(tls.stderr)).toMatch(/write the location as etcds:\/\//);
  });

  it('a file keychain command does not load the etcd client', async () => {
    const dir = scratch.fresh();
    const hook = join(dir, 'hook.cjs');
    writeFileSync(hook, "process.on('exit', () => { const loaded = Object.keys(require.cache).filter((p) => /etcd3|@grpc/.test(p)); if (loaded.length) require('fs').writeSync(2, 'LOADED ' + loaded[0] + '\\n'); });\n");
    const file = join(dir, 'keychain');
    writeFileSync(file, `ABC:$2b$04$${'a'.repeat(53)}\n`);
    const { BIN } = await import('./helpers/keychain-cli.js');
    const run = (args: string[]) => spawnSync(process.execPath, ['-r', hook, BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' }).stderr;
    // The hook sees the client when it is loaded (an etcd location, even an unreachable one).
    expect(run(['list-access-keys', '-k', 'etcd://127.0.0.1:1/x', '--timeout', '0.2'])).toMatch(/LOADED/);
    for (const args of [['list-access-keys'], ['list-access-keys', '--json'], ['remove-access-key', 'NOPE']]) {
      const stderr = run([...args, '-k', file]);
      expect(stderr).not.toMatch(/LOADED/);
    }
  });
});
