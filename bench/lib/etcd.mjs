// A local etcd cluster for benchmarks: Debian's /usr/bin/etcd, N members on 127.0.0.1 with free
// ports and data dirs under `dir`, stopped by PID in stop() (and killed on exit as a last resort).
// The tests' harness (test/helpers/etcd.ts) does the same with TLS, auth and restarts; benchmarks
// need only a plain cluster, without a TypeScript loader.
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ETCD = '/usr/bin/etcd';

/** Why an etcd cluster cannot be started here, or undefined. */
export function etcdMissing() {
  try {
    accessSync(ETCD, constants.X_OK);
    return undefined;
  } catch {
    return `${ETCD} not found (Debian: etcd-server)`;
  }
}

async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

function healthy(clientUrl) {
  return new Promise((resolve) => {
    const req = request(`${clientUrl}/health`, { timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const live = new Set();
let hooked = false;

/** Start `members` etcd members in `dir`; resolves when all answer /health. */
export async function startEtcdCluster(dir, { members = 3 } = {}) {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const child of live) child.kill('SIGKILL');
    });
  }
  const ports = await freePorts(2 * members);
  const peer = (i) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initial = Array.from({ length: members }, (_, i) => `m${i}=${peer(i)}`).join(',');
  const nodes = Array.from({ length: members }, (_, i) => {
    const clientUrl = `http://127.0.0.1:${ports[2 * i]}`;
    const log = openSync(join(dir, `etcd-m${i}.log`), 'a');
    const child = spawn(ETCD, [
      '--name', `m${i}`, '--data-dir', join(dir, `etcd-m${i}.data`),
      '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`,
      '--logger', 'zap', '--log-level', 'error',
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
    live.add(child);
    const exited = new Promise((resolve) => child.once('exit', () => {
      live.delete(child);
      resolve();
    }));
    return { clientUrl, hostPort: clientUrl.slice('http://'.length), child, exited };
  });
  const cluster = {
    endpoints: nodes.map((n) => n.hostPort),
    location: (prefix) => `etcd://${nodes.map((n) => n.hostPort).join(',')}${prefix}`,
    stop: async () => {
      for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGTERM');
      await Promise.all(nodes.map((n) => n.exited));
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if ((await Promise.all(nodes.map((n) => healthy(n.clientUrl)))).every(Boolean)) return cluster;
    if (Date.now() > deadline || nodes.some((n) => n.child.exitCode !== null)) {
      await cluster.stop();
      throw new Error(`etcd cluster not healthy within 30 s (logs in ${dir})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
