/**
 * A real etcd cluster for tests: Debian's etcd 3.4 (`etcd-server`, `etcd-client`), N members on
 * 127.0.0.1 with free ports and temp data dirs, optionally with TLS (a CA made with openssl, client
 * certificates) and etcd's user/password auth. Members are stopped by PID in `stop()` (call it in
 * afterAll, it never throws) and, as a last resort, when the test process exits. The temp dir
 * (data, certificates, logs) is removed by `stop()`.
 *
 *   const cluster = await startEtcdCluster();           // 3 members
 *   cluster.location('/wave/keys')                       // etcd://127.0.0.1:P1,...,127.0.0.1:P3/wave/keys
 *   await (await cluster.leader()).kill();               // SIGKILL the leader
 *   await cluster.etcdctl(['get', '--prefix', '/wave/']) // an independent look, as root when auth is on
 *
 * Where etcd is missing, describeWithEtcd() skips with the reason, except under CI=true (a failure).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithPeer, executable } from './peers.js';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissing(): string | undefined {
  if (!executable(ETCD)) return `${ETCD} not found (Debian: etcd-server)`;
  if (!executable(ETCDCTL)) return `${ETCDCTL} not found (Debian: etcd-client)`;
  if (!executable('/usr/bin/openssl') && !executable('/bin/openssl')) return 'openssl not found (Debian: openssl)';
  return undefined;
}

/** describe() when etcd is installed; otherwise a visible skip, or under CI a failing test. */
export function describeWithEtcd(name: string, body: () => void): void {
  describeWithPeer('etcd', etcdMissing(), name, body);
}

export interface EtcdTlsOptions {
  /** Require client certificates (etcd --client-cert-auth); `clientCert`/`clientKey` are made. */
  clientCerts?: boolean;
}

export interface EtcdAuthOptions {
  /** A user for keysmith, with a role granting readwrite on keys under `prefix`. */
  user: string;
  password: string;
  /** Keys the user may read and write: those starting with this (default: '/', every key keysmith uses). */
  prefix?: string;
}

export interface EtcdClusterOptions {
  members?: number;
  tls?: EtcdTlsOptions;
  auth?: EtcdAuthOptions;
}

export interface EtcdMember {
  name: string;
  /** The running process's PID (0 while stopped). */
  readonly pid: number;
  readonly running: boolean;
  /** http(s)://127.0.0.1:PORT */
  clientUrl: string;
  /** 127.0.0.1:PORT, as it goes in an etcd:// location. */
  hostPort: string;
  /** Send a signal (default SIGKILL) and wait until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after 5 s; waits until the process is gone. */
  stop(): Promise<void>;
  /** Start it again on the same ports and data dir; resolves once it answers /health. */
  start(): Promise<void>;
}

export interface EtcdCluster {
  /** host:port of every member's client URL. */
  endpoints: string[];
  /** `etcd://h:p,h:p,h:p/PREFIX` (etcds:// with TLS). */
  location(prefix: string, members?: EtcdMember[]): string;
  members: EtcdMember[];
  /** The current leader (waits, bounded, while there is none). */
  leader(): Promise<EtcdMember>;
  /** Wait (bounded) until every running member is healthy and there is a leader. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Run etcdctl (API v3) against the running members, as root when auth is on; resolves to stdout. */
  etcdctl(args: string[], options?: { user?: string; password?: string; endpoints?: string[] }): Promise<string>;
  /** TLS material (when started with tls): CA, client certificate and key. */
  tls?: { ca: string; clientCert: string; clientKey: string };
  /** root's password (when started with auth). */
  rootPassword?: string;
  /** The temp dir holding data dirs, certificates and logs (removed by stop()). */
  dir: string;
  /** Each member's log (etcd's stderr), for a failing test's message. */
  logs(): string;
  /** Stop every member by PID and remove the temp dir. Never throws. */
  stop(): Promise<void>;
}

