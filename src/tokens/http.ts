/**
 * HTTP for the token commands: timeouts, --cacert, HTTPS_PROXY/NO_PROXY, and one-line errors for
 * everything that can go wrong between us and a server. undici loads only when a proxy or a
 * custom CA is in play; otherwise Node's built-in fetch is used.
 */
import { readFile } from 'node:fs/promises';
import type { Ctx } from '../io/context.js';
import { KeysmithError, UsageError } from '../io/errors.js';

export interface HttpOptions {
  /** Seconds; default 30. */
  timeout?: number;
  /** PEM file with extra CA certificates to trust. */
  cacert?: string;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  url: string;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  /** Sent as application/json. */
  json?: unknown;
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  /** HTTP Basic credentials. */
  basic?: { username: string; password: string };
  /** Abandons the request (Ctrl-C during a device flow), besides the timeout. */
  signal?: AbortSignal;
}

export type Fetch = typeof fetch;

/** Builds the fetch function for these options (shared with oauth4webapi's customFetch). */
export async function makeFetch(ctx: Ctx, options: HttpOptions): Promise<Fetch> {
  const env = ctx.env;
  const proxied = Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
  if (!proxied && !options.cacert) return fetch;
  const undici = await import('undici');
  let ca: string | undefined;
  if (options.cacert) {
    try {
      ca = await readFile(options.cacert, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --cacert ${options.cacert}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const { rootCertificates } = await import('node:tls');
    ca = [...rootCertificates, ca].join('\n');
  }
  const connect = ca ? { ca } : undefined;
  const dispatcher = proxied
    ? new undici.EnvHttpProxyAgent({
        httpProxy: env.HTTP_PROXY ?? env.http_proxy,
        httpsProxy: env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy,
        noProxy: env.NO_PROXY ?? env.no_proxy,
        connect,
        requestTls: connect,
        proxyTls: connect,
      } as ConstructorParameters<typeof undici.EnvHttpProxyAgent>[0])
    : new undici.Agent({ connect });
  return ((input: Parameters<Fetch>[0], init?: Parameters<Fetch>[1]) =>
    undici.fetch(input as never, { ...(init as object), dispatcher } as never)) as unknown as Fetch;
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/** Parse a server URL given on the command line; warn about credentials in clear text. */
export function parseServerUrl(ctx: Ctx, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(raw)} (expected e.g. https://example.com:8000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`unsupported URL scheme ${url.protocol} (use http or https)`);
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname)) {
    ctx.stderr.write(`warning: ${url.origin} is plain http: credentials and tokens cross the network unencrypted\n`);
  }
  return url;
}

/** Join a base URL (which may have a path, e.g. /Demo) and a path. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED',
  'ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO',
]);

/** Turn a fetch failure into one line a user can act on. */
export function networkError(err: unknown, url: string, timeout: number): KeysmithError {
  const e = err as Error & { cause?: NodeJS.ErrnoException & { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return new KeysmithError(`${url}: no answer within ${timeout} s`, 1, 'is the server up? raise the limit with --timeout SECONDS');
  }
  const cause = e?.cause;
  const code = cause?.code ?? (e as NodeJS.ErrnoException)?.code;
  const host = safeHost(url);
  switch (code) {
    case 'ECONNREFUSED':
      return new KeysmithError(`cannot connect to ${host}: connection refused`, 1, 'is the server running, and on that port?');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new KeysmithError(`cannot resolve host ${new URL(url).hostname} (DNS lookup failed)`);
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return new KeysmithError(`${host} closed the connection unexpectedly`);
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new KeysmithError(`cannot connect to ${host}: timed out`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new KeysmithError(`cannot reach ${host}: network unreachable`);
  }
  if (code && TLS_CODES.has(code)) {
    return new KeysmithError(`TLS error talking to ${host}: ${cause?.message ?? code}`, 1, 'trust its CA with --cacert FILE or NODE_EXTRA_CA_CERTS=FILE');
  }
  return new KeysmithError(`request to ${host} failed: ${cause?.message ?? e?.message ?? String(err)}`);
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** Make one request; network failures become KeysmithErrors, HTTP error statuses do not. */
export async function request(fetchFn: Fetch, url: string, init: RequestInit, options: HttpOptions = {}): Promise<HttpResponse> {
  const timeout = options.timeout ?? 30;
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'keysmith', ...init.headers };
  let body: string | undefined;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  } else if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  }
  if (init.basic) {
    headers.authorization = 'Basic ' + Buffer.from(`${init.basic.username}:${init.basic.password}`, 'utf8').toString('base64');
  }
  let res: Response;
  let text: string;
  try {
    const signal = init.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeout * 1000)]) : AbortSignal.timeout(timeout * 1000);
    res = await fetchFn(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'follow', signal });
    text = await res.text();
  } catch (err) {
    throw networkError(err, url, timeout);
  }
  let json: unknown;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, statusText: res.statusText, headers: res.headers, text, json, url };
}

/** The server's own words from an error body, whatever its dialect. */
export function serverMessage(res: HttpResponse): string {
  const body = res.json as Record<string, unknown> | null | undefined;
  if (body && typeof body === 'object') {
    // OAuth 2.0: {"error", "error_description"}
    if (typeof body.error === 'string') {
      return typeof body.error_description === 'string' ? `${body.error}: ${body.error_description}` : body.error;
    }
    // FastAPI / Tiled: {"detail": "..."} or {"detail": {"error": ...}} or a list of validation errors
    const detail = body.detail as unknown;
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail)) return detail.map((d) => `${(d as { loc?: unknown[] }).loc?.join('.') ?? ''}: ${(d as { msg?: string }).msg ?? ''}`).join('; ');
    if (detail && typeof detail === 'object' && typeof (detail as { error?: unknown }).error === 'string') return (detail as { error: string }).error;
    // WaveMaker: {"errors": {"error": [{"message", "parameters"}]}}
    const wm = (body.errors as { error?: Array<{ message?: string | null; parameters?: string[] }> } | undefined)?.error?.[0];
    if (wm) return wm.message && wm.message !== 'unAuthorized' ? wm.message : (wm.parameters?.join(' ') || wm.message || 'unauthorized');
    if ('error' in body) return JSON.stringify(body.error);
  }
  const type = res.headers.get('content-type') ?? '';
  if (/html/i.test(type) || /^\s*</.test(res.text)) return 'an HTML page, not an API answer (is the URL right?)';
  const line = res.text.trim().split('\n')[0]?.slice(0, 200);
  return line || res.statusText || 'no details';
}

/** An error for a non-2xx answer, naming the server and what it said. */
export function httpError(res: HttpResponse, action: string, hint?: string): KeysmithError {
  return new KeysmithError(`${action} failed: ${safeHost(res.url)} answered ${res.status}: ${serverMessage(res)}`, 1, hint);
}

/** The server says the session cannot be refreshed any more: log in again. */
export class SessionDeadError extends KeysmithError {
  constructor(message: string) {
    super(message, 1, 'log in again: keysmith login');
    this.name = 'SessionDeadError';
  }
}
