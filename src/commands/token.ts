/**
 * `keysmith token`: print a valid access token and nothing else. This is the call scripts make
 * most, so its fast path reads two small files and imports nothing heavy.
 */
import { out, outJson, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { checkSession, headerLine } from '../tokens/dialect.js';
import { DEFAULT_MIN_TTL_SECONDS } from '../tokens/policy.js';
import { currentSession } from '../tokens/session.js';
import { resolveProfile } from '../tokens/store.js';

export interface TokenOptions {
  profile?: string;
  header?: boolean;
  json?: boolean;
  minTtl?: string;
  timeout?: string;
}

/** Static dialects that keep `user:password` rather than a token (store.ts). */
const USER_AND_PASSWORD = new Set<string>(['basic', 'digest', 'wave']);

export function parseSeconds(value: string | undefined, flag: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`${flag} must be a number of seconds ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

export async function run(opts: TokenOptions, ctx: Ctx): Promise<void> {
  const minTtl = parseSeconds(opts.minTtl, '--min-ttl', DEFAULT_MIN_TTL_SECONDS);
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  const profile = await resolveProfile(ctx, opts.profile);
  // Sessions are checked before they are saved; this also covers files written by older versions,
  // so that `curl -H "$(keysmith token --header)"` never carries a second header.
  const session = checkSession(await currentSession(ctx, profile, { minTtl, timeout }), 'token');
  // Basic, Digest and Wave profiles keep a user and password: there is no token to print, only
  // a header (Basic, Wave; Digest answers each request's challenge, and headerLine says so).
  if (USER_AND_PASSWORD.has(profile.dialect) && (opts.json || !opts.header)) {
    throw new UsageError(
      `profile ${profile.name} holds a user and password (${profile.dialect}), not a token`,
      profile.dialect === 'digest'
        ? 'Digest answers a challenge on each request: use `keysmith api PATH`, or `keysmith exec -- CMD` for the user and password'
        : 'print its header with `keysmith token --header`, or let `keysmith api PATH` or `keysmith exec -- CMD` send it',
    );
  }
  if (opts.json) {
    const expiresIn = session.expiresAt === undefined ? null : Math.max(0, Math.floor((session.expiresAt - ctx.now()) / 1000));
    outJson(ctx, {
      token: session.accessToken,
      type: session.tokenType,
      expires_at: session.expiresAt === undefined ? null : new Date(session.expiresAt).toISOString(),
      expires_in: expiresIn,
      profile: profile.name,
    });
  } else if (opts.header) {
    const [name, value] = headerLine(profile, session);
    out(ctx, `${name}: ${value}`);
  } else {
    out(ctx, session.accessToken);
  }
}