/** Every etcd process any cluster in this test process started: killed on exit as a last resort. */
const livePids = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** `count` distinct free TCP ports on 127.0.0.1 (each bound to port 0, all held until all are known). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((server.address() as { port: number }).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message.split('\n')[0]}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl. */
async function makeCertificates(dir: string): Promise<{ ca: string; caKey: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }> {
  const p = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=keysmith test CA', '-keyout', p('ca-key.pem'), '-out', p('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  for (const [name, cn, usage, san] of [
    ['server', '127.0.0.1', 'serverAuth,clientAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    ['client', 'keysmith-client', 'clientAuth', ''],
  ] as const) {
    await run('openssl', ['req', ...ec, '-subj', `/CN=${cn}`, '-keyout', p(`${name}-key.pem`), '-out', p(`${name}.csr`)]);
    writeFileSync(p(`${name}.ext`), `extendedKeyUsage=${usage}\nkeyUsage=critical,digitalSignature,keyEncipherment\n${san}\n`);
    await run('openssl', ['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca-key.pem'), '-CAcreateserial',
      '-days', '2', '-extfile', p(`${name}.ext`), '-out', p(`${name}.pem`)]);
  }
  return { ca: p('ca.pem'), caKey: p('ca-key.pem'), serverCert: p('server.pem'), serverKey: p('server-key.pem'), clientCert: p('client.pem'), clientKey: p('client-key.pem') };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Start an etcd cluster (3 members by default) and wait until it is healthy with a leader. */
export async function startEtcdCluster(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const missing = etcdMissing();
  if (missing) throw new Error(missing);
  installExitHook();
  const n = options.members ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-etcd-'));
  const members: Member[] = [];
  let tls: Awaited<ReturnType<typeof makeCertificates>> | undefined;
  const cluster: EtcdCluster = {
    endpoints: [],
    members,
    dir,
    location: (prefix, only) => `${tls ? 'etcds' : 'etcd'}://${(only ?? members).map((m) => m.hostPort).join(',')}${prefix.startsWith('/') ? '' : '/'}${prefix}`,
    leader: () => findLeader(cluster, members),
    waitHealthy: (timeoutMs = 30_000) => waitHealthy(members, timeoutMs),
    etcdctl: (args, o = {}) => {
      const endpoints = o.endpoints ?? members.filter((m) => m.running).map((m) => m.clientUrl);
      const auth = o.user !== undefined ? ['--user', o.user, '--password', o.password ?? '']
        : cluster.rootPassword !== undefined ? ['--user', 'root', '--password', cluster.rootPassword] : [];
      const tlsArgs = tls ? ['--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : [];
      return run(ETCDCTL, [`--endpoints=${endpoints.join(',')}`, ...tlsArgs, ...auth, '--command-timeout=10s', ...args], { ETCDCTL_API: '3' });
    },
    logs: () => members.map((m) => `--- ${m.name}\n${m.log()}`).join('\n'),
    stop: async () => {
      await Promise.all(members.map((m) => m.stop().catch(() => {})));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    if (options.tls) {
      mkdirSync(join(dir, 'tls'), { mode: 0o700 });
      tls = await makeCertificates(join(dir, 'tls'));
      cluster.tls = { ca: tls.ca, clientCert: tls.clientCert, clientKey: tls.clientKey };
    }
    const ports = await freePorts(2 * n);
    const scheme = tls ? 'https' : 'http';
    const token = `keysmith-${process.pid}-${Date.now().toString(36)}`;
    const peerUrl = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
    const initialCluster = Array.from({ length: n }, (_, i) => `m${i}=${peerUrl(i)}`).join(',');
    for (let i = 0; i < n; i++) {
      const clientUrl = `${scheme}://127.0.0.1:${ports[2 * i]}`;
      const args = [
        '--name', `m${i}`,
        '--data-dir', join(dir, `m${i}.data`),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl(i),
        '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        // Quick leader elections: tests kill leaders and wait for the next one.
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--logger', 'zap',
        '--log-level', 'warn',
        ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca] : []),
        ...(tls && options.tls?.clientCerts ? ['--client-cert-auth'] : []),
      ];
      members.push(new Member(`m${i}`, clientUrl, args, join(dir, `m${i}.log`), tls));
    }
    cluster.endpoints = members.map((m) => m.hostPort);
    for (const m of members) m.spawn();
    await waitHealthy(members, 30_000);
    if (options.auth) await enableAuth(cluster, options.auth);
    return cluster;
  } catch (err) {
    const logs = cluster.logs();
    await cluster.stop();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
}

async function enableAuth(cluster: EtcdCluster, auth: EtcdAuthOptions): Promise<void> {
  const root = `root-${Math.random().toString(36).slice(2)}`;
  const ctl = (args: string[]) => cluster.etcdctl(args, { user: undefined });
  await ctl(['user', 'add', 'root', '--interactive=false', '--new-user-password', root]);
  await ctl(['user', 'grant-role', 'root', 'root']);
  await ctl(['user', 'add', auth.user, '--interactive=false', '--new-user-password', auth.password]);
  await ctl(['role', 'add', 'keysmith']);
  await ctl(['role', 'grant-permission', 'keysmith', 'readwrite', auth.prefix ?? '/', '--prefix=true']);
  await ctl(['user', 'grant-role', auth.user, 'keysmith']);
  await ctl(['auth', 'enable']);
  cluster.rootPassword = root;
}

class Member implements EtcdMember {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly hostPort: string;
  constructor(
    readonly name: string,
    readonly clientUrl: string,
    private readonly args: string[],
    private readonly logFile: string,
    readonly tls: { ca: string; clientCert: string; clientKey: string } | undefined,
  ) {
    this.hostPort = clientUrl.replace(/^https?:\/\//, '');
  }

  get pid(): number {
    return this.running ? this.child!.pid! : 0;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  }

  spawn(): void {
    const fd = openSync(this.logFile, 'a');
    try {
      const child = spawn(ETCD, this.args, { stdio: ['ignore', fd, fd] });
      this.child = child;
      if (child.pid) livePids.add(child.pid);
      this.exited = new Promise((resolve) => {
        child.once('exit', () => {
          if (child.pid) livePids.delete(child.pid);
          resolve();
        });
        child.once('error', () => resolve());
      });
    } finally {
      closeSync(fd);
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.spawn();
    const deadline = Date.now() + 30_000;
    while (!(await this.healthy())) {
      if (!this.running) throw new Error(`etcd member ${this.name} exited on restart:\n${this.log()}`);
      if (Date.now() > deadline) throw new Error(`etcd member ${this.name} not healthy 30 s after restart:\n${this.log()}`);
      await sleep(100);
    }
  }

  /** An HTTP request to the member's client URL (the gRPC gateway and /health); undefined when it does not answer. */
  request(method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number; body: string } | undefined> {
    const url = new URL(path, this.clientUrl);
    const tlsOptions = this.tls ? { ca: readFileSync(this.tls.ca), cert: readFileSync(this.tls.clientCert), key: readFileSync(this.tls.clientKey) } : {};
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      const req = request(url, { method, timeout: 2_000, headers: body ? { 'content-type': 'application/json' } : {}, ...tlsOptions }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', () => resolve(undefined));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
      req.end(body);
    });
  }

  async healthy(): Promise<boolean> {
    if (!this.running) return false;
    const res = await this.request('GET', '/health');
    if (!res || res.status !== 200) return false;
    try {
      return (JSON.parse(res.body) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  /** This member's ID and the leader's ID it knows of, from the maintenance status. */
  async status(): Promise<{ id: string; leader: string } | undefined> {
    if (!this.running) return undefined;
    const res = await this.request('POST', '/v3/maintenance/status', '{}');
    if (!res || res.status !== 200) return undefined;
    try {
      const status = JSON.parse(res.body) as { header?: { member_id?: string }; leader?: string };
      return status.header?.member_id && status.leader ? { id: status.header.member_id, leader: status.leader } : undefined;
    } catch {
      return undefined;
    }
  }
}

async function waitHealthy(members: Member[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = members.filter((m) => m.running);
    const health = await Promise.all(running.map((m) => m.healthy()));
    if (running.length > 0 && health.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`etcd cluster not healthy within ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function findLeader(cluster: EtcdCluster, members: Member[]): Promise<EtcdMember> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const statuses = await Promise.all(members.map((m) => m.status()));
    const leaderId = statuses.find((s) => s !== undefined)?.leader;
    const index = statuses.findIndex((s) => s !== undefined && s.id === leaderId);
    if (index !== -1) return members[index]!;
    // The gRPC gateway refuses requests with client certificates when auth is on: ask etcdctl.
    if (statuses.every((s) => s === undefined)) {
      const leaders = await Promise.all(members.map(async (m) => {
        if (!m.running) return false;
        const line = await cluster.etcdctl(['endpoint', 'status', '-w', 'simple'], { endpoints: [m.clientUrl] }).catch(() => '');
        // "127.0.0.1:PORT, ID, VERSION, DB SIZE, IS LEADER, IS LEARNER, ..."
        return line.split(',').map((f) => f.trim())[4] === 'true';
      }));
      const found = leaders.indexOf(true);
      if (found !== -1) return members[found]!;
    }
    if (Date.now() > deadline) throw new Error('no etcd leader within 20 s');
    await sleep(100);
  }
}
