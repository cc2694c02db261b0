/**
 * `keysmith git-credential get|store|erase`: git's credential-helper protocol (gitcredentials(7)).
 *
 *   git config --global credential.https://tiled.example.com.helper '!keysmith git-credential'
 *
 * git writes `key=value` lines ended by an empty line on stdin. For `get`, keysmith answers
 * `username=` and `password=` for the profile whose URL matches git's protocol, host (with port)
 * and, when git sends one (`credential.useHttpPath`), path: a fresh token, refreshed as `token`
 * does, or the static credential. No matching profile: no output and exit 0, so git asks its next
 * helper. `store` and `erase` are read and ignored (keysmith owns the credential), and so is any
 * action git may add later, as the protocol asks of helpers.
 */
import { out, type Ctx } from '../io/context.js';
import { KeysmithError, NotFoundError, UsageError } from '../io/errors.js';
import { warn } from '../io/escape.js';
import { checkSession, staticCredentials, type Credentials } from '../tokens/dialect.js';
import { currentSession } from '../tokens/session.js';
import { listProfiles, type Profile, type Session } from '../tokens/store.js';
import { parseSeconds } from './token.js';

export interface GitCredentialOptions {
  profile?: string;
  timeout?: string;
}

/** What git asks about: the parts of the URL it needs a credential for. */
export interface GitRequest {
  protocol?: string;
  host?: string;
  /** Without the leading slash, as git sends it; only with credential.useHttpPath. */
  path?: string;
  username?: string;
}

/** git's own requests are a few hundred bytes; anything this large is not git talking. */
const MAX_INPUT = 64 * 1024;
/** Username of token profiles that have none: servers taking a token as a password ignore it. */
const PLACEHOLDER_USER = 'keysmith';

export async function run(action: string, opts: GitCredentialOptions, ctx: Ctx): Promise<void> {
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  // Every action reads its input to the end, so git never writes into a closed pipe.
  const input = await readInput(ctx);
  if (action !== 'get') return;
  const request = parseCredentialRequest(input);
  const { default: def, profiles } = await listProfiles(ctx);
  if (opts.profile && !profiles.some((p) => p.name === opts.profile)) {
    throw new NotFoundError(`no profile ${opts.profile}`, 'check the helper line in your git config');
  }
  const chosen = chooseProfile(profiles, request, { only: opts.profile, preferred: ctx.env.KEYSMITH_PROFILE || def });
  if ('ambiguous' in chosen) {
    warn(ctx, `git-credential: profiles ${chosen.ambiguous.join(', ')} all match ${request.protocol}://${request.host}; answering for none`);
    ctx.stderr.write('hint: add --profile NAME to the helper, or set credential.useHttpPath to tell them apart by path\n');
    return;
  }
  if (!chosen.profile) return;
  const profile = chosen.profile;
  const session = checkSession(await currentSession(ctx, profile, { timeout }), 'git-credential');
  const { username, password } = credentialFor(profile, session, request.username);
  for (const [what, value] of [['user name', username], ['password', password]] as const) {
    // A line break would end the answer early or add lines of our own choosing to it.
    if (/[\r\n\0]/.test(value)) throw new KeysmithError(`profile ${profile.name}: the ${what} has a line break or NUL, which git's credential protocol cannot carry`);
  }
  out(ctx, `username=${username}`);
  out(ctx, `password=${password}`);
  // git 2.41+ drops the credential after this time (older versions ignore the line).
  if (session.expiresAt !== undefined) out(ctx, `password_expiry_utc=${Math.floor(session.expiresAt / 1000)}`);
}

async function readInput(ctx: Ctx): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.stdin()) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += bytes.length;
    if (size > MAX_INPUT) throw new UsageError(`git-credential: more than ${MAX_INPUT / 1024} KiB on standard input; expected git's key=value lines`);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Parse git's request: `key=value` lines up to the first empty line (or the end); unknown keys are
 * ignored, as newer versions of git send more of them. `url=` stands for its parts, replacing
 * what came before it, as in git. A line without `=` or a NUL byte is an error (git's own helpers
 * refuse such input too).
 */
