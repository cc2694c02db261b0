// Benchmark cases for the oauth2 dialect (issue 6). The runner (bench/run.mjs) times each argv
// against `node -e 0`; `limit` is the largest ratio allowed.
//
// `keysmith token` with a cached, valid oauth2 token must cost no more than any other dialect's:
// oauth4webapi must not load on that path. No server is needed: setup writes a profile and a
// session straight into temporary XDG directories.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROFILE = 'bench-oauth2';

/** b.tmp: a directory for this file's cases, or a function making one. */
async function workDir(b) {
  if (typeof b?.tmp === 'function') return b.tmp('oauth2');
  if (typeof b?.tmp === 'string') return b.tmp;
  return mkdtempSync(join(tmpdir(), 'keysmith-bench-oauth2-'));
}

export default async function oauth2(b) {
  const dir = await workDir(b);
  const config = join(dir, 'config');
  const state = join(dir, 'state');
  const setup = () => {
    const issuer = 'https://id.example.com';
    const profile = {
      name: PROFILE,
      url: issuer,
      dialect: 'oauth2',
      flow: 'device',
      clientId: 'keysmith-bench',
      scope: 'openid offline_access',
      username: 'alice',
      endpoints: {
        token_endpoint_auth_method: 'none',
        issuer,
        token_endpoint: `${issuer}/token`,
        device_authorization_endpoint: `${issuer}/device/auth`,
        revocation_endpoint: `${issuer}/token/revocation`,
        userinfo_endpoint: `${issuer}/me`,
      },
    };
    const now = Date.now();
    const session = {
      accessToken: 'bench-access-token-0123456789abcdefghijklmnopqrstuvwxyz',
      tokenType: 'bearer',
      obtainedAt: now,
      // Valid for a day: no refresh during the benchmark however long it runs.
      expiresAt: now + 86_400_000,
      refreshToken: 'bench-refresh-token-0123456789abcdefghijklmnopqrstuvwxyz',
      scope: 'openid offline_access',
    };
    mkdirSync(join(config, 'keysmith'), { recursive: true, mode: 0o700 });
    mkdirSync(join(state, 'keysmith', 'sessions'), { recursive: true, mode: 0o700 });
    writeFileSync(join(config, 'keysmith', 'profiles.json'), JSON.stringify({ default: PROFILE, profiles: { [PROFILE]: profile } }, null, 2) + '\n', { mode: 0o600 });
    writeFileSync(join(state, 'keysmith', 'sessions', `${PROFILE}.json`), JSON.stringify(session, null, 2) + '\n', { mode: 0o600 });
  };
  setup();
  return [
    {
      name: 'token (oauth2, cached valid token)',
      argv: ['token'],
      env: { XDG_CONFIG_HOME: config, XDG_STATE_HOME: state, KEYSMITH_PROFILE: PROFILE },
      setup,
      limit: 1.25,
    },
  ];
}
