/**
 * HTTP for the token commands, and the one place where keysmith's network safety policy lives:
 * every request goes through the fetch that `makeFetch` returns, which
 *   - follows a redirect only within the origin (scheme, host, port) the request was meant for,
 *     so credentials never travel to another server or from https to http;
 *   - reads at most MAX_BODY bytes of an answer and refuses larger ones;
 *   - turns every failure into one line a user can act on.
 * `keysmith api` streams its answers instead (`makeStream`): the same redirect rule, no size cap.
 * Timeouts, --cacert and HTTPS_PROXY/NO_PROXY are set here too. undici loads only when a proxy or
 * a custom CA is in play; otherwise Node's built-in fetch is used.
 */
import { readFile } from 'node:fs/promises';
import type { Ctx } from '../io/context.js';
import { KeysmithError, UsageError } from '../io/errors.js';
import { printable } from '../io/escape.js';

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

/** The most an answer may carry: token answers and server metadata are a few KiB. */
export const MAX_BODY = 1024 * 1024;
/** Same-origin redirects followed for one request before giving up. */
const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The fetch function for these options (shared with oauth4webapi's customFetch): the transport of
 * `transport`, behind the redirect and size policy of `guardFetch`.
 */
export async function makeFetch(ctx: Ctx, options: HttpOptions): Promise<Fetch> {
  return guardFetch(await transport(ctx, options));
}

async function transport(ctx: Ctx, options: HttpOptions): Promise<Fetch> {
  if (ctx.transport) return ctx.transport;
  const env = ctx.env;
  const proxied = Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
  if (!proxied && !options.cacert) return fetch;
  const undici = await import('undici');
  const ca = await caBundle(options);
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

/** The system's CAs plus those of --cacert, or undefined without --cacert. */
async function caBundle(options: HttpOptions): Promise<string | undefined> {
  if (!options.cacert) return undefined;
  let ca: string;
  try {
    ca = await readFile(options.cacert, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --cacert ${options.cacert}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const { rootCertificates } = await import('node:tls');
  return [...rootCertificates, ca].join('\n');
}

function urlOf(input: Parameters<Fetch>[0]): URL {
  return new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
}

/** "from https://a to http://b" in words a user can check. */
function crossing(from: URL, to: URL): string {
  const downgrade = from.protocol === 'https:' && to.protocol === 'http:' ? ' (from https down to plain http)' : '';
  return `from ${from.origin} to ${to.origin}${downgrade}`;
}

/**
 * Wrap a fetch so that redirects stay on the request's origin and answers stay small. The caller's
 * own `redirect` setting is overridden: a hop is followed here, by hand, only when it stays on the
 * origin (see `nextHop`); a hop to anywhere else ends the request with one line naming both
 * origins, and nothing is sent there. The answer comes back fully read (at most MAX_BODY bytes) as
 * a new Response.
 */
export function guardFetch(inner: Fetch, maxBody = MAX_BODY): Fetch {
  return (async (input: Parameters<Fetch>[0], init: Parameters<Fetch>[1] = {}) => {
    const first = urlOf(input);
    let url = first;
    let method = (init.method ?? 'GET').toUpperCase();
    let body = init.body;
    let headers = new Headers(init.headers);
    for (let hops = 0; ; hops++) {
      const res = await inner(url.href, { ...init, method, body, headers, redirect: 'manual' });
      const location = REDIRECTS.has(res.status) ? res.headers.get('location') : null;
      if (location === null) return readCapped(res, url, maxBody);
      await res.body?.cancel().catch(() => {});
      const hop = nextHop(first, url, hops, method, res.status, location);
      if (hop.dropBody) {
        body = undefined;
        headers = new Headers(headers);
        headers.delete('content-type');
        headers.delete('content-length');
      }
      ({ url, method } = hop);
    }
  }) as Fetch;
}

/** The next request of a redirect that keysmith follows. */
interface Hop {
  url: URL;
  method: string;
  /** 303, and 301/302 after a POST: the next request is a GET without the body. */
  dropBody: boolean;
}

/**
 * The redirect rule of both guards (guardFetch, and guardStream for `keysmith api`): follow a hop
 * only within the origin (scheme, host, port) of the first request, so credentials never travel to
 * another server or from https down to http; at most MAX_REDIRECTS hops; fetch's rules for the
 * method. Anything else throws one line naming both origins.
 */
function nextHop(first: URL, url: URL, hops: number, method: string, status: number, location: string): Hop {
  let next: URL;
  try {
    next = new URL(location, url);
  } catch {
    throw new KeysmithError(`${url.origin} answered ${status} with a redirect to an invalid address`);
  }
  if (next.origin !== first.origin) {
    throw new KeysmithError(`refused to follow a redirect ${crossing(first, next)}: keysmith sends credentials only to the server you named`, 1,
      next.protocol === first.protocol ? `if the server has moved, use its new address: ${next.origin}` : undefined);
  }
  if (hops >= MAX_REDIRECTS) throw new KeysmithError(`${first.origin} redirected more than ${MAX_REDIRECTS} times`);
  const toGet = status === 303 || ((status === 301 || status === 302) && method === 'POST');
  return { url: next, method: toGet && method !== 'HEAD' ? 'GET' : method, dropBody: toGet };
}

/** The answer with its body read into memory, refused past `maxBody` bytes. */
async function readCapped(res: Response, url: URL, maxBody: number): Promise<Response> {
  const tooLarge = () => new KeysmithError(`the answer from ${url.origin} is larger than ${maxBody / 1024 / 1024} MiB; refused`);
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBody) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBody) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const bytes = Buffer.concat(chunks);
  const nullBody = res.status === 204 || res.status === 205 || res.status === 304;
  const copy = new Response(nullBody ? null : bytes, { status: res.status, statusText: res.statusText, headers: res.headers });
  // Messages name the server by the address that answered.
  Object.defineProperty(copy, 'url', { value: url.href });
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Streaming answers, for `keysmith api`: the same redirect rule as guardFetch, the body left unread
// for the caller to copy out as it arrives (no size cap: a download may be any size).

/** One request of a streaming transport. The body is bytes, so that a 307/308 can send it again. */
export interface StreamRequest {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array | undefined;
  /** Abandons the request, also while its body is being read. */
  signal?: AbortSignal | undefined;
}

/** An answer whose body has not been read. */
export interface StreamResponse {
  status: number;
  statusText: string;
  /** The HTTP version of the answer ("1.1"). */
  httpVersion: string;
  /** Header lines as they came, repeated ones (Set-Cookie, WWW-Authenticate) kept apart. */
  rawHeaders: Array<[string, string]>;
  /** The address that answered: the last hop of same-origin redirects. */
  url: string;
  body: AsyncIterable<Uint8Array>;
  /** Stop reading and let the connection go. */
  cancel(): void;
}

export type StreamTransport = (url: URL, request: StreamRequest) => Promise<StreamResponse>;

/** Every value of one header of an answer (the name compared case-insensitively), in order. */
export function headerValues(res: Pick<StreamResponse, 'rawHeaders'>, name: string): string[] {
  const wanted = name.toLowerCase();
  return res.rawHeaders.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
}

/**
 * The streaming transport for these options, behind `guardStream`. Node's http/https modules when
 * nothing else is in play: they load in a few milliseconds, where the first use of fetch costs
 * ~70 ms, which is more than `keysmith api` may take in all. An injected transport (tests) or a
 * proxy (undici) goes through fetch, like everything `makeFetch` does.
 */
export async function makeStream(ctx: Ctx, options: HttpOptions): Promise<StreamTransport> {
  const env = ctx.env;
  const proxied = Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
  if (ctx.transport || proxied) return guardStream(fetchStream(await transport(ctx, options)));
  return guardStream(nodeStream(await caBundle(options)));
}

/**
 * Follow redirects by the rule of `nextHop` (same origin only, never downgraded, at most
 * MAX_REDIRECTS hops, 303 and 301/302-after-POST become a GET without the body), and hand back
 * the last answer with its body unread.
 */
export function guardStream(inner: StreamTransport): StreamTransport {
  return async (first, request) => {
    let url = first;
    let method = request.method.toUpperCase();
    let body = request.body;
    let headers = request.headers;
    for (let hops = 0; ; hops++) {
      const res = await inner(url, { ...request, method, body, headers });
      const location = REDIRECTS.has(res.status) ? (headerValues(res, 'location')[0] ?? null) : null;
      if (location === null) return res;
      res.cancel();
      const hop = nextHop(first, url, hops, method, res.status, location);
      if (hop.dropBody) {
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !/^content-(type|length)$/i.test(name)));
      }
      ({ url, method } = hop);
    }
  };
}

/** node:http and node:https, with the extra CAs of --cacert. */
function nodeStream(ca: string | undefined): StreamTransport {
  return async (url, request) => {
    const { request: send } = url.protocol === 'https:' ? await import('./transport/https.js') : await import('./transport/http.js');
    return new Promise<StreamResponse>((resolve, reject) => {
      const req = send(url, { method: request.method, headers: request.headers, signal: request.signal, ...(ca && { ca }) } as import('node:https').RequestOptions);
      req.once('error', reject);
      req.once('response', (res) => {
        // From here on a failure surfaces while the body is read (the stream errors).
        req.on('error', () => {});
        const rawHeaders: Array<[string, string]> = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) rawHeaders.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          httpVersion: res.httpVersion,
          rawHeaders,
          url: url.href,
          body: res,
          cancel: () => void res.destroy(),
        });
      });
      req.end(request.body);
    });
  };
}

