// Benchmarks of `keysmith exec` (issue 11):
// - `exec -- true` with a cached token: <= 1.2x `node -e 0` (keysmith's start-up, plus starting a
//   child). Its peer is the floor of any exec written in Node: `node -e` starting `true` and
//   waiting for it (loading node:child_process and one fork/exec cost ~5 ms on their own).
// - A child making N (default 1,000; $BENCH_EXEC_REQUESTS) authenticated requests under one
//   `exec`, against N x `curl -H "$(keysmith token --header)" URL`, the pattern exec replaces:
//   both totals are reported, and exec must be at least 10x faster. The exec child is a small
//   Node script (fetch, one connection kept alive) reading $KEYSMITH_AUTH_HEADER; the other side
//   runs keysmith and curl once per request, as a shell loop does. Every request must get 200
//   from a local Tiled test server (its metadata route wants a token with read:metadata). Skipped without curl.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from '../../fixtures/servers/tiled.mjs';
import { writeLoggedInProfile } from '../lib/session.mjs';

const REQUESTS = Number(process.env.BENCH_EXEC_REQUESTS) > 0 ? Math.floor(Number(process.env.BENCH_EXEC_REQUESTS)) : 1000;

const SPAWN_TRUE = "process.getBuiltinModule('node:child_process').spawn('true', [], { stdio: 'inherit' }).on('exit', (code) => process.exit(code))";

/** The exec side: N sequential requests with the header from the environment; exit 1 on any non-200. */
const CHILD = `
const [url, n] = [process.argv[2], Number(process.argv[3])];
const [name, ...rest] = process.env.KEYSMITH_AUTH_HEADER.split(': ');
const headers = { [name]: rest.join(': ') };
for (let i = 0; i < n; i++) {
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  if (res.status !== 200) { console.error('HTTP ' + res.status); process.exit(1); }
}
`;

function run(command, args, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${err.trim().split('\n')[0] ?? ''}`));
    });
  });
}

function curlMissing() {
  const r = spawnSync('curl', ['--version'], { stdio: 'ignore' });
  return r.error ? 'curl not found (Debian: curl)' : r.status !== 0 ? 'curl --version failed' : undefined;
}

export default async function exec(b) {
  const env = writeLoggedInProfile(mkdtempSync(join(b.tmp, 'cached-')), {
    name: 'bench-tiled',
    url: 'https://tiled.example.com',
    dialect: 'tiled',
    provider: 'toy',
    username: 'alice',
  });
  const startup = {
    name: 'exec -- true (tiled, cached valid token)',
    argv: ['exec', '--', 'true'],
    env: { ...env, TMPDIR: b.tmp },
    limit: 1.2,
    // The floor for any `exec` written in Node: node itself starting `true` and waiting for it.
    peer: { name: 'node -e "spawn true" (the floor)', command: process.execPath, args: ['-e', SPAWN_TRUE] },
  };

  const missing = curlMissing();
  const name = `${REQUESTS} authenticated requests: one exec vs ${REQUESTS} x curl -H "$(keysmith token --header)"`;
  if (missing) {
    return [startup, { name: `${name} (skipped)`, kind: 'throughput', run: async () => ({ value: 0, unit: 'x', target: 0, note: `skipped: ${missing}` }) }];
  }
  const requests = {
    name,
    kind: 'throughput',
    run: async () => {
      const fixture = createServer({ accessTtl: 3600 });
      const url = await fixture.listen(0);
      try {
        const home = { HOME: mkdtempSync(join(b.tmp, 'home-')), TMPDIR: b.tmp };
        await run(process.execPath, [b.keysmith, 'login', url, '-u', 'alice'], { ...home, KEYSMITH_PASSWORD: 'secret1' });
        const target = `${url}/api/v1/metadata/`;
        const child = join(b.tmp, 'requests.mjs');
        writeFileSync(child, CHILD);
        const loop = join(b.tmp, 'curl-loop.sh');
        writeFileSync(
          loop,
          `set -e\nn=0\nwhile [ $n -lt ${REQUESTS} ]; do\n  curl -sf -o /dev/null -H "$("$NODE" "$KEYSMITH" token --header)" "$URL"\n  n=$((n+1))\ndone\n`,
        );
        const before = fixture.stats().metadata ?? 0;
        const execMs = await run(process.execPath, [b.keysmith, 'exec', '--', process.execPath, child, target, String(REQUESTS)], home);
        const curlMs = await run('sh', [loop], { ...home, NODE: process.execPath, KEYSMITH: b.keysmith, URL: target });
        const served = (fixture.stats().metadata ?? 0) - before;
        if (served !== 2 * REQUESTS) throw new Error(`the server answered ${served} requests, expected ${2 * REQUESTS}`);
        const ratio = curlMs / execMs;
        return {
          value: ratio,
          unit: 'x faster',
          target: 10,
          note: `one exec: ${execMs.toFixed(0)} ms (${(execMs / REQUESTS).toFixed(2)} ms/request); ${REQUESTS} x curl + keysmith token: ${curlMs.toFixed(0)} ms (${(curlMs / REQUESTS).toFixed(1)} ms/request); ${ratio.toFixed(1)}x`,
        };
      } finally {
        await fixture.close();
      }
    },
  };
  return [startup, requests];
}
