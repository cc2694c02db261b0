// Benchmarks of `keysmith api` (issue 11):
// - `api /data` (a small JSON body) with a cached bearer token: <= 1.3x the time of `node -e 0`
//   plus the same request made by curl (`curl -H "Authorization: Bearer ..."`), all measured
//   interleaved in one run. The server is the basic-login test server in this process; the token
//   comes from its /login, and the profile is written as `login` would write it.
// - For information: `api` against `node -e 0` alone, and an API-key profile (no token logic).
// Without curl the judged case is skipped (its note says why).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from '../../fixtures/servers/basic-login.mjs';
import { createServer as createApikeyServer } from '../../fixtures/servers/apikey.mjs';
import { validSession, writeLoggedInProfile } from '../lib/session.mjs';

function curlMissing() {
  const r = spawnSync('curl', ['--version'], { stdio: 'ignore' });
  return r.error ? 'curl not found (Debian: curl)' : r.status !== 0 ? 'curl --version failed' : undefined;
}

/** A fixture server in this process that does not keep it alive once the cases are done. */
async function serve(fixture, b) {
  const url = await fixture.listen(0);
  fixture.server.unref();
  b.onCleanup(() => fixture.close());
  return url;
}

export default async function api(b) {
  const url = await serve(createServer({ accessTtl: 86_400 }), b);
  const res = await fetch(`${url}/login`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('alice:password').toString('base64')}` } });
  const { access_token: accessToken, refresh_token: refreshToken } = await res.json();
  const env = writeLoggedInProfile(
    mkdtempSync(join(b.tmp, 'bearer-')),
    { name: 'bench-api', url, dialect: 'basic-login', username: 'alice' },
    validSession({ accessToken, refreshToken }),
  );

  const key = 'bench-api-key-0123456789abcdef';
  const keyUrl = await serve(createApikeyServer({ apiKeys: [key] }), b);
  const keyEnv = writeLoggedInProfile(
    mkdtempSync(join(b.tmp, 'apikey-')),
    { name: 'bench-apikey', url: keyUrl, dialect: 'apikey' },
    { accessToken: key, tokenType: 'apikey', obtainedAt: Date.now() },
  );

  const curl = { name: 'curl', command: 'curl', args: ['-sS', '--fail', '-o', '/dev/null', '-H', `Authorization: Bearer ${accessToken}`, `${url}/data`] };
  const missing = curlMissing();
  const judged = missing
    ? { name: 'api GET /data vs node -e 0 + curl (skipped)', kind: 'throughput', run: async () => ({ value: 0, unit: 'x', target: 0, note: `skipped: ${missing}` }) }
    : { name: 'api GET /data (bearer, cached token) vs node -e 0 + curl', argv: ['api', '/data'], env, limit: 1.3, baseline: 'node+peer', peer: curl };
  return [
    judged,
    { name: 'api GET /data (API key header)', argv: ['api', '/data'], env: keyEnv },
  ];
}
