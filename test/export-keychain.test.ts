/**
 * `keysmith export-keychain --format k8s-secret`: the manifest parses as YAML, has the shape of a
 * `v1` Secret (checked against @kubernetes/client-node's V1Secret model too), and its data decodes
 * to exactly the bytes `keysmith sync` writes; names are checked as Kubernetes checks them. With
 * kubectl installed, its own `create secret --dry-run=client` output is compared as well (optional:
 * not a Debian package, so .ci/run does not install it).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { describeWithEtcd, startEtcdCluster, type EtcdCluster } from './helpers/etcd.js';
import { errorLine, keysmith, useScratch } from './helpers/keychain-cli.js';

const scratch = useScratch('keysmith-export-');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  type: string;
  data: Record<string, string>;
}

/** Parse the output as exactly one YAML document and check the Secret's shape. */
function manifest(stdout: string): Manifest {
  const docs = parseAllDocuments(stdout);
  expect(docs.length).toBe(1);
  expect(docs[0]!.errors).toEqual([]);
  const m = parse(stdout) as Manifest;
  expect(Object.keys(m)).toEqual(['apiVersion', 'kind', 'metadata', 'type', 'data']);
  expect(m.apiVersion).toBe('v1');
  expect(m.kind).toBe('Secret');
  expect(m.type).toBe('Opaque');
  for (const value of Object.values(m.data)) expect(value).toMatch(/^[A-Za-z0-9+/]*={0,2}$/);
  return m;
}

const decode = (m: Manifest, key = '.wave-keychain') => Buffer.from(m.data[key]!, 'base64');

