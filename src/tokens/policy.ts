/** When to refresh: ahead of expiry, but never more than half of a token's lifetime ahead. */
import type { Session } from './store.js';

export const DEFAULT_MIN_TTL_SECONDS = 60;

/**
 * True when the access token expires within `minTtlSeconds`, capped at half its lifetime so a
 * 60 s token is not refreshed on every call. Tokens of unknown lifetime are never stale.
 */
export function isStale(session: Session, nowMs: number, minTtlSeconds = DEFAULT_MIN_TTL_SECONDS): boolean {
  if (session.expiresAt === undefined) return false;
  const lifetime = session.expiresAt - session.obtainedAt;
  const ahead = Math.min(minTtlSeconds * 1000, Math.max(lifetime, 0) / 2);
  return session.expiresAt - nowMs <= ahead;
}

export function isExpired(session: Session, nowMs: number): boolean {
  return session.expiresAt !== undefined && session.expiresAt <= nowMs;
}
