/**
 * HTTP Digest (RFC 7616, and RFC 2069 without `qop`) with a user and password, kept like Basic's as
 * base64 of `user:password`. Digest has no header to hand out ahead of time: each request is sent,
 * the server's 401 challenge is read, and the request is sent again with the answer (`authorize`
 * with a challenge). What servers do, from running them (shared/protocols.md §5):
 *   - Flask-HTTPAuth 4.5 challenges without `qop` or `algorithm` (RFC 2069) and keeps its nonce and
 *     opaque in the Flask session cookie of the 401, so the answer must carry that cookie back;
 *   - Apache's mod_auth_digest (2.4) uses `qop="auth"` and MD5 (its config refuses MD5-sess as
 *     "Unsupported algorithm", whatever shared/protocols.md says), and `stale=true` when only the
 *     nonce has expired (answer once more with the new nonce; the password was right).
 * Servers may offer several challenges; the strongest keysmith can answer is used (SHA-512-256,
 * then SHA-256, then MD5, each also as -sess). `userhash` is honoured; qop=auth-int is not offered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { KeysmithError } from '../../io/errors.js';
import { printable } from '../../io/escape.js';
import type { Dialect } from '../dialect.js';
import { staticCredentials } from '../dialect.js';
import { loginWithPassword, refreshStatic, whoamiWithPassword } from './static.js';

// ---------------------------------------------------------------------------------------------
// WWW-Authenticate (RFC 9110 §11.6.1): #challenge, challenge = scheme [ token68 / #auth-param ]

export interface Challenge {
  /** The scheme as the server wrote it ("Digest", "Basic"). */
  scheme: string;
  /** Parameters by lower-case name, values unquoted; the first of a repeated name counts. */
  params: Record<string, string>;
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[-._~+/0-9A-Za-z]/;

/**
 * Every challenge in the given WWW-Authenticate values (a server may send several headers, or
 * several challenges in one, separated by commas that may also stand inside quoted strings).
 * Malformed pieces are skipped, never fatal: the caller decides whether a usable one is left.
 */