/** Any fetch (a test's transport, undici through a proxy) as a streaming transport. */
function fetchStream(fetchFn: Fetch): StreamTransport {
  return async (url, request) => {
    const res = await fetchFn(url.href, { method: request.method, headers: request.headers, body: request.body, signal: request.signal, redirect: 'manual' });
    const rawHeaders: Array<[string, string]> = [];
    res.headers.forEach((value, name) => {
      if (name !== 'set-cookie') rawHeaders.push([name, value]);
    });
    for (const cookie of res.headers.getSetCookie()) rawHeaders.push(['set-cookie', cookie]);
    const body = res.body;
    return {
      status: res.status,
      statusText: res.statusText,
      httpVersion: '1.1',
      rawHeaders,
      url: url.href,
      body: (body ?? []) as AsyncIterable<Uint8Array>,
      cancel: () => void body?.cancel().catch(() => {}),
    };
  };
}

/** Throw unless `url` is on `base`'s origin: for endpoints a server hands out. */
export function checkSameOrigin(url: string, base: string, what: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    throw new KeysmithError(`the server gave an invalid address for ${what}: ${JSON.stringify(url)}`);
  }
  const origin = new URL(base);
  if (parsed.origin !== origin.origin) {
    throw new KeysmithError(`the server at ${origin.origin} named ${parsed.origin} as its ${what}: keysmith sends credentials only to the server you named`);
  }
  return parsed.href;
}

export const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/** Parse a server URL given on the command line; warn about credentials in clear text. */
export function parseServerUrl(ctx: Ctx, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(raw)} (expected e.g. https://example.com:8000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`unsupported URL scheme ${url.protocol} (use http or https)`);
  if (url.username || url.password) {
    // Said without the URL: it carries the password, which would end up in logs.
    throw new UsageError('the URL carries a user name or password; keysmith does not take credentials in a URL',
      'give the user with --username and the password with --password-stdin or $KEYSMITH_PASSWORD');
  }
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
  // Refusals of the safety policy (guardFetch) are already one line.
  if (err instanceof KeysmithError) return err;
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
    res = await fetchFn(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, signal });
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

/** Server text in a message: one line, escaped, and short enough to read. */
const MAX_SERVER_TEXT = 300;

/** The server's own words from an error body, whatever its dialect: one safe line. */
export function serverMessage(res: HttpResponse): string {
  return printable(rawServerMessage(res), MAX_SERVER_TEXT);
}

function rawServerMessage(res: HttpResponse): string {
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
  const line = res.text.trim().split('\n')[0];
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
