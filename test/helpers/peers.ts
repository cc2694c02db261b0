/**
 * Tests against real peers (etcd, Apache, Flask-HTTPAuth, gnome-keyring, nginx, ...): where the peer
 * is missing, its tests are skipped with the reason in their name, except under CI=true, where
 * .ci/run installs every peer and a missing one is a failure.
 */
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
