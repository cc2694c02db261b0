/**
 * `keysmith kube-credential` as a kubectl exec credential plugin. A real client program
 * (`@kubernetes/client-node`: KubeConfig + CoreV1Api) lists namespaces on a local Kubernetes API
 * test server (fixtures/servers/kube-api.mjs), which accepts a bearer token only when the Tiled
 * test server that issued it vouches for it; the client's exec authenticator runs keysmith for the
 * token, and runs it again once the token has expired. Plus the ExecCredential envelope itself,
 * the v1beta1 answer, usage errors, and one refresh for many concurrent plugin runs.
 */
import { spawnSync } from 'node:child_process';
import { delimiter, dirname, join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { useScratch } from './helpers/keychain-cli.js';
import { BIN, cleanEnv, keysmith, oneErrorLine } from './helpers/keysmith.js';
import { startServer, stopAllServers, type TestServer } from './helpers/servers.js';

afterAll(stopAllServers);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const scratch = useScratch('keysmith-kube-');
const V1 = 'client.authentication.k8s.io/v1';
const V1BETA1 = 'client.authentication.k8s.io/v1beta1';
const execInfo = (apiVersion: string) => JSON.stringify({ kind: 'ExecCredential', apiVersion, spec: { interactive: false } });

/** Where keysmith keeps its files for one test: explicit XDG directories under a fresh HOME. */
function freshHome(): Record<string, string> {
  const home = scratch.fresh();
  return { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), XDG_STATE_HOME: join(home, 'state') };
}

async function login(server: TestServer, profile = 'tiled'): Promise<Record<string, string>> {
  const env = freshHome();
  const r = await keysmith(['login', server.url, '--profile', profile, '-u', 'alice'], { env: { ...env, KEYSMITH_PASSWORD: 'secret1' } });
  expect(r.exitCode, r.stderr).toBe(0);
  return env;
}

/**
 * A user's program: `@kubernetes/client-node` loads a kubeconfig whose user is the README's exec
 * block (the built keysmith binary, `kube-credential --profile PROFILE`, `interactiveMode: Never`)
 * and whose cluster is the local test API server. `listNamespace()` makes the client's exec
 * authenticator run keysmith, keep the ExecCredential until its `expirationTimestamp`, and send its
 * token as `Authorization: Bearer`. The client refuses a plain `http://` server unless
 * `insecure-skip-tls-verify` is set, so the test cluster sets it.
 */
