/**
 * `keysmith api [-X METHOD] PATH|URL`: one request with a profile's credentials, like `gh api`.
 *
 * - PATH is resolved against the profile's URL (its path prefix kept: `/Demo` + `/services/...`);
 *   an absolute URL must be on the profile's origin, or the request is refused before anything is
 *   sent (with --no-auth it goes out without any credentials).
 * - The credential comes from the dialect (`Dialect.authorize`, else `headerLine`): bearer tokens
 *   refreshed ahead of expiry by the same `currentSession` as `keysmith token`, WaveMaker's token
 *   header, API keys in a header or the query, Basic, Wave, and Digest (sent once without
 *   credentials, then again answering the 401's challenge, with the cookies that 401 set).
 * - A 401 to a token that looked valid (revoked on the server, or a server restart): one forced
 *   refresh under the session lock (`refreshAfterRejection`) and one retry, never more.
 * - The answer's body is copied to stdout as it arrives (constant memory, whatever its size); to a
 *   terminal, control characters are shown escaped. Redirects follow `guardStream`'s rule: same
 *   origin only, never from https down to http.
 * - HTTP status ≥ 400: the body still goes to stdout, then one `error:` line on stderr names the
 *   request and the status, exit 1 (one convention with every other command: the summary is an
 *   ordinary KeysmithError). Network failures read as they do for `token`.
 */
import type { Ctx } from '../io/context.js';
import { KeysmithError, UsageError, fileError } from '../io/errors.js';
import { escapeChar, printable } from '../io/escape.js';
import type { Authorization, AuthRequest, Dialect } from '../tokens/dialect.js';
import { checkSession, headerLine, loadDialect } from '../tokens/dialect.js';
import { isStatic } from '../tokens/dialects/index.js';
import type { StreamResponse, StreamTransport } from '../tokens/http.js';
import { MAX_BODY, headerValues, joinUrl, makeStream, networkError } from '../tokens/http.js';
import { currentSession, httpOptions, refreshAfterRejection } from '../tokens/session.js';
import { resolveProfile, type Profile, type Session } from '../tokens/store.js';
import { parseSeconds } from './token.js';

export interface ApiOptions {
  method?: string;
  header?: string[];
  data?: string;
  jsonBody?: boolean;
  include?: boolean;
  silent?: boolean;
  /** false with --no-auth. */
  auth?: boolean;
  profile?: string;
  timeout?: string;
}

/** RFC 9110 `token`: header names and methods. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export async function run(target: string, opts: ApiOptions, ctx: Ctx): Promise<void> {
  // Everything the command line says is checked before anything is read or sent.
  const userHeaders = parseHeaders(opts.header ?? []);
  if (opts.jsonBody && opts.data === undefined) throw new UsageError('--json-body needs a body: -d DATA, -d @FILE or -d @- (standard input)');
  const method = parseMethod(opts.method, opts.data !== undefined);
  const timeoutFlag = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  const withAuth = opts.auth !== false;
  const absolute = parseAbsolute(target);
  const body = opts.data === undefined ? undefined : await readBody(ctx, opts.data);
  if (opts.jsonBody) checkJson(body!);

  const profile = withAuth || !absolute ? await resolveProfile(ctx, opts.profile) : undefined;
  const url = absolute ?? new URL(joinUrl(profile!.url, target));
  if (withAuth && url.origin !== new URL(profile!.url).origin) {
    throw new UsageError(`${url.origin} is not the server of profile ${profile!.name} (${new URL(profile!.url).origin}): keysmith sends credentials only to the profile's server`,
      'send it without credentials with --no-auth, or pick that server\'s profile with --profile NAME');
  }
  const http = profile ? httpOptions(profile, { timeout: timeoutFlag }) : { timeout: timeoutFlag ?? 30 };
  const timeout = http.timeout ?? 30;
  const request = new Call(ctx, await makeStream(ctx, http), {
    method,
    url,
    body,
    timeout,
    base: {
      'user-agent': 'keysmith',
      accept: '*/*',
      ...(body !== undefined && { 'content-type': opts.jsonBody ? 'application/json' : 'application/x-www-form-urlencoded' }),
    },
    user: userHeaders,
  });

  let res: StreamResponse;
  let hint: string | undefined;
  try {
    if (!withAuth) {
      res = await request.send(undefined, url);
    } else {
      const auth = new Credential(ctx, profile!, await loadDialect(profile!.dialect), timeoutFlag);
      res = await authorized(request, auth, opts);
      hint = `check the credentials of profile ${profile!.name}: keysmith login --profile ${profile!.name}`;
    }
    await request.deliver(res, { include: Boolean(opts.include), silent: Boolean(opts.silent) });
  } finally {
    request.done();
  }
  if (res.status >= 400) {
    const reason = res.statusText ? ` ${res.statusText}` : '';
    throw new KeysmithError(`${method} ${request.shown} failed: ${url.host} answered ${res.status}${reason}`, 1, res.status === 401 ? hint : undefined);
  }
}

