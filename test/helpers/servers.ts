/**
 * Start keysmith's fixture token servers (fixtures/servers/*.mjs) as separate processes for
 * end-to-end tests, on 127.0.0.1 with a free port.
 *
 *   const server = await startServer('tiled', { accessTtl: 5, rotateRefresh: true });
 *   ... fetch(`${server.url}/api/v1/`) or run keysmith against server.url ...
 *   expect(await server.count('refresh')).toBe(1);
 *   await server.stop();
 *
 * Options travel as JSON in $KEYSMITH_TEST_SERVER_OPTIONS; the server answers with one stdout line
 * {"url","pid"} once it listens. The admin hooks (/__admin/stats, /config, /approve) exist only
 * in these fixtures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export type ServerName = 'tiled' | 'basic-login' | 'wavemaker' | 'oidc' | 'device-stub' | 'hostile' | 'sink' | 'kube-api' | 'apikey';

/**
 * hostile.mjs: what goes wrong on one route (see the top of fixtures/servers/hostile.mjs). The
 * first that applies wins: a redirect, a raw answer (status), or the normal answer changed by
 * `fields`, `huge` or `endless`. Strings may contain {sink} and {self} (the servers' origins).
 */
export interface HostileAttack {
  redirect?: 301 | 302 | 303 | 307 | 308;
  /** "sink" (default), "hop" (same-origin first), "same" (legitimate), "http-self", or a URL. */
  to?: string;
  status?: number;
  json?: unknown;
  body?: string;
  type?: string;
  headers?: Record<string, string>;
  fields?: Record<string, unknown>;
  huge?: number;
  endless?: boolean;
  delayMs?: number;
  /** Compute the normal answer, then hold it this long before sending it. */
  lateMs?: number;
}

/** Options understood by the fixtures; each server ignores the ones that are not its own. */
export interface ServerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Access-token lifetime in seconds (tiled 900, basic-login 10, wavemaker: token validity 1800). */
  accessTtl?: number;
  /** Refresh-token lifetime in seconds (tiled 604800, basic-login 1209600). */
  refreshTtl?: number;
  /** Tiled session_max_age in seconds (365 days). */
  sessionTtl?: number;
  /** user -> password. basic-login: null (default) accepts any user with password "password". */
  users?: Record<string, string> | null;
  /** JWT keys: the first signs, all verify (tiled, basic-login). */
  secretKeys?: string[];
  /** Retire each used refresh token; replaying one revokes the session (not the real behaviour). */
  rotateRefresh?: boolean;
  /** Delay in ms before answering a refresh (tiled, basic-login) or a token renewal (wavemaker). */
  slowRefreshMs?: number;
  /** Device flow: polling interval (tiled 5, basic-login 2) and lifetime (900) in seconds. */
  deviceInterval?: number;
  deviceExpiresIn?: number;
  /** User the fake identity provider logs in during a device flow's browser step ("alice"). */
  idpUser?: string;
  /** Tiled providers: names ("toy" internal, "orcid" external) or {provider, mode}. */
  providers?: Array<string | { provider: string; mode: 'internal' | 'external' }>;
  /** Tiled allow_anonymous_access. */
  allowAnonymous?: boolean;
  /** WaveMaker: "docs" (wm_auth_token, default) or "runtime" (WM_AUTH_TOKEN). */
  variant?: 'docs' | 'runtime';
  /** WaveMaker app context path ("/Demo"). */
  base?: string;
  /** WaveMaker token parameter/header name; default per variant. */
  tokenParameter?: string | null;
  /** Log each request to the server's stderr. */
  log?: boolean;
  /** hostile: the dialect it imitates. */
  dialect?: 'tiled' | 'basic-login' | 'wavemaker' | 'oauth2';
  /** hostile: the sink's origin (http://127.0.0.1:PORT), target of foreign redirects and links. */
  sink?: string | null;
  /** hostile: serve https with this certificate and key (PEM file paths). */
  tls?: { cert: string; key: string } | null;
  /** hostile: route name -> attack (routes: discovery, login, authorize, poll, refresh, revoke, whoami, renew, metadata, device, userinfo). */
  attacks?: Record<string, HostileAttack>;
  /** hostile: the user it answers for, the password and OAuth client secret it wants. */
  username?: string;
  password?: string;
  clientSecret?: string;
  /** hostile (tiled): the one provider and its mode. */
  provider?: string;
  providerMode?: 'internal' | 'external';
  /** hostile: device-flow polls answered "pending" before approval, and ms before approval. */
  approveAfterPolls?: number;
  approveAfterMs?: number;
  /** hostile: bytes after which an endless body stops (64 MiB). */
  endlessLimit?: number;
  /** sink: "token" (a plausible token answer, default) or "empty" ({}). */
  answer?: 'token' | 'empty';
  /** tiled: the scopes its access tokens carry (default: the "user" role's, create:apikeys included). */
  userScopes?: string[] | null;
  /** kube-api: the Tiled test server that vouches for bearer tokens (its auth/whoami). */
  tokenServer?: string | null;
  /** tiled, basic-login, wavemaker: access tokens refused with 401 as if revoked on the server ("*": all). */
  revokedAccess?: string[];
  /** apikey: the keys it accepts; the Wave keychain whose pairs it accepts with Basic. */
  apiKeys?: string[];
  keychain?: string | null;
}