function kubeClient(apiServer: string, user: string[]): k8s.CoreV1Api {
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: test',
    '  cluster:',
    `    server: ${JSON.stringify(apiServer)}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: keysmith',
    '  user:',
    ...user.map((line) => `    ${line}`),
    'contexts:',
    '- name: test',
    '  context: {cluster: test, user: keysmith}',
    'current-context: test',
  ].join('\n');
  const kc = new k8s.KubeConfig();
  kc.loadFromString(kubeconfig);
  return kc.makeApiClient(k8s.CoreV1Api);
}

/** The README's exec block, with the test's HOME and XDG directories in `env`. */
function execUser(env: Record<string, string>, profile = 'tiled'): string[] {
  // PATH first names this Node, for the binary's `#!/usr/bin/env node`.
  const vars = { ...env, NO_COLOR: '1', PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
  return [
    'exec:',
    `  apiVersion: ${V1}`,
    `  command: ${JSON.stringify(BIN)}`,
    `  args: [kube-credential, --profile, ${profile}]`,
    '  interactiveMode: Never',
    '  env:',
    ...Object.entries(vars).flatMap(([name, value]) => [`  - name: ${name}`, `    value: ${JSON.stringify(value)}`]),
  ];
}

describe('kube-credential with a real client (@kubernetes/client-node)', () => {
  it('lists namespaces with the token keysmith hands the exec authenticator', async () => {
    const tiled = await startServer('tiled');
    const kube = await startServer('kube-api', { tokenServer: tiled.url });
    try {
      const env = await login(tiled);
      const api = kubeClient(kube.url, execUser(env));
      const list = await api.listNamespace();
      expect(list.items.map((n) => n.metadata?.name)).toEqual(['default', 'keysmith']);
      expect(list.items[0]?.metadata?.labels?.['keysmith.test/user']).toBe('alice');
      const stats = await kube.stats();
      expect(stats.tokens).toEqual([(await keysmith(['token', '--profile', 'tiled'], { env })).stdout]);
      expect(stats.unauthorized).toBe(0);
    } finally {
      await kube.stop();
      await tiled.stop();
    }
  });

  it('when the token expires, the client runs the plugin again and gets a refreshed one', async () => {
    const tiled = await startServer('tiled', { accessTtl: 3 });
    const kube = await startServer('kube-api', { tokenServer: tiled.url });
    try {
      const env = await login(tiled);
      const api = kubeClient(kube.url, execUser(env));
      await api.listNamespace();
      // The first token stays cached in the client until its expirationTimestamp.
      await api.listNamespace();
      expect((await kube.stats()).tokens).toHaveLength(1);
      await tiled.admin({ accessTtl: 600 });
      await sleep(3_200);
      const list = await api.listNamespace();
      expect(list.items).toHaveLength(2);
      const stats = await kube.stats();
      expect(stats.tokens).toHaveLength(2);
      expect(stats.unauthorized).toBe(0);
      expect(await tiled.count('refresh')).toBe(1);
      expect((stats.tokens as string[])[1]).toBe((await keysmith(['token', '--profile', 'tiled'], { env })).stdout);
    } finally {
      await kube.stop();
      await tiled.stop();
    }
  });

  it('not logged in: the request fails with the plugin\'s one error line and never reaches the API server', async () => {
    const tiled = await startServer('tiled');
    const kube = await startServer('kube-api', { tokenServer: tiled.url });
    try {
      const api = kubeClient(kube.url, execUser(freshHome(), 'nope'));
      const error = await api.listNamespace().then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      oneErrorLine((error as Error).message);
      const stats = await kube.stats();
      expect(stats.tokens).toEqual([]);
      expect(stats.namespaces).toBe(0);
    } finally {
      await kube.stop();
      await tiled.stop();
    }
  });

  it('a request with a token the issuer does not vouch for is refused by the API server', async () => {
    const tiled = await startServer('tiled');
    const kube = await startServer('kube-api', { tokenServer: tiled.url });
    try {
      const api = kubeClient(kube.url, ['token: not-a-token']);
      const error = await api.listNamespace().then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(k8s.ApiException);
      expect((error as k8s.ApiException<unknown>).code).toBe(401);
      expect(await kube.count('unauthorized')).toBe(1);
    } finally {
      await kube.stop();
      await tiled.stop();
    }
  });
});

describe('kube-credential output', () => {
  it('prints a v1 ExecCredential by default and v1beta1 when KUBERNETES_EXEC_INFO asks', async () => {
    const tiled = await startServer('tiled');
    try {
      const env = await login(tiled);
      const tokenJson = JSON.parse((await keysmith(['token', '--json'], { env })).stdout) as { token: string; expires_at: string };
      for (const [info, version] of [[undefined, V1], [execInfo(V1), V1], [execInfo(V1BETA1), V1BETA1]] as const) {
        const r = await keysmith(['kube-credential'], { env: { ...env, ...(info && { KUBERNETES_EXEC_INFO: info }) } });
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toBe('');
        const credential = JSON.parse(r.stdout) as { apiVersion: string; kind: string; status: { token: string; expirationTimestamp: string } };
        expect(credential).toEqual({ apiVersion: version, kind: 'ExecCredential', status: { token: tokenJson.token, expirationTimestamp: expect.any(String) } });
        // RFC 3339, whole seconds, never later than the token's real expiry.
        expect(credential.status.expirationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        const exp = Date.parse(credential.status.expirationTimestamp);
        expect(exp).toBeLessThanOrEqual(Date.parse(tokenJson.expires_at));
        expect(Date.parse(tokenJson.expires_at) - exp).toBeLessThan(1000);
      }
      expect(await tiled.count('refresh')).toBe(0);
    } finally {
      await tiled.stop();
    }
  });

  it('an unknown or unreadable KUBERNETES_EXEC_INFO is a usage error (exit 2), and so is a profile without a bearer token', async () => {
    const env = freshHome();
    for (const info of [execInfo('client.authentication.k8s.io/v1alpha1'), '{not json', '{"kind":"ExecCredential"}']) {
      const r = await keysmith(['kube-credential'], { env: { ...env, KUBERNETES_EXEC_INFO: info } });
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(/KUBERNETES_EXEC_INFO|kubectl asked for/);
    }
    // A Basic profile: kubectl could only send its password as a bearer token.
    const config = join(env.XDG_CONFIG_HOME!, 'keysmith');
    const sessions = join(env.XDG_STATE_HOME!, 'keysmith', 'sessions');
    mkdirSync(config, { recursive: true, mode: 0o700 });
    mkdirSync(sessions, { recursive: true, mode: 0o700 });
    writeFileSync(join(config, 'profiles.json'), JSON.stringify({ default: 'web', profiles: { web: { name: 'web', url: 'http://127.0.0.1:9', dialect: 'basic', username: 'u' } } }), { mode: 0o600 });
    writeFileSync(join(sessions, 'web.json'), JSON.stringify({ accessToken: Buffer.from('u:p').toString('base64'), tokenType: 'basic', obtainedAt: Date.now() }), { mode: 0o600 });
    const basic = await keysmith(['kube-credential'], { env });
    expect(basic.exitCode).toBe(2);
    expect(basic.stdout).toBe('');
    expect(oneErrorLine(basic.stderr)).toMatch(/no bearer token/);
  });

  it('not logged in: one error line for kubectl to show, exit 1', async () => {
    const r = await keysmith(['kube-credential', '--profile', 'nope'], { env: freshHome() });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    oneErrorLine(r.stderr);
  });

  it('10 concurrent plugin runs with an expired token cause one refresh and all get the same token', async () => {
    const tiled = await startServer('tiled', { accessTtl: 2, rotateRefresh: true, slowRefreshMs: 300 });
    try {
      const env = await login(tiled);
      await sleep(2_200);
      await tiled.admin({ accessTtl: 600 });
      const runs = await Promise.all(
        Array.from({ length: 10 }, () =>
          execa(process.execPath, [BIN, 'kube-credential', '--profile', 'tiled'], {
            env: cleanEnv({ ...env, KUBERNETES_EXEC_INFO: execInfo(V1) }),
            extendEnv: false,
            reject: false,
            stdin: 'ignore',
            timeout: 60_000,
          }),
        ),
      );
      for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);
      const tokens = runs.map((r) => (JSON.parse(r.stdout) as { status: { token: string } }).status.token);
      expect(new Set(tokens).size).toBe(1);
      expect(await tiled.count('refresh')).toBe(1);
      expect(await tiled.count('reuseDetected')).toBe(0);
    } finally {
      await tiled.stop();
    }
  });
});

/**
 * kubectl itself, where one is installed (not a Debian peer this project installs: optional). It
 * sends credentials only over TLS (kubernetes/kubectl#744), so the API server is reached through a
 * TLS front in this process (a self-signed certificate for 127.0.0.1, made with openssl).
 */
const kubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 20_000 }).status === 0 ? 'kubectl' : undefined;