/**
 * The request with the profile's credential, and what the answer asks for: Digest's challenge
 * answered (and answered again once when the nonce was stale), or one refresh and one retry after
 * a 401 to a token that looked valid.
 */
async function authorized(request: Call, auth: Credential, opts: ApiOptions): Promise<StreamResponse> {
  const url = request.url;
  let session = await auth.session();
  let authorization = await auth.authorize(session, { method: request.method, url });
  let res = await request.send(authorization, url);
  if (authorization.needsChallenge) {
    const { isStaleNonce, parseChallenges } = await import('../tokens/dialects/digest.js');
    for (let answers = 0; answers < 2 && res.status === 401; answers++) {
      const wwwAuthenticate = headerValues(res, 'www-authenticate');
      // A second 401 is the final word, unless it says only the nonce had expired.
      if (answers > 0 && !isStaleNonce(parseChallenges(wwwAuthenticate))) break;
      // The answer goes where the challenge came from (after same-origin redirects).
      const at = new URL(res.url);
      const challenge = { wwwAuthenticate, setCookie: headerValues(res, 'set-cookie') };
      try {
        authorization = await auth.authorize(session, { method: request.method, url: at, challenge });
      } catch (err) {
        // Nothing to answer with: the server's 401 is the answer (on stdout), then why.
        await request.deliver(res, { include: Boolean(opts.include), silent: Boolean(opts.silent) });
        throw err;
      }
      res.cancel();
      res = await request.send(authorization, at);
    }
  } else if (res.status === 401 && !isStatic(auth.profile.dialect)) {
    // Kept, so that the server's words still reach stdout when the refresh fails.
    const rejected = await request.readSmall(res);
    try {
      session = await auth.refreshAfter(session);
    } catch (err) {
      if (!opts.silent) request.writeAll(rejected);
      throw err;
    }
    authorization = await auth.authorize(session, { method: request.method, url });
    res = await request.send(authorization, url);
  }
  return res;
}

/** A profile's credential for requests: its session, refreshed as `token` does, and the dialect's way to send it. */
class Credential {
  constructor(
    private readonly ctx: Ctx,
    readonly profile: Profile,
    private readonly dialect: Dialect,
    private readonly timeout: number | undefined,
  ) {}

  async session(): Promise<Session> {
    return checkSession(await currentSession(this.ctx, this.profile, { timeout: this.timeout }), 'api');
  }

  async refreshAfter(rejected: Session): Promise<Session> {
    return checkSession(await refreshAfterRejection(this.ctx, this.profile, rejected, { timeout: this.timeout }), 'api');
  }

  async authorize(session: Session, request: AuthRequest): Promise<Authorization> {
    if (this.dialect.authorize) return this.dialect.authorize(this.profile, session, request);
    const [name, value] = headerLine(this.profile, session);
    return { headers: { [name]: value } };
  }
}

interface RequestSpec {
  method: string;
  url: URL;
  body: Uint8Array | undefined;
  timeout: number;
  /** keysmith's own headers; the credential's replace them, and the user's (-H) replace both. */
  base: Record<string, string>;
  user: Record<string, string>;
}

/**
 * One `api` call on the wire: sending (with a credential), the silence watchdog (--timeout is how
 * long the server may stay silent: before answering, and between two pieces of a long body), and
 * copying an answer to stdout.
 */
