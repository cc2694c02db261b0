// Benchmark cases for keychains on etcd (issue 12), each next to the same work on a keychain file:
// - 100 creates (cost 4) from 10 processes at once, against a local 3-member cluster and a file;
// - list-access-keys of 100,000 keys on etcd, with the same list from a file as the peer.
// File keychain commands must not get slower for it: bench/cases/keychain.mjs keeps their limits.
// Without /usr/bin/etcd these cases are left out (with a line on stderr).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { etcdMissing, startEtcdCluster } from '../lib/etcd.mjs';

const BCRYPT64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomFrom(alphabet, length) {
  // Benchmark data only: modulo bias does not matter here.
  const bytes = randomBytes(length);
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[bytes[i] % alphabet.length];
  return s;
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${args.slice(1, 2).join(' ')}: exit ${code}: ${stderr.trim().split('\n')[0]}`))));
  });
}

/** 100 create-access-key runs (cost 4), from 10 concurrent workers of 10 each; keys per second. */
async function hundredCreates(keysmith, location) {
  const started = performance.now();
  await Promise.all(Array.from({ length: 10 }, async () => {
    for (let i = 0; i < 10; i++) await run(process.execPath, [keysmith, 'create-access-key', '-k', location, '--cost', '4']);
  }));
  return 100 / ((performance.now() - started) / 1000);
}

export default async function keychainEtcd(b) {
  const missing = etcdMissing();
  if (missing) {
    process.stderr.write(`keychain-etcd: skipped: ${missing}\n`);
    return [];
  }
  let started;
  const cluster = () => {
    started ??= startEtcdCluster(b.tmp, { members: 3 }).then((c) => {
      b.onCleanup(() => c.stop());
      return c;
    });
    return started;
  };

  // 100,000 entries, the same in etcd and in a file (synthesized cost-10 hashes: listing never verifies).
  const bigFile = join(b.tmp, 'big.keychain');
  let bigLocation;
  const makeBig = async () => {
    if (bigLocation) return;
    const c = await cluster();
    const ids = new Set();
    while (ids.size < 100_000) ids.add(randomFrom(ID_ALPHABET, 20));
    const entries = [...ids].map((id) => [id, `$2b$10$${randomFrom(BCRYPT64, 53)}`]);
    writeFileSync(bigFile, entries.map(([id, hash]) => `${id}:${hash}\n`).join(''), { mode: 0o600 });
    const etcd3 = await import('etcd3');
    const { Etcd3 } = etcd3.default ?? etcd3;
    const client = new Etcd3({ hosts: c.endpoints.map((e) => `http://${e}`) });
    try {
      // etcd takes at most 128 operations per transaction; 8 transactions in flight.
      const batches = [];
      for (let i = 0; i < entries.length; i += 128) batches.push(entries.slice(i, i + 128));
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < batches.length) {
          const batch = batches[next++];
          await client.kv.txn({ success: batch.map(([id, hash]) => ({ request_put: { key: Buffer.from(`/bench/big/${id}`), value: Buffer.from(hash) } })) });
        }
      }));
    } finally {
      client.close();
    }
    bigLocation = c.location('/bench/big');
  };

  let fileRate;
  return [
    {
      name: 'create-access-key x 100 (cost 4, 10 processes): keychain file',
      kind: 'throughput',
      run: async () => {
        fileRate = await hundredCreates(b.keysmith, join(b.tmp, 'creates.keychain'));
        return { value: fileRate, unit: 'keys/s', note: 'one locked, atomic write of the whole file per create' };
      },
    },
    {
      name: 'create-access-key x 100 (cost 4, 10 processes): etcd, 3 members',
      kind: 'throughput',
      run: async () => {
        const c = await cluster();
        const value = await hundredCreates(b.keysmith, c.location('/bench/creates'));
        const side = fileRate === undefined ? '' : `; ${(value / fileRate).toFixed(2)}× the file keychain's ${fileRate.toFixed(1)} keys/s`;
        return { value, unit: 'keys/s', note: `one transaction per create, each process loads the etcd client${side}` };
      },
    },
    {
      name: 'list-access-keys (100,000 keys) on etcd, 3 members',
      get argv() {
        return ['list-access-keys', '-k', bigLocation];
      },
      setup: makeBig,
      peer: {
        name: 'the same keys in a file',
        command: process.execPath,
        get args() {
          return [b.keysmith, 'list-access-keys', '-k', bigFile];
        },
      },
    },
  ];
}