async function tlsFront(dir: string, upstream: string) {
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdin: 'ignore' });
  const target = new URL(upstream);
  const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    const forward = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.once('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca: join(dir, 'cert.pem'),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.runIf(kubectl)('kube-credential with kubectl (optional: only where kubectl is installed)', () => {
  it('kubectl get namespaces runs the plugin, in the version kubectl asks for, and the API server accepts its token', async () => {
    const tiled = await startServer('tiled');
    const kube = await startServer('kube-api', { tokenServer: tiled.url });
    let front: Awaited<ReturnType<typeof tlsFront>> | undefined;
    try {
      const env = await login(tiled);
      front = await tlsFront(env.HOME!, kube.url);
      // kubectl asks for the exec block's apiVersion in KUBERNETES_EXEC_INFO and refuses an answer
      // in another version: both runs pass only if keysmith answers in the version asked.
      for (const [i, version] of [V1, V1BETA1].entries()) {
        const kubeconfig = join(env.HOME!, `kubeconfig-${i}`);
        const exec = { apiVersion: version, command: process.execPath, args: [BIN, 'kube-credential', '--profile', 'tiled'], interactiveMode: 'Never', env: Object.entries(env).map(([name, value]) => ({ name, value })) };
        const config = {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'test', cluster: { server: front.url, 'certificate-authority': front.ca } }],
          users: [{ name: 'keysmith', user: { exec } }],
          contexts: [{ name: 'test', context: { cluster: 'test', user: 'keysmith' } }],
          'current-context': 'test',
        };
        writeFileSync(kubeconfig, JSON.stringify(config), { mode: 0o600 });
        const r = await execa('kubectl', ['--kubeconfig', kubeconfig, 'get', 'namespaces', '-o', 'name'], {
          env: cleanEnv({ HOME: env.HOME, KUBECONFIG: kubeconfig }),
          extendEnv: false,
          reject: false,
          stdin: 'ignore',
          timeout: 60_000,
        });
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout.split('\n')).toEqual(['namespace/default', 'namespace/keysmith']);
      }
      const stats = await kube.stats();
      expect(stats.tokens).toHaveLength(1);
      expect(stats.unauthorized).toBe(0);
    } finally {
      await front?.close();
      await kube.stop();
      await tiled.stop();
    }
  });
});
