// Write a logged-in profile straight into temporary XDG directories, so benchmarks of the cached
// `keysmith token` path need no server. Returns the environment that points keysmith at them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A session valid for a day: no refresh however long the benchmark runs. */
export function validSession(extra = {}) {
  const now = Date.now();
  return {
    accessToken: 'bench-access-token-0123456789abcdefghijklmnopqrstuvwxyz',
    tokenType: 'bearer',
    obtainedAt: now,
    expiresAt: now + 86_400_000,
    refreshToken: 'bench-refresh-token-0123456789abcdefghijklmnopqrstuvwxyz',
    ...extra,
  };
}

export function writeLoggedInProfile(dir, profile, session = validSession()) {
  const config = join(dir, 'config');
  const state = join(dir, 'state');
  mkdirSync(join(config, 'keysmith'), { recursive: true, mode: 0o700 });
  mkdirSync(join(state, 'keysmith', 'sessions'), { recursive: true, mode: 0o700 });
  const profiles = { default: profile.name, profiles: { [profile.name]: profile } };
  writeFileSync(join(config, 'keysmith', 'profiles.json'), JSON.stringify(profiles, null, 2) + '\n', { mode: 0o600 });
  writeFileSync(join(state, 'keysmith', 'sessions', `${encodeURIComponent(profile.name)}.json`), JSON.stringify(session, null, 2) + '\n', { mode: 0o600 });
  return { XDG_CONFIG_HOME: config, XDG_STATE_HOME: state, KEYSMITH_PROFILE: profile.name };
}
