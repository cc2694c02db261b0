/**
 * Tests against real peers (etcd, Apache, Flask-HTTPAuth, gnome-keyring, nginx, ...): where the peer
 * is missing, its tests are skipped with the reason in their name, except under CI=true, where
 * .ci/run installs every peer and a missing one is a failure.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';

export const CI = process.env.CI === 'true' || process.env.CI === '1';

/** describe() when `missing` is undefined; otherwise a visible skip, or under CI a failing test. */
export function describeWithPeer(peer: string, missing: string | undefined, name: string, body: () => void): void {
  if (!missing) {
    describe(name, body);
    return;
  }
  describe(name, () => {
    if (CI) it(`needs ${peer}`, () => expect.fail(`${missing}; .ci/run installs it`));
    else it.skip(`skipped: ${missing}`, () => {});
  });
}

/** True when `path` is an executable file. */
export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Debian's python3 (not a pyenv one that may come first on PATH): passlib and bcrypt live there. */
export const DEBIAN_PYTHON = '/usr/bin/python3';

/**
 * passlib's HtpasswdFile on `file`: for each key, [right secret accepted, wrong secret accepted].
 * A keychain keysmith wrote must give [true, false] for every key.
 */
export function passlibChecks(file: string, keys: ReadonlyArray<{ id: string; secret: string }>): { status: number | null; stderr: string; results: unknown } {
  const script = [
    'import json, sys',
    'from passlib.apache import HtpasswdFile',
    'keys = json.load(sys.stdin)',
    'h = HtpasswdFile(sys.argv[1])',
    'print(json.dumps([[h.check_password(k["id"], k["secret"]), h.check_password(k["id"], k["secret"] + "x")] for k in keys]))',
  ].join('\n');
  const r = spawnSync(DEBIAN_PYTHON, ['-c', script, file], { input: JSON.stringify(keys), encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, results: r.status === 0 ? JSON.parse(r.stdout) : undefined };
}

/** A port that was free a moment ago, for peers that cannot bind port 0 and tell which they got. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
