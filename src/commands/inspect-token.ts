/**
 * `keysmith inspect-token [TOKEN|-]`: decode a JWT (header, claims, human expiry) and, with
 * --secret-file, verify its HS256 signature against every key of a rotation list.
 */
import { out, outJson, type Ctx } from '../io/context.js';
import { printable } from '../io/escape.js';
import { KeysmithError, UsageError } from '../io/errors.js';
import { chompOnce, readAll } from '../io/input.js';
import { resolveProfile, readSession } from '../tokens/store.js';
import { notLoggedIn } from '../tokens/session.js';

export interface InspectTokenOptions {
  secretFile?: string;
  json?: boolean;
  profile?: string;
}

interface Decoded {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

function decodePart(part: string | undefined, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new UsageError(`not a JWT: its ${what} is not base64url-encoded JSON`);
}

export function decodeJwt(token: string): Decoded {
  const parts = token.split('.');
  if (parts.length !== 3) throw new UsageError(`not a JWT (expected 3 dot-separated parts, got ${parts.length}); opaque tokens cannot be inspected`);
  return { header: decodePart(parts[0], 'header'), claims: decodePart(parts[1], 'payload') };
}

/** "in 14 min", "2 h ago". */
export function relativeTime(targetMs: number, nowMs: number): string {
  const delta = Math.round((targetMs - nowMs) / 1000);
  const abs = Math.abs(delta);
  const text = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : abs < 172_800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86_400)} days`;
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

async function tokenFrom(ctx: Ctx, arg: string | undefined, opts: InspectTokenOptions): Promise<string> {
  if (arg === '-' || (arg === undefined && ctx.stdinPiped)) {
    const text = chompOnce(await readAll(ctx.stdin())).trim();
    if (!text) throw new UsageError('no token on standard input');
    return text;
  }
  if (arg !== undefined) return arg.trim();
  const profile = await resolveProfile(ctx, opts.profile);
  const session = await readSession(ctx, profile.name);
  if (!session) throw notLoggedIn(profile.name);
  return session.accessToken;
}

export async function run(arg: string | undefined, opts: InspectTokenOptions, ctx: Ctx): Promise<void> {
  const token = await tokenFrom(ctx, arg, opts);
  const { header, claims } = decodeJwt(token);
  const now = ctx.now();
  const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  let verifiedWith: number | null | undefined;
  let keyCount = 0;
  if (opts.secretFile) {
    const { readSigningKeys } = await import('../secrets/keys-file.js');
    const keys = await readSigningKeys(opts.secretFile);
    keyCount = keys.length;
    verifiedWith = await verifyHs256(token, header, keys);
  }
  if (opts.json) {
    outJson(ctx, {
      header,
      claims,
      expires_at: exp === undefined ? null : new Date(exp).toISOString(),
      expired: exp === undefined ? null : exp <= now,
      ...(verifiedWith !== undefined && { verified: verifiedWith !== null, key_index: verifiedWith }),
    });
  } else {
    // A token's claims are anyone's text: JSON escapes the C0 controls, printable the rest.
    out(ctx, `header:  ${printable(JSON.stringify(header))}`);
    out(ctx, `claims:  ${JSON.stringify(claims, null, 2).split('\n').map((line) => printable(line)).join('\n         ')}`);
    for (const name of ['iat', 'nbf'] as const) {
      if (typeof claims[name] === 'number') out(ctx, `${name}:     ${new Date((claims[name] as number) * 1000).toISOString()} (${relativeTime((claims[name] as number) * 1000, now)})`);
    }
    out(ctx, exp === undefined ? 'expires: never (no exp claim)' : `expires: ${new Date(exp).toISOString()} (${exp <= now ? 'expired ' : ''}${relativeTime(exp, now)})`);
    if (verifiedWith !== undefined) {
      out(ctx, verifiedWith === null ? `signature: does not match ${keyCount === 1 ? 'the key' : `any of the ${keyCount} keys`}` : `signature: valid (HS256, ${keyCount === 1 ? 'the only key' : `key ${verifiedWith + 1} of ${keyCount}${verifiedWith === 0 ? ', the signing key' : ', an older key'}`})`);
    }
  }
  if (verifiedWith === null) throw new KeysmithError(`the token's signature ${keyCount === 1 ? 'does not match the key' : `matches none of the ${keyCount} keys`} in ${opts.secretFile}`);
}

/** Index of the first key whose HS256 signature verifies, or null. Expiry is reported, not enforced. */
async function verifyHs256(token: string, header: Record<string, unknown>, keys: string[]): Promise<number | null> {
  if (header.alg !== 'HS256') throw new UsageError(`--secret-file verifies HS256 tokens; this one is ${String(header.alg)}`);
  const { compactVerify } = await import('jose');
  for (let i = 0; i < keys.length; i++) {
    try {
      await compactVerify(token, new TextEncoder().encode(keys[i]!), { algorithms: ['HS256'] });
      return i;
    } catch {
      // try the next key, as Tiled does
    }
  }
  return null;
}
