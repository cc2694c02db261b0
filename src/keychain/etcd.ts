/**
 * Keychains on etcd: locations, connections, reads and error messages. One etcd key per entry,
 * `PREFIX/ID` → the hash text (`$2b$10$...`), so writers of different IDs never conflict, a listing
 * is one range read in etcd's byte order, and a watch sees single entries.
 *
 * Locations: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` (plain gRPC) or `etcds://...` (TLS). The
 * prefix is the URL path without its trailing slashes: `etcd://127.0.0.1:2379/wave/keys` keeps
 * entry ID under the key `/wave/keys/ID`. No user or password in a location: passwords never go
 * in argv (--etcd-user, and $KEYSMITH_ETCD_PASSWORD or --etcd-password-stdin).
 *
 * This module is bundled but only ever reached through `await import()` when a location starts
 * with `etcd://` or `etcds://`; the `etcd3` package (gRPC, protobuf) loads in connectEtcd.
 */
import type { Etcd3, IKeyValue, IOptions, IRangeResponse } from 'etcd3';
import { readFileSync } from 'node:fs';
import type { Ctx } from '../io/context.js';
import { FormatError, KeysmithError, UsageError, fileError } from '../io/errors.js';
import { safeLine } from '../io/escape.js';
import { readAll, chompOnce } from '../io/input.js';
import { classifyHash, invalidIdReason } from './format.js';

export interface EtcdLocation {
  /** gRPC endpoints as the client wants them: `http://127.0.0.1:2379`, `https://[::1]:2379`. */
  endpoints: string[];
  /** Key prefix without a trailing slash, e.g. `/wave/keys`; entry keys are `${prefix}/${id}`. */
  prefix: string;
  /** The location as messages show it: `etcd://127.0.0.1:2379,127.0.0.1:2479/wave/keys`. */
  display: string;
  /** etcds://: TLS to every endpoint. */
  tls: boolean;
}

/** The default client port of etcd, for endpoints written without one. */
export const DEFAULT_ETCD_PORT = 2379;
/** Seconds to wait for etcd before giving up, when --timeout is not given. */
export const DEFAULT_ETCD_TIMEOUT_SECONDS = 10;

const LOCATION = /^(etcds?):\/\/([^/]*)(\/.*)?$/i;

/** True when `text` names an etcd keychain (etcd:// or etcds://), not a file. */
export function isEtcdLocation(text: string): boolean {
  return /^etcds?:\/\//i.test(text);
}

/** `etcd://h:p[,h:p...]/PREFIX` (or etcds://) → endpoints, prefix and how to show it. Bad syntax is a UsageError. */
export function parseEtcdLocation(text: string): EtcdLocation {
  const bad = (why: string) => new UsageError(`bad etcd location ${JSON.stringify(safeLine(text, 200))}: ${why}`,
    'expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds:// for TLS)');
  const m = LOCATION.exec(text);
  if (!m) throw bad('expected etcd:// or etcds://');
  const tls = m[1]!.toLowerCase() === 'etcds';
  const hostList = m[2]!;
  if (hostList.includes('@')) {
    throw new UsageError(`bad etcd location: no user or password in the location (passwords never go on the command line)`,
      'give the user with --etcd-user and the password in $KEYSMITH_ETCD_PASSWORD or with --etcd-password-stdin');
  }
  if (hostList === '') throw bad('no endpoint');
  const hosts = hostList.split(',').map((endpoint) => {
    const e = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(\d{1,5}))?$/.exec(endpoint);
    if (!e) throw bad(endpoint === '' ? 'empty endpoint' : `endpoint ${JSON.stringify(safeLine(endpoint, 100))} is not HOST:PORT`);
    const port = e[2] === undefined ? DEFAULT_ETCD_PORT : Number(e[2]);
    if (port < 1 || port > 65535) throw bad(`port ${e[2]} out of range 1..65535`);
    return `${e[1]}:${port}`;
  });
  const path = (m[3] ?? '').replace(/\/+$/, '');
  if (path === '') throw bad('no key prefix (etcd://HOST:PORT/PREFIX): the keychain needs a prefix of its own');
  const unsafe = /[\s\p{Cc}?#%]/u.exec(path)?.[0];
  if (unsafe !== undefined) throw bad(`the prefix contains ${/\s|\p{Cc}/u.test(unsafe) ? 'a space or control character' : JSON.stringify(unsafe)}`);
  const scheme = tls ? 'https' : 'http';
  return {
    endpoints: hosts.map((h) => `${scheme}://${h}`),
    prefix: path,
    display: `${tls ? 'etcds' : 'etcd'}://${hosts.join(',')}${path}`,
    tls,
  };
}