export function parseChallenges(values: readonly string[]): Challenge[] {
  const text = values.join(', ');
  const challenges: Challenge[] = [];
  let current: Challenge | undefined;
  let i = 0;
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t';
  const skipSpaces = () => {
    while (isSpace(text[i])) i++;
  };
  const readWhile = (re: RegExp) => {
    const start = i;
    while (i < text.length && re.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  const skipToComma = () => {
    while (i < text.length && text[i] !== ',') {
      if (text[i] === '"') readQuoted();
      else i++;
    }
  };
  const readQuoted = () => {
    let value = '';
    i++; // the opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\' && i + 1 < text.length) i++;
      value += text[i++];
    }
    i++; // the closing quote (or past the end of an unterminated string)
    return value;
  };
  /** After a scheme: a token68 (`Negotiate abc==`), if that is what follows. */
  const readToken68 = (challenge: Challenge) => {
    const start = i;
    const chars = readWhile(TOKEN68_CHAR);
    const pads = readWhile(/=/);
    skipSpaces();
    if (chars && (i >= text.length || text[i] === ',')) challenge.token68 = chars + pads;
    else i = start;
  };

  while (i < text.length) {
    while (i < text.length && (text[i] === ',' || isSpace(text[i]))) i++;
    if (i >= text.length) break;
    const name = readWhile(TCHAR);
    if (!name) {
      skipToComma();
      continue;
    }
    skipSpaces();
    if (text[i] !== '=') {
      // A new challenge: its scheme, then a token68 or parameters.
      current = { scheme: name, params: Object.create(null) as Record<string, string> };
      challenges.push(current);
      readToken68(current);
      continue;
    }
    i++; // '='
    skipSpaces();
    const value = text[i] === '"' ? readQuoted() : readWhile(TCHAR);
    const key = name.toLowerCase();
    if (current && !current.token68 && !(key in current.params)) current.params[key] = value;
    skipSpaces();
    if (i < text.length && text[i] !== ',') skipToComma();
  }
  return challenges;
}

// ---------------------------------------------------------------------------------------------
// The answer (RFC 7616 §3.4; RFC 2069 §2.1.2 when the challenge has no qop)

interface Algorithm {
  hash: string;
  /** Higher is stronger: the strongest the server offers is used. */
  strength: number;
  session: boolean;
}

const ALGORITHMS: Record<string, Algorithm> = {
  'MD5': { hash: 'md5', strength: 1, session: false },
  'MD5-SESS': { hash: 'md5', strength: 1, session: true },
  'SHA-256': { hash: 'sha256', strength: 2, session: false },
  'SHA-256-SESS': { hash: 'sha256', strength: 2, session: true },
  'SHA-512-256': { hash: 'sha512-256', strength: 3, session: false },
  'SHA-512-256-SESS': { hash: 'sha512-256', strength: 3, session: true },
};

/** A Digest challenge keysmith can answer, and how. */
export interface DigestChoice {
  challenge: Challenge;
  algorithm: Algorithm;
  /** `auth`, or undefined for an RFC 2069 challenge without qop. */
  qop: 'auth' | undefined;
}

function algorithmOf(challenge: Challenge): Algorithm | undefined {
  return ALGORITHMS[(challenge.params.algorithm ?? 'MD5').toUpperCase()];
}

function qopOf(challenge: Challenge): DigestChoice['qop'] | null {
  const offered = challenge.params.qop;
  if (offered === undefined) return undefined;
  return offered.split(',').some((q) => q.trim().toLowerCase() === 'auth') ? 'auth' : null;
}

/**
 * The strongest Digest challenge among `challenges` that keysmith can answer; throws one line
 * saying why when there is none (no Digest at all, or only algorithms or qops it does not know).
 */
export function chooseDigest(challenges: readonly Challenge[], server: string): DigestChoice {
  const digests = challenges.filter((c) => c.scheme.toLowerCase() === 'digest');
  let best: DigestChoice | undefined;
  for (const challenge of digests) {
    const algorithm = algorithmOf(challenge);
    const qop = qopOf(challenge);
    if (!algorithm || qop === null || challenge.params.nonce === undefined) continue;
    if (!best || algorithm.strength > best.algorithm.strength) best = { challenge, algorithm, qop };
  }
  if (best) return best;
  if (digests.length === 0) {
    const asked = challenges.map((c) => printable(c.scheme, 40)).join(', ');
    throw new KeysmithError(`${server} did not ask for Digest authentication${asked ? ` (it asked for ${asked})` : ''}`, 1,
      'is the profile\'s dialect right? log in again with the right --dialect');
  }
  const offered = digests.map((c) => `algorithm ${printable(c.params.algorithm ?? 'MD5', 40)}${c.params.qop === undefined ? '' : `, qop ${printable(c.params.qop, 40)}`}`);
  throw new KeysmithError(`${server} asks for Digest with ${offered.join('; ')}, which keysmith cannot answer (it knows MD5, SHA-256 and SHA-512-256, with or without -sess, and qop auth)`);
}

/** True when a Digest challenge says the nonce was stale: the credentials were right, answer again. */
export function isStaleNonce(challenges: readonly Challenge[]): boolean {
  return challenges.some((c) => c.scheme.toLowerCase() === 'digest' && c.params.stale?.toLowerCase() === 'true');
}

export interface DigestAnswer {
  username: string;
  password: string;
  method: string;
  /** The request-target: path and query. */
  uri: string;
  choice: DigestChoice;
  cnonce: string;
  /** How many times this nonce has been used, this time included. */
  nc: number;
}

/** A quoted-string: `"` and `\` escaped. */
function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** RFC 8187 ext-value (`UTF-8''%E2%82%AC`), for a user name that is not ASCII. */
function extValue(value: string): string {
  return `UTF-8''${encodeURIComponent(value).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

/** The Authorization header value that answers the chosen challenge. */
export function digestAuthorization(answer: DigestAnswer): string {
  const { username, password, method, uri, cnonce } = answer;
  const { challenge, algorithm, qop } = answer.choice;
  const H = (text: string) => createHash(algorithm.hash).update(text, 'utf8').digest('hex');
  const realm = challenge.params.realm ?? '';
  const nonce = challenge.params.nonce ?? '';
  const nc = answer.nc.toString(16).padStart(8, '0');
  let ha1 = H(`${username}:${realm}:${password}`);
  if (algorithm.session) ha1 = H(`${ha1}:${nonce}:${cnonce}`);
  const ha2 = H(`${method}:${uri}`);
  const response = qop ? H(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : H(`${ha1}:${nonce}:${ha2}`);

  const userhash = challenge.params.userhash?.toLowerCase() === 'true';
  const fields: string[] = [];
  if (userhash) fields.push(`username=${quote(H(`${username}:${realm}`))}`);
  else if (/^[\x20-\x7e]*$/.test(username)) fields.push(`username=${quote(username)}`);
  else if (challenge.params.charset?.toLowerCase() === 'utf-8') fields.push(`username*=${extValue(username)}`);
  // A server that did not say charset=UTF-8 gets the name's UTF-8 bytes as they are (Apache
  // compares bytes with its htdigest file); header values travel as Latin-1.
  else fields.push(`username=${quote(Buffer.from(username, 'utf8').toString('latin1'))}`);
  fields.push(`realm=${quote(realm)}`, `nonce=${quote(nonce)}`, `uri=${quote(uri)}`);
  if (challenge.params.algorithm !== undefined) fields.push(`algorithm=${challenge.params.algorithm}`);
  fields.push(`response=${quote(response)}`);
  if (challenge.params.opaque !== undefined) fields.push(`opaque=${quote(challenge.params.opaque)}`);
  if (qop) fields.push(`qop=${qop}`, `nc=${nc}`);
  if (qop || algorithm.session) fields.push(`cnonce=${quote(cnonce)}`);
  if (userhash) fields.push('userhash=true');
  return `Digest ${fields.join(', ')}`;
}

/** The Cookie header that sends back the cookies a 401 set (`name=value` of each Set-Cookie). */
export function cookieHeader(setCookie: readonly string[]): string | undefined {
  const pairs = setCookie.map((line) => line.split(';')[0]!.trim()).filter((pair) => /^[^=\s;]+=/.test(pair));
  return pairs.length ? pairs.join('; ') : undefined;
}

/** How often each nonce has been answered in this process (`nc`). */
const nonceCounts = new Map<string, number>();

// ---------------------------------------------------------------------------------------------
// The dialect

export const digest: Dialect = {
  name: 'digest',
  // The login half is the Basic one's (a user and password, kept as base64 of `user:password`).
  login: loginWithPassword('digest'),
  refresh: refreshStatic,
  whoami: whoamiWithPassword,

  authorize(_profile, session, { method, url, challenge }) {
    if (!challenge) return { headers: {}, needsChallenge: true };
    const choice = chooseDigest(parseChallenges(challenge.wwwAuthenticate), url.host);
    const { username, password } = staticCredentials(session);
    const nonce = choice.challenge.params.nonce!;
    const nc = (nonceCounts.get(nonce) ?? 0) + 1;
    nonceCounts.set(nonce, nc);
    const headers: Record<string, string> = {
      authorization: digestAuthorization({ username, password, method, uri: url.pathname + url.search, choice, cnonce: randomBytes(16).toString('hex'), nc }),
    };
    const cookie = cookieHeader(challenge.setCookie);
    if (cookie) headers.cookie = cookie;
    return { headers };
  },
};
