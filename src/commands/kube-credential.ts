/**
 * `keysmith kube-credential`: a kubectl exec credential plugin (client.authentication.k8s.io).
 * kubectl runs it for every command that needs the token, so it is `token`'s fast path with a
 * different envelope: two small files read, nothing heavy imported, and a stale token refreshed
 * under the same cross-process lock (many kubectl processes at once cause one refresh).
 *
 *   users:
 *   - name: tiled
 *     user:
 *       exec:
 *         apiVersion: client.authentication.k8s.io/v1
 *         command: keysmith
 *         args: [kube-credential, --profile, tiled]
 *         interactiveMode: Never
 */
import { outJson, type Ctx } from '../io/context.js';
import { KeysmithError, UsageError } from '../io/errors.js';
import { printable } from '../io/escape.js';
import { checkSession, headerLine } from '../tokens/dialect.js';
import { DEFAULT_MIN_TTL_SECONDS } from '../tokens/policy.js';
import { currentSession } from '../tokens/session.js';
import { resolveProfile, type Profile, type Session } from '../tokens/store.js';
import { parseSeconds } from './token.js';

export interface KubeCredentialOptions {
  profile?: string;
  minTtl?: string;
  timeout?: string;
}

const GROUP = 'client.authentication.k8s.io';
const VERSIONS = [`${GROUP}/v1`, `${GROUP}/v1beta1`];

export async function run(opts: KubeCredentialOptions, ctx: Ctx): Promise<void> {
  const apiVersion = requestedVersion(ctx.env.KUBERNETES_EXEC_INFO);
  const minTtl = parseSeconds(opts.minTtl, '--min-ttl', DEFAULT_MIN_TTL_SECONDS);
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  const profile = await resolveProfile(ctx, opts.profile);
  const session = checkSession(await currentSession(ctx, profile, { minTtl, timeout }), 'kube-credential');
  const status: { token: string; expirationTimestamp?: string } = { token: bearerToken(profile, session) };
  // Without an expiry kubectl keeps the token for its whole run; with one it runs us again after it.
  if (session.expiresAt !== undefined) status.expirationTimestamp = rfc3339(session.expiresAt);
  outJson(ctx, { apiVersion, kind: 'ExecCredential', status });
}

/**
 * The version kubectl asked for in $KUBERNETES_EXEC_INFO ({"apiVersion", "kind", "spec"}); v1
 * when the variable is not set (a person running the plugin by hand).
 */
export function requestedVersion(info: string | undefined): string {
  if (info === undefined || info.trim() === '') return VERSIONS[0]!;
  let apiVersion: unknown;
  try {
    apiVersion = (JSON.parse(info) as { apiVersion?: unknown } | null)?.apiVersion;
  } catch {
    throw new UsageError('KUBERNETES_EXEC_INFO is not JSON; kubectl sets it to {"apiVersion": ..., "kind": "ExecCredential", ...}');
  }
  if (typeof apiVersion === 'string' && VERSIONS.includes(apiVersion)) return apiVersion;
  const asked = typeof apiVersion === 'string' ? printable(apiVersion, 80) : 'no apiVersion';
  throw new UsageError(`kubectl asked for ${asked}; keysmith kube-credential answers ${VERSIONS.join(' and ')}`, `set apiVersion: ${VERSIONS[0]} in the kubeconfig's exec block`);
}

/** kubectl sends `status.token` as `Authorization: Bearer TOKEN`: only such credentials fit. */
function bearerToken(profile: Profile, session: Session): string {
  let header: [string, string] | undefined;
  try {
    header = headerLine(profile, session);
  } catch {
    header = undefined;
  }
  const match = header && header[0].toLowerCase() === 'authorization' ? /^Bearer (.+)$/i.exec(header[1]) : null;
  if (!match) {
    throw new KeysmithError(`profile ${profile.name} (${profile.dialect}) has no bearer token, and kubectl sends only bearer tokens`, 2, 'use a profile that logs in for a token (tiled, oauth2, basic-login)');
  }
  return match[1]!;
}

/** RFC 3339 in UTC, whole seconds (rounded down, so kubectl never holds a token past its expiry). */
function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