/** The etcd key of an entry: `PREFIX/ID`. */
export function entryKey(location: EtcdLocation, id: string): string {
  return `${location.prefix}/${id}`;
}

/** The ID of an entry key (inverse of entryKey); undefined for a key outside the keychain. */
export function idOfKey(location: EtcdLocation, key: string): string | undefined {
  const start = location.prefix + '/';
  return key.startsWith(start) && key.length > start.length ? key.slice(start.length) : undefined;
}

/** [start, end) of the keychain's keys: every key that starts with `PREFIX/`. */
export function keychainRange(location: EtcdLocation): { start: Buffer; end: Buffer } {
  const start = Buffer.from(location.prefix + '/');
  const end = Buffer.from(start);
  end[end.length - 1]!++; // '/' + 1 = '0'
  return { start, end };
}

export interface EtcdConnectOptions {
  /** Give up on a call after this long (default: DEFAULT_ETCD_TIMEOUT_SECONDS). */
  timeoutSeconds?: number;
  /** PEM file of the CA that signed the servers' certificates (etcds:// only). */
  cacert?: string;
  /** PEM files of a client certificate and its key (etcds:// only). */
  cert?: string;
  key?: string;
  /** etcd user and password (etcd's own auth). */
  user?: string;
  password?: string;
}

/** Options the keychain commands take for etcd locations (src/commands/table.ts: etcdOptions). */
export interface EtcdCliOptions {
  timeout?: string;
  etcdCacert?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordStdin?: boolean;
}

/**
 * Connection options from the command line: --timeout, --etcd-cacert/--etcd-cert/--etcd-key (TLS,
 * etcds:// only), --etcd-user with the password from --etcd-password-stdin (then stdin is the only
 * source) or $KEYSMITH_ETCD_PASSWORD. Reads stdin when told to; nothing else is touched.
 */
export async function etcdConnectOptions(ctx: Ctx, opts: EtcdCliOptions, location?: EtcdLocation): Promise<EtcdConnectOptions> {
  const options: EtcdConnectOptions = {};
  if (opts.timeout !== undefined) {
    const n = Number(opts.timeout);
    if (opts.timeout.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw new UsageError(`--timeout must be a number of seconds > 0, got ${JSON.stringify(opts.timeout)}`);
    }
    options.timeoutSeconds = n;
  }
  const tlsFlags = (['etcdCacert', 'etcdCert', 'etcdKey'] as const).filter((k) => opts[k] !== undefined);
  if (tlsFlags.length > 0 && location && !location.tls) {
    throw new UsageError(`--etcd-cacert, --etcd-cert and --etcd-key are for TLS: write the location as etcds://...`);
  }
  if ((opts.etcdCert === undefined) !== (opts.etcdKey === undefined)) {
    throw new UsageError('--etcd-cert and --etcd-key go together (a client certificate and its private key)');
  }
  if (opts.etcdCacert !== undefined) options.cacert = opts.etcdCacert;
  if (opts.etcdCert !== undefined) options.cert = opts.etcdCert;
  if (opts.etcdKey !== undefined) options.key = opts.etcdKey;
  const user = opts.etcdUser ?? ctx.env.KEYSMITH_ETCD_USER;
  if (opts.etcdPasswordStdin) {
    if (user === undefined) throw new UsageError('--etcd-password-stdin needs --etcd-user');
    const password = chompOnce(await readAll(ctx.stdin()));
    if (password === '') throw new UsageError('no etcd password on standard input (it was empty)');
    options.password = password;
  } else if (user !== undefined) {
    const password = ctx.env.KEYSMITH_ETCD_PASSWORD;
    if (!password) {
      throw new UsageError(`no password for etcd user ${JSON.stringify(safeLine(user, 100))}`,
        'set KEYSMITH_ETCD_PASSWORD or pipe it with --etcd-password-stdin');
    }
    options.password = password;
  }
  if (user !== undefined) {
    if (user === '') throw new UsageError('--etcd-user is empty');
    options.user = user;
  }
  return options;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw fileError(err, path, what);
  }
}