/**
 * GET /__admin/stats: one number per counter (route names such as login, refresh, whoami, token;
 * see the top of each server file), plus the structured fields below.
 */
export interface ServerStats {
  [counter: string]: unknown;
  /** responses per route and status, e.g. { refresh: { "200": 2, "401": 1 } } */
  statuses: Record<string, Record<string, number>>;
  /** highest number of simultaneous requests seen per route */
  maxInFlight: Record<string, number>;
  /** server-specific session records */
  sessions: Array<Record<string, unknown>>;
}

export interface TestServer {
  readonly name: ServerName;
  /** http://127.0.0.1:PORT (WaveMaker apps live under `${url}/Demo`); https://... for hostile with `tls` */
  readonly url: string;
  /** Where the admin routes are: url, or a plain-http address when url is https. */
  readonly adminUrl: string;
  readonly pid: number;
  stats(): Promise<ServerStats>;
  /** One counter of stats(). */
  count(counter: string): Promise<number>;
  /** Change options of the running server (shallow merge). */
  admin(patch: ServerOptions): Promise<void>;
  /** Finish a device flow's browser step for this user code (default user: option idpUser). */
  approve(userCode: string, username?: string): Promise<void>;
  /** SIGTERM, then SIGKILL if it has not exited after a bounded wait. Idempotent. */
  stop(): Promise<void>;
}

const SERVERS_DIR = new URL('../../fixtures/servers/', import.meta.url);
const READY_TIMEOUT_MS = 10_000;
const TERM_GRACE_MS = 3_000;
const KILL_GRACE_MS = 2_000;
const ADMIN_TIMEOUT_MS = 5_000;
const STDERR_LIMIT = 16_384;

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Spawn `node fixtures/servers/<name>.mjs` and wait (at most readyTimeoutMs) until it listens. */
export async function startServer(
  name: ServerName,
  options: ServerOptions = {},
  { readyTimeoutMs = READY_TIMEOUT_MS }: { readyTimeoutMs?: number } = {},
): Promise<TestServer> {
  installExitHook();
  const script = fileURLToPath(new URL(`${name}.mjs`, SERVERS_DIR));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, KEYSMITH_TEST_SERVER_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));

  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (stderr.length < STDERR_LIMIT) stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  let ready: { url: string; pid: number; adminUrl: string };
  try {
    ready = await new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const fail = (why: string) => {
        clearTimeout(timer);
        lines.close();
        reject(new Error(`${name} test server ${why}${stderr ? `; stderr:\n${stderr}` : ''}`));
      };
      const timer = setTimeout(() => fail(`did not report ready within ${readyTimeoutMs} ms`), readyTimeoutMs);
      child.once('error', (err) => fail(`could not be started: ${err.message}`));
      child.once('exit', (code, signal) => fail(`exited before it was ready (code ${code}, signal ${signal})`));
      lines.once('line', (line) => {
        clearTimeout(timer);
        // Keep draining stdout so a chatty server never blocks on a full pipe.
        lines.on('line', () => {});
        try {
          const parsed = JSON.parse(line) as { url?: unknown; pid?: unknown; adminUrl?: unknown };
          if (typeof parsed.url !== 'string' || !/^https?:\/\/127\.0\.0\.1:/.test(parsed.url) || typeof parsed.pid !== 'number') throw new Error('bad fields');
          // An https server (hostile.mjs in TLS mode) serves its admin routes on a plain-http port.
          const adminUrl = parsed.adminUrl === undefined ? parsed.url : parsed.adminUrl;
          if (typeof adminUrl !== 'string' || !adminUrl.startsWith('http://127.0.0.1:')) throw new Error('bad adminUrl');
          resolve({ url: parsed.url, pid: parsed.pid, adminUrl });
        } catch {
          fail(`printed an unexpected first line: ${line}`);
        }
      });
    });
  } catch (err) {
    await terminate(child, exited);
    throw err;
  }

  const adminCall = async (path: string, body: unknown): Promise<Response> => {
    const res = await fetch(`${ready.adminUrl}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`${name} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res;
  };

  const server: TestServer = {
    name,
    url: ready.url,
    adminUrl: ready.adminUrl,
    pid: ready.pid,
    stats: async () => (await (await adminCall('/__admin/stats', undefined)).json()) as ServerStats,
    count: async (counter) => {
      const value = (await server.stats())[counter];
      return typeof value === 'number' ? value : 0;
    },
    admin: async (patch) => {
      await (await adminCall('/__admin/config', patch)).arrayBuffer();
    },
    approve: async (userCode, username) => {
      await (await adminCall('/__admin/approve', username === undefined ? { user_code: userCode } : { user_code: userCode, username })).arrayBuffer();
    },
    stop: () => terminate(child, exited),
  };
  return server;
}

/** Stop every server this process started and that is still running (for afterAll hooks). */
export async function stopAllServers(): Promise<void> {
  await Promise.all(
    [...running].map((child) => terminate(child, new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()))))),
  );
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  signal(child, 'SIGTERM');
  if (await settlesWithin(exited, TERM_GRACE_MS)) return;
  signal(child, 'SIGKILL');
  await settlesWithin(exited, KILL_GRACE_MS);
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // already gone (ESRCH)
  }
}

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** If the test process exits with servers still running, kill them (synchronously, by PID). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) signal(child, 'SIGKILL');
  });
}