class Call {
  readonly method: string;
  readonly url: URL;
  /** The request as messages name it: path and query as the user gave them (never a query-parameter API key). */
  readonly shown: string;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private out: BodyWriter | undefined;

  constructor(
    private readonly ctx: Ctx,
    private readonly stream: StreamTransport,
    private readonly spec: RequestSpec,
  ) {
    this.method = spec.method;
    this.url = spec.url;
    this.shown = printable(spec.url.pathname + spec.url.search, 200);
  }

  /** (Re)start the watchdog: the server has this long to say something. */
  private arm(): void {
    if (this.timer) this.timer.refresh();
    else
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.controller.abort();
      }, this.spec.timeout * 1000);
  }

  /** Stop the watchdog while keysmith, not the server, is busy (a refresh has its own timeout). */
  done(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private failure(err: unknown): KeysmithError {
    const where = `${this.url.origin}${this.shown}`;
    if (this.timedOut) return networkError(Object.assign(new Error('timeout'), { name: 'TimeoutError' }), where, this.spec.timeout);
    return networkError(err, where, this.spec.timeout);
  }

  async send(authorization: Authorization | undefined, at: URL): Promise<StreamResponse> {
    const target = new URL(at);
    for (const [name, value] of Object.entries(authorization?.query ?? {})) target.searchParams.set(name, value);
    const headers = mergeHeaders(this.spec.base, authorization?.headers ?? {}, this.spec.user);
    this.arm();
    try {
      return await this.stream(target, { method: this.method, headers, body: this.spec.body, signal: this.controller.signal });
    } catch (err) {
      throw this.failure(err);
    }
  }

  /** Bytes to stdout, made safe for a terminal when stdout is one. */
  private write(chunk: Uint8Array): void {
    this.out ??= this.ctx.isTTY.stdout ? terminalWriter(this.ctx) : { write: (bytes) => void this.ctx.stdout.write(bytes), end: () => {} };
    this.out.write(chunk);
  }

  /** A whole body kept in memory (a 401's), to stdout like one that streams. */
  writeAll(body: Uint8Array): void {
    this.write(body);
    this.out!.end();
  }

  /** Status line and headers (-i), then the body as it arrives; nothing with --silent. */
  async deliver(res: StreamResponse, { include, silent }: { include: boolean; silent: boolean }): Promise<void> {
    if (silent) {
      res.cancel();
      return;
    }
    if (include) {
      const lines = [`HTTP/${res.httpVersion} ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`, ...res.rawHeaders.map(([name, value]) => `${name}: ${value}`)];
      this.ctx.stdout.write(lines.map((line) => printable(line)).join('\n') + '\n\n');
    }
    const chunks = res.body[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await chunks.next();
      } catch (err) {
        throw this.failure(err);
      }
      if (next.done) break;
      this.arm();
      try {
        this.write(next.value);
      } catch (err) {
        // stdout went away (`| head`): let the connection go too.
        res.cancel();
        throw err;
      }
    }
    this.out?.end();
  }

  /** A small answer (a 401's body) read into memory: at most MAX_BODY bytes are kept. */
  async readSmall(res: StreamResponse): Promise<Uint8Array> {
    const kept: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body) {
        this.arm();
        kept.push(chunk);
        size += chunk.byteLength;
        if (size >= MAX_BODY) break;
      }
    } catch (err) {
      throw this.failure(err);
    }
    res.cancel();
    this.done();
    return Buffer.concat(kept).subarray(0, MAX_BODY);
  }
}

interface BodyWriter {
  write(chunk: Uint8Array): void;
  end(): void;
}

/**
 * Control characters (but tab and line breaks) and invisible direction changers; a lone CR,
 * which would let a server overwrite what a line showed, counts too.
 */
const TERMINAL_UNSAFE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|\r(?!\n)/g;