type Etcd3Module = typeof import('etcd3');
let etcd3Module: Promise<Etcd3Module> | undefined;
/** The etcd3 package (gRPC and protobuf: ~100 ms to load), once. */
export function loadEtcd3(): Promise<Etcd3Module> {
  etcd3Module ??= import('etcd3').then((m) => ((m as { default?: Etcd3Module }).default ?? m) as Etcd3Module);
  return etcd3Module;
}

/** The timeout in ms for calls made with these options. */
export function timeoutMs(options: EtcdConnectOptions): number {
  return Math.round((options.timeoutSeconds ?? DEFAULT_ETCD_TIMEOUT_SECONDS) * 1000);
}

/**
 * A client for `location`. Nothing is sent until the first call (errors surface there: pass them
 * to etcdError). Every unary call gets a deadline of the timeout; watches have none. The client
 * fails over between endpoints (etcd3 retries recoverable errors on another host). Close it with
 * `client.close()` when done, or the process stays alive.
 */
export async function connectEtcd(location: EtcdLocation, options: EtcdConnectOptions = {}): Promise<Etcd3> {
  const ms = timeoutMs(options);
  const config: IOptions = {
    hosts: location.endpoints,
    dialTimeout: ms,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + ms }),
    // Room for pages of long values; readEntries pages anyway.
    grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  };
  if (location.tls && (options.cacert !== undefined || options.cert !== undefined)) {
    config.credentials = {
      // gRPC takes null for "the system's roots", which the typings do not say.
      rootCertificate: (options.cacert === undefined ? null : readPem(options.cacert, 'CA file')) as Buffer,
      ...(options.key !== undefined && { privateKey: readPem(options.key, 'client key file') }),
      ...(options.cert !== undefined && { certChain: readPem(options.cert, 'client certificate file') }),
    };
  }
  if (options.user !== undefined) {
    config.auth = {
      username: options.user,
      password: options.password ?? '',
      callOptions: () => ({ deadline: Date.now() + ms }),
    };
  }
  const { Etcd3 } = await loadEtcd3();
  return new Etcd3(config);
}

/** Keys per range request while reading a keychain (one gRPC message each). */
const PAGE = 10_000;

/**
 * All key-values of the keychain at one revision, in byte order, read in pages (keys only when
 * `keysOnly`). `revision` is the store's revision the read saw: watch from revision + 1.
 */
export async function readKeyValues(client: Etcd3, location: EtcdLocation, keysOnly = false): Promise<{ kvs: IKeyValue[]; revision: string }> {
  const { start, end } = keychainRange(location);
  const kvs: IKeyValue[] = [];
  let key = start;
  let revision: string | undefined;
  for (;;) {
    const page: IRangeResponse = await client.kv.range({
      key,
      range_end: end,
      limit: PAGE,
      keys_only: keysOnly,
      ...(revision !== undefined && { revision }),
    });
    revision ??= page.header.revision;
    for (const kv of page.kvs) kvs.push(kv);
    if (!page.more || page.kvs.length === 0) break;
    // The next page starts right after the last key: that key with a zero byte appended.
    key = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.alloc(1)]);
  }
  return { kvs, revision: revision! };
}

/** The ID of a key-value read from the keychain's range, checked as the file parser checks IDs. */
export function idOfKeyValue(location: EtcdLocation, prefixBytes: number, key: Buffer): string {
  const id = key.toString('utf8', prefixBytes);
  let plain = id.length > 0 && id.charCodeAt(0) !== 35;
  for (let i = 0; plain && i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c <= 32 || c >= 127 || c === 58) plain = false;
  }
  if (!plain) {
    const problem = Buffer.compare(Buffer.from(id), key.subarray(prefixBytes)) !== 0 ? 'the ID is not valid UTF-8' : invalidIdReason(id);
    if (problem) throw new FormatError(location.display, undefined, `key ${safeLine(JSON.stringify(key.toString('utf8')), 200)}: ${problem}`);
  }
  return id;
}