export function parseCredentialRequest(text: string): GitRequest {
  if (text.includes('\0')) throw new UsageError('git-credential: the input has a NUL byte; expected key=value lines');
  const request: GitRequest = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '') break;
    const eq = line.indexOf('=');
    // The line is not quoted back: on `store` it could be a password.
    if (eq <= 0) throw new UsageError(`git-credential: input line ${i + 1} is not key=value`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'protocol' || key === 'host' || key === 'path' || key === 'username') request[key] = value;
    else if (key === 'url') Object.assign(request, fromUrl(value));
  }
  return request;
}

/** The parts of a `url=` value; an unparsable one leaves nothing to match. */
function fromUrl(value: string): GitRequest {
  const result: GitRequest = { protocol: undefined, host: undefined, path: undefined, username: undefined };
  try {
    const url = new URL(value);
    result.protocol = url.protocol.replace(/:$/, '');
    result.host = url.host;
    const path = decodeURIComponent(url.pathname.replace(/^\/+/, ''));
    if (path) result.path = path;
    if (url.username) result.username = decodeURIComponent(url.username);
  } catch {
    // not a URL git could have meant
  }
  return result;
}

/** `https://HOST:PORT` of git's request, normalised as URL does (default port dropped, lower case). */
function requestOrigin(request: GitRequest): string | undefined {
  const { protocol, host } = request;
  if ((protocol !== 'http' && protocol !== 'https') || !host) return undefined;
  // Only a host name or address with an optional port: `evil@good` would parse as user@host.
  if (!/^[^\s/\\?#@]+$/.test(host)) return undefined;
  try {
    const url = new URL(`${protocol}://${host}/`);
    return url.pathname === '/' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

/** A profile's origin and its path without the trailing slash ('' for the root). */
function profileLocation(profile: Profile): { origin: string; path: string } | undefined {
  try {
    const url = new URL(profile.url);
    let path = url.pathname.replace(/\/+$/, '');
    try {
      path = decodeURIComponent(path);
    } catch {
      // keep it encoded
    }
    return { origin: url.origin, path };
  } catch {
    return undefined;
  }
}

/** `/api` is a prefix of `/api` and `/api/v1`, not of `/apix`. */
function isPathPrefix(prefix: string, path: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(prefix + '/');
}

/**
 * The profile git's request is for. Only profiles on the request's own origin (protocol, host and
 * port) are candidates, whatever `only` says: a token never goes to another server. A user name in
 * the request rules out profiles of another user. With a path, the profile with the longest
 * matching path wins; without one, a profile for the whole host is preferred. Ties go to the
 * default profile; otherwise the answer is ambiguous and nobody answers.
 */
export function chooseProfile(
  profiles: Profile[],
  request: GitRequest,
  { only, preferred }: { only?: string | undefined; preferred?: string | undefined } = {},
): { profile?: Profile } | { ambiguous: string[] } {
  const origin = requestOrigin(request);
  if (!origin) return {};
  const candidates: Array<{ profile: Profile; path: string }> = [];
  for (const profile of profiles) {
    if (only !== undefined && profile.name !== only) continue;
    const location = profileLocation(profile);
    if (!location || location.origin !== origin) continue;
    if (request.username !== undefined && profile.username !== undefined && profile.username !== request.username) continue;
    candidates.push({ profile, path: location.path });
  }
  let best: typeof candidates;
  if (only !== undefined) {
    best = candidates;
  } else if (request.path !== undefined) {
    const trimmed = request.path.replace(/^\/+/, '').replace(/\/+$/, '');
    const wanted = trimmed ? '/' + trimmed : '';
    const matching = candidates.filter((c) => isPathPrefix(c.path, wanted));
    const longest = Math.max(-1, ...matching.map((c) => c.path.length));
    best = matching.filter((c) => c.path.length === longest);
  } else {
    const whole = candidates.filter((c) => c.path === '');
    best = whole.length ? whole : candidates;
  }
  if (best.length <= 1) return { profile: best[0]?.profile };
  const fallback = best.find((c) => c.profile.name === preferred);
  return fallback ? { profile: fallback.profile } : { ambiguous: best.map((c) => c.profile.name) };
}

/** The user and password git sends: the static credential, or a token as the password. */
function credentialFor(profile: Profile, session: Session, requestedUser: string | undefined): Credentials {
  switch (profile.dialect) {
    case 'basic':
    case 'digest':
    case 'wave':
      return staticCredentials(session);
    default:
      return { username: requestedUser ?? profile.username ?? PLACEHOLDER_USER, password: session.accessToken };
  }
}
