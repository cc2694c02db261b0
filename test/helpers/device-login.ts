/**
 * For the OAuth 2.0 and device-flow e2e tests: a `keysmith login` running in the background whose
 * `--json` codes line the test reads, a user who approves the code through oidc-provider's own
 * pages with fetch, and the two fixtures that are not dialect servers (fixtures/servers/oidc.mjs,
 * a real oidc-provider, and device-stub.mjs, scripted polling answers).
 */
import { fileURLToPath } from 'node:url';
import { execa, type Result } from 'execa';
import { startServer, type ServerOptions, type TestServer } from './servers.js';

const BIN = fileURLToPath(new URL('../../bin/keysmith.js', import.meta.url));

/** The provider's clients (fixtures/servers/oidc.mjs). */
export const CLIENTS = {
  device: 'keysmith-device',
  confidential: { id: 'keysmith-confidential', secret: 'confidential-secret' },
  ci: { id: 'keysmith-ci', secret: 'ci-secret' },
};

export interface OidcStats {
  grants: Record<string, number>;
  grantErrors: Record<string, number>;
  refreshConsumed: number;
  grantsRevoked: number;
  destroyed: Record<string, number>;
  requests: Record<string, number>;
}

/** oidc.mjs or device-stub.mjs, through the fixtures' spawner; their options are their own. */
export function startFixture(name: 'oidc' | 'device-stub', options: Record<string, unknown> = {}): Promise<TestServer> {
  return startServer(name, options as ServerOptions);
}

export async function oidcStats(server: TestServer): Promise<OidcStats> {
  return (await server.stats()) as unknown as OidcStats;
}

/** The one JSON line `login --json` writes to stderr. */
export interface CodesLine {
  verification_uri: string;
  verification_uri_complete: string | null;
  user_code: string;
  expires_in: number;
}

export interface BackgroundLogin {
  /** Resolves with the codes line as soon as keysmith has written it. */
  codes: Promise<CodesLine>;
  result: Promise<Result>;
  signal(name: NodeJS.Signals): void;
}

/** Start `keysmith login ARGS --json` with a clean environment plus `env`. */
export function loginInBackground(args: string[], env: Record<string, string>): BackgroundLogin {
  const child = execa(process.execPath, [BIN, 'login', ...args, '--json'], {
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 60_000,
  });
  const codes = new Promise<CodesLine>((resolve, reject) => {
    let seen = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const line = seen.split('\n').find((l) => l.startsWith('{') && l.includes('"user_code"'));
      if (line) resolve(JSON.parse(line) as CodesLine);
    });
    child.then((r) => reject(new Error(`login ended before printing its codes:\n${String(r.stderr)}`)), reject);
  });
  codes.catch(() => {});
  return { codes, result: child, signal: (name) => child.kill(name) };
}

/** A browser: a cookie jar, following redirects. */
function browser() {
  const jar = new Map<string, string>();
  return async function go(url: string, form?: Record<string, string>): Promise<{ url: string; html: string }> {
    let method = form ? 'POST' : 'GET';
    let body: string | undefined = form ? new URLSearchParams(form).toString() : undefined;
    for (let hops = 0; hops < 20; hops++) {
      const headers: Record<string, string> = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(url, { method, body, headers, redirect: 'manual' });
      for (const cookie of res.headers.getSetCookie()) {
        const pair = cookie.split(';')[0]!;
        jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        url = new URL(location, url).href;
        method = 'GET';
        body = undefined;
        continue;
      }
      return { url, html: await res.text() };
    }
    throw new Error('too many redirects');
  };
}

/** The first form of a page: its action and the values of its inputs. */
function firstForm(page: { url: string; html: string }): { action: string; fields: Record<string, string> } {
  const m = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/.exec(page.html);
  if (!m) throw new Error(`no form on ${page.url}:\n${page.html.slice(0, 400)}`);
  const fields: Record<string, string> = {};
  for (const input of m[2]!.matchAll(/<input([^>]*)>/g)) {
    const name = /name="([^"]*)"/.exec(input[1]!)?.[1];
    if (name) fields[name] = /value="([^"]*)"/.exec(input[1]!)?.[1] ?? '';
  }
  return { action: new URL(m[1]!.replace(/&amp;/g, '&'), page.url).href, fields };
}

/**
 * Act as the user of oidc-provider's device flow: open the verification page, enter the user code
 * (with the page's xsrf token), confirm it, log in (any name works in its development pages) and
 * consent. With `deny`, abort on the confirmation page instead (the device gets access_denied).
 */
export async function approveInBrowser(verificationUri: string, userCode: string, options: { login?: string; deny?: boolean } = {}): Promise<void> {
  const go = browser();
  let page = await go(verificationUri);
  for (let step = 0; step < 8; step++) {
    if (/Sign-in Success|was interrupted|aborted/i.test(page.html)) break;
    const { action, fields } = firstForm(page);
    if ('user_code' in fields && fields.user_code === '') fields.user_code = userCode;
    if ('confirm' in fields && options.deny) fields.abort = 'yes';
    if ('login' in fields) Object.assign(fields, { login: options.login ?? 'alice', password: 'any' });
    page = await go(action, fields);
  }
  if (!options.deny && !/Sign-in Success/.test(page.html)) throw new Error(`the browser step did not finish:\n${page.html.slice(0, 600)}`);
}

/** RFC 7662 introspection of any token, as the confidential CI client. */
export async function introspect(server: TestServer, token: string): Promise<{ active: boolean; [claim: string]: unknown }> {
  const res = await fetch(`${server.url}/token/introspection`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${CLIENTS.ci.id}:${CLIENTS.ci.secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }).toString(),
  });
  if (!res.ok) throw new Error(`introspection: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { active: boolean };
}