/** Check an entry's hash as the file parser checks hash fields. */
export function checkHash(location: EtcdLocation, id: string, hash: string): void {
  if (hash === '') throw new FormatError(location.display, undefined, `empty hash for ID ${safeLine(id)}`);
  const info = classifyHash(hash);
  if (typeof info === 'string') throw new FormatError(location.display, undefined, `${info} for ID ${safeLine(id)}`);
}

/**
 * Every entry of the keychain at one revision, sorted by byte order (etcd's order), checked as
 * the file parser checks lines (bad IDs or hashes are a FormatError naming the key). `revision`
 * is the revision read: a watch from revision + 1 sees every later change.
 */
export async function readEntries(client: Etcd3, location: EtcdLocation): Promise<{ entries: Array<{ id: string; hash: string }>; revision: string }> {
  const { kvs, revision } = await readKeyValues(client, location);
  const prefixBytes = Buffer.byteLength(location.prefix) + 1;
  const entries = kvs.map((kv) => {
    const id = idOfKeyValue(location, prefixBytes, kv.key);
    const hash = kv.value.toString('utf8');
    checkHash(location, id, hash);
    return { id, hash };
  });
  return { entries, revision };
}

/** The first line of an error's message. */
function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.replace(/^(?:[A-Za-z]*Error: )+/, '').trim();
}

/**
 * Any error from talking to etcd as one line, exit 1 (a KeysmithError passes through): no endpoint
 * reachable, no answer in time, authentication refused, permission denied on the prefix, etc.
 */
export function etcdError(err: unknown, location: EtcdLocation, options: EtcdConnectOptions = {}): KeysmithError {
  if (err instanceof KeysmithError) return err;
  const name = (err as Error | undefined)?.constructor?.name ?? '';
  const message = firstLine(err);
  const where = `etcd ${location.display}`;
  const endpoints = location.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(', ');
  if (name === 'EtcdAuthenticationFailedError' || /authentication failed/.test(message)) {
    return new KeysmithError(`${where}: authentication failed (wrong user or password)`, 1,
      'check --etcd-user and $KEYSMITH_ETCD_PASSWORD (or --etcd-password-stdin)');
  }
  if (/user name is empty|invalid auth token|auth.*not enabled|GRPCUnauthenticated/.test(message + name)) {
    return new KeysmithError(`${where}: the server wants a user and password`, 1,
      'give --etcd-user and the password in $KEYSMITH_ETCD_PASSWORD or with --etcd-password-stdin');
  }
  if (name === 'EtcdPermissionDeniedError' || /permission denied/.test(message)) {
    return new KeysmithError(`${where}: permission denied on keys under ${safeLine(location.prefix)}/ (the user's roles do not grant it)`, 1);
  }
  if (/too many operations in txn/.test(message)) {
    return new KeysmithError(`${where}: the transaction has more operations than the server allows (etcd --max-txn-ops, default 128)`, 1,
      'create fewer keys at once');
  }
  if (/request is too large/.test(message)) return new KeysmithError(`${where}: the request is larger than the server allows (etcd --max-request-bytes)`, 1);
  if (name === 'GRPCDeadlineExceededError' || /deadline exceeded|timed? ?out/i.test(message)) {
    const seconds = options.timeoutSeconds ?? DEFAULT_ETCD_TIMEOUT_SECONDS;
    return new KeysmithError(`${where}: no answer within ${seconds} s (${safeLine(endpoints)})`, 1, 'check that etcd runs there, or raise --timeout');
  }
  if (name === 'GRPCUnavailableError' || name === 'BrokenCircuitError' || /No connection established|UNAVAILABLE|ECONNREFUSED|unavailable/i.test(message)) {
    const tls = /certificate|SSL|TLS|handshake|self.signed/i.test(message);
    const why = tls ? `TLS failed: ${safeLine(message, 300)}` : 'no endpoint reachable';
    return new KeysmithError(`cannot reach etcd at ${safeLine(endpoints)}: ${why}`, 1,
      tls ? 'check --etcd-cacert (the CA that signed the servers\' certificates) and the endpoints\' names' : 'check that etcd runs there');
  }
  return new KeysmithError(`${where}: ${safeLine(message, 300)}`, 1);
}