/** The body as UTF-8 text with what a terminal would obey shown escaped, as the answer arrives. */
function terminalWriter(ctx: Ctx): BodyWriter {
  const decoder = new TextDecoder('utf-8');
  let held = '';
  const emit = (text: string, final: boolean) => {
    text = held + text;
    held = '';
    // A CR at the end of a piece may be the first half of a CRLF.
    if (!final && text.endsWith('\r')) {
      held = '\r';
      text = text.slice(0, -1);
    }
    if (text) ctx.stdout.write(text.replace(TERMINAL_UNSAFE, escapeChar));
  };
  return {
    write: (chunk) => emit(decoder.decode(chunk, { stream: true }), false),
    end: () => emit(decoder.decode(), true),
  };
}

/** `-H 'Name: value'` lines, checked: a header name is a token, a value is one line. */
function parseHeaders(lines: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim();
    if (!TOKEN.test(name)) throw new UsageError(`-H ${JSON.stringify(printable(line, 80))}: expected 'Name: value' with a valid header name`);
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new UsageError(`-H ${name}: a header value cannot contain line breaks or NUL`);
    if (/[^\t\x20-\xff]/.test(value)) throw new UsageError(`-H ${name}: the value has characters a header cannot carry (control or non-Latin-1 characters)`);
    setHeader(headers, name, value);
  }
  return headers;
}

function setHeader(headers: Record<string, string>, name: string, value: string): void {
  for (const existing of Object.keys(headers)) if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
  headers[name] = value;
}

/**
 * Later layers replace earlier ones, names compared case-insensitively; the credential's cookies
 * (a Digest answer's) join the user's own instead of replacing them.
 */
function mergeHeaders(base: Record<string, string>, credential: Record<string, string>, user: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) setHeader(headers, name, value);
  for (const [name, value] of Object.entries(credential)) setHeader(headers, name, value);
  const credentialCookie = Object.entries(credential).find(([name]) => name.toLowerCase() === 'cookie')?.[1];
  for (const [name, value] of Object.entries(user)) {
    setHeader(headers, name, name.toLowerCase() === 'cookie' && credentialCookie ? `${value}; ${credentialCookie}` : value);
  }
  return headers;
}

/** -X: a method name (upper-cased); GET, or POST when a body is given. */
function parseMethod(raw: string | undefined, hasBody: boolean): string {
  if (raw === undefined) return hasBody ? 'POST' : 'GET';
  if (!TOKEN.test(raw)) throw new UsageError(`-X ${JSON.stringify(printable(raw, 40))} is not an HTTP method`);
  const method = raw.toUpperCase();
  if (method === 'CONNECT') throw new UsageError('-X CONNECT opens a tunnel, not a request keysmith can make');
  if ((method === 'GET' || method === 'HEAD') && hasBody) throw new UsageError(`-X ${method} cannot send a body (-d); use POST, PUT or PATCH`);
  return method;
}

/** An absolute http(s) URL, or undefined for a PATH. Credentials inside a URL are refused. */
function parseAbsolute(target: string): URL | undefined {
  if (target === '') throw new UsageError('which PATH or URL? e.g. keysmith api /api/v1/');
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return undefined;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(printable(target, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`unsupported URL scheme ${url.protocol} (use http or https)`);
  if (url.username || url.password) throw new UsageError('the URL carries a user name or password; keysmith does not take credentials in a URL', 'log in to the server once: keysmith login URL');
  return url;
}

/** -d DATA, -d @FILE, -d @- (standard input): the body as bytes, sent as given. */
async function readBody(ctx: Ctx, data: string): Promise<Uint8Array> {
  if (!data.startsWith('@')) return Buffer.from(data, 'utf8');
  if (data === '@-') {
    if (ctx.isTTY.stdin) ctx.stderr.write('Reading the request body from standard input (end with Ctrl-D)...\n');
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.stdin()) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks);
  }
  const { readFile } = await import('node:fs/promises');
  const { resolve } = await import('node:path');
  const path = data.slice(1);
  try {
    return await readFile(resolve(ctx.cwd, path));
  } catch (err) {
    throw fileError(err, path, 'body file');
  }
}

function checkJson(body: Uint8Array): void {
  try {
    JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (err) {
    throw new UsageError(`--json-body: the body is not valid JSON (${printable((err as Error).message, 120)})`);
  }
}
