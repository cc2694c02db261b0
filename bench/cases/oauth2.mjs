// Benchmark cases for the oauth2 dialect (issue 6). The runner (bench/run.mjs) times each argv
// against `node -e 0`; `limit` is the largest ratio allowed.
//
// `keysmith token` with a cached, valid oauth2 token must cost no more than any other dialect's:
// oauth4webapi must not load on that path. No server is needed: setup writes a profile and a
// session straight into temporary XDG directories.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validSession, writeLoggedInProfile } from '../lib/session.mjs';

const PROFILE = 'bench-oauth2';

/** b.tmp: a directory for this file's cases, or a function making one. */
async function workDir(b) {
  if (typeof b?.tmp === 'function') return b.tmp('oauth2');
  if (typeof b?.tmp === 'string') return b.tmp;
  return mkdtempSync(join(tmpdir(), 'keysmith-bench-oauth2-'));
}

export default async function oauth2(b) {
  const dir = await workDir(b);
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
  const env = writeLoggedInProfile(dir, profile, validSession({ scope: 'openid offline_access' }));
  return [{ name: 'token (oauth2, cached valid token)', argv: ['token'], env, limit: 1.25 }];
}