async function keyLines(n: number): Promise<string[]> {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${String.fromCharCode(90 - i).repeat(20)}:${await bcrypt.hash(`s${i}`, 4)}\n`);
  return lines;
}

describe('export-keychain --format k8s-secret (file keychains)', () => {
  it('prints a v1 Secret whose data is the keychain as sync writes it: sorted ID:HASH lines, comments dropped', async () => {
    const dir = scratch.fresh();
    const lines = await keyLines(3);
    // Unsorted, with a comment and a blank line (which waved would refuse).
    writeFileSync(join(dir, '.wave-keychain'), `# team keys\n${lines[1]}\n${lines[0]}${lines[2]}`);
    const r = await keysmith(['export-keychain', '--format', 'k8s-secret', '--name', 'wave-keychain'], { cwd: dir });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const m = manifest(r.stdout);
    expect(m.metadata).toEqual({ name: 'wave-keychain' });
    expect(Object.keys(m.data)).toEqual(['.wave-keychain']);
    expect(decode(m).toString('utf8')).toBe([...lines].sort().join(''));
  });

  it('--namespace and --file-key; the output is what kubectl apply reads (V1Secret model)', async () => {
    const dir = scratch.fresh();
    const file = join(dir, 'keys');
    const lines = await keyLines(2);
    writeFileSync(file, [...lines].sort().join(''));
    const r = await keysmith(['export-keychain', '-k', file, '--format', 'k8s-secret', '--name', 'wave.keys-1', '--namespace', 'wave-prod', '--file-key', 'keychain_v1.txt']);
    expect(r.exitCode, r.stderr).toBe(0);
    const m = manifest(r.stdout);
    expect(m.metadata).toEqual({ name: 'wave.keys-1', namespace: 'wave-prod' });
    expect(decode(m, 'keychain_v1.txt')).toEqual(readFileSync(file));
    const { ObjectSerializer } = await import('@kubernetes/client-node/dist/gen/models/ObjectSerializer.js');
    // Every field is one the V1Secret model knows: a round trip through it changes nothing.
    const secret = ObjectSerializer.deserialize(parse(r.stdout), 'V1Secret', '');
    expect(ObjectSerializer.serialize(secret, 'V1Secret', '')).toEqual(parse(r.stdout));
  });

  it('kubectl create secret --dry-run=client makes the same Secret (skipped without kubectl)', async (t) => {
    // Optional: kubectl is no Debian package, so .ci/run does not install it (CI skips this too).
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) t.skip('kubectl not found');
    const dir = scratch.fresh();
    const file = join(dir, '.wave-keychain');
    writeFileSync(file, (await keyLines(2)).sort().join(''));
    const r = await keysmith(['export-keychain', '-k', file, '--format', 'k8s-secret', '--name', 'wk', '--namespace', 'ns1']);
    const k = spawnSync('kubectl', ['create', 'secret', 'generic', 'wk', '-n', 'ns1', `--from-file=.wave-keychain=${file}`, '--dry-run=client', '-o', 'json'], { encoding: 'utf8' });
    expect(k.status, k.stderr).toBe(0);
    const theirs = JSON.parse(k.stdout) as Manifest;
    const ours = manifest(r.stdout);
    expect(ours.data).toEqual(theirs.data);
    expect(ours.metadata).toEqual({ name: theirs.metadata.name, namespace: theirs.metadata.namespace });
  });

  it('an empty keychain exports with a warning; a missing one is an error', async () => {
    const dir = scratch.fresh();
    writeFileSync(join(dir, 'empty'), '');
    let r = await keysmith(['export-keychain', '-k', join(dir, 'empty'), '--format', 'k8s-secret', '--name', 'x']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(decode(manifest(r.stdout)).length).toBe(0);
    expect(r.stderr).toMatch(/^warning: .*empty has no access keys; a Wave server started with this Secret accepts the default key pair\n$/);
    r = await keysmith(['export-keychain', '-k', join(dir, 'missing'), '--format', 'k8s-secret', '--name', 'x']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/keychain .*missing does not exist/);
    expect(r.stdout).toBe('');
  });

  it('a keychain over 1 MiB is refused: Kubernetes would not store the Secret', async () => {
    const dir = scratch.fresh();
    const file = join(dir, 'big');
    // 13,000 well-formed lines (the hashes need not verify to be exported) ≈ 1.07 MB.
    const hash = `$2b$04$${'a'.repeat(53)}`;
    writeFileSync(file, Array.from({ length: 13_000 }, (_, i) => `K${String(i).padStart(19, '0')}:${hash}\n`).join(''));
    const r = await keysmith(['export-keychain', '-k', file, '--format', 'k8s-secret', '--name', 'x']);
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/the Secret's data would be 1066014 bytes; Kubernetes refuses Secrets over 1048576 bytes/);
    expect(r.stdout).toBe('');
  });

  it.each([
    [['--name', 'x'], /--format is required/],
    [['--format', 'k8s-secret'], /--name is required/],
    [['--format', 'k8s-secret', '--name', 'Wave'], /--name "Wave" is not a valid Kubernetes Secret name/],
    [['--format', 'k8s-secret', '--name', '-wave'], /--name "-wave" is not a valid/],
    [['--format', 'k8s-secret', '--name', 'wave..keys'], /--name "wave..keys" is not a valid/],
    [['--format', 'k8s-secret', '--name', 'a'.repeat(254)], /at most 253/],
    [['--format', 'k8s-secret', '--name', 'wave_keys'], /not a valid Kubernetes Secret name/],
    [['--format', 'k8s-secret', '--name', 'x', '--namespace', 'wave.prod'], /--namespace "wave.prod" is not a valid Kubernetes namespace/],
    [['--format', 'k8s-secret', '--name', 'x', '--namespace', 'n'.repeat(64)], /at most 63/],
    [['--format', 'k8s-secret', '--name', 'x', '--file-key', '..keys'], /--file-key "..keys" is not a valid Secret data key/],
    [['--format', 'k8s-secret', '--name', 'x', '--file-key', 'a/b'], /--file-key "a\/b" is not a valid Secret data key/],
    [['--format', 'k8s-secret', '--name', 'x', '--file-key', '.'], /may not be '\.'/],
    [['--format', 'k8s-secret', '--name', 'x', '--file-key', 'wave\u001b[2Jkeychain'], /--file-key "wave\\u001b\[2Jkeychain"/],
  ])('refuses %j with one line, exit 2', async (args, message) => {
    const dir = scratch.fresh();
    writeFileSync(join(dir, '.wave-keychain'), '');
    const r = await keysmith(['export-keychain', ...args], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(errorLine(r.stderr)).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('an unknown --format is a usage error', async () => {
    const r = await keysmith(['export-keychain', '--format', 'helm', '--name', 'x']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/helm/);
    expect(r.stdout).toBe('');
  });
});

describeWithEtcd('export-keychain from etcd', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 1 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('the data decodes to exactly the bytes sync writes from the same keychain', async () => {
    const dir = scratch.fresh();
    const location = cluster.location('/export/keys');
    const c = await keysmith(['create-access-key', '-k', location, '--cost', '4', '--count', '5']);
    expect(c.exitCode, c.stderr).toBe(0);
    const file = join(dir, '.wave-keychain');
    const s = await keysmith(['sync', '--from', location, '--to', file]);
    expect(s.exitCode, s.stderr).toBe(0);
    const r = await keysmith(['export-keychain', '-k', location, '--format', 'k8s-secret', '--name', 'wave-keychain', '--namespace', 'wave']);
    expect(r.exitCode, r.stderr).toBe(0);
    const m = manifest(r.stdout);
    expect(decode(m)).toEqual(readFileSync(file));
    expect(decode(m).toString().split('\n').filter(Boolean).length).toBe(5);
    // And a file keychain that sync wrote exports the same bytes.
    const again = await keysmith(['export-keychain', '-k', file, '--format', 'k8s-secret', '--name', 'wave-keychain', '--namespace', 'wave']);
    expect(again.stdout).toBe(r.stdout);
  });
});
