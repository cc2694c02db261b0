import { say, type Ctx } from '../io/context.js';
import { KeysmithError, NotFoundError } from '../io/errors.js';
import { readSecret } from '../io/input.js';
import { classifyHash, findEntry, type Keychain } from '../keychain/format.js';
import { DEFAULT_COST, MAX_COST, checkSecret, dummyHash, verifySecret } from '../keychain/hashing.js';
import { withKeychain, type KeychainOptions } from '../keychain/store.js';

export interface VerifyAccessKeyOptions extends KeychainOptions {}

/** Exit 0 when the secret matches the ID's hash, 1 when it does not (or the ID is unknown). */
export async function run(id: string, opts: VerifyAccessKeyOptions, ctx: Ctx): Promise<void> {
  const { keychain, exists, name } = await withKeychain(ctx, opts, async (store) => ({ ...(await store.load()), name: store.name }));
  if (!exists) throw new NotFoundError(`keychain ${name} does not exist`, `check -k or $KEYSMITH_KEYCHAIN; keysmith create-access-key -k ${name} makes one`);
  const secret = await readSecret(ctx, {
    what: 'secret',
    // With --etcd-password-stdin, standard input held etcd's password.
    stdin: opts.etcdPasswordStdin ? 'never' : 'if-piped',
    envVar: 'H2O_WAVE_ACCESS_KEY_SECRET',
    prompt: `Secret for ${id}:`,
    howTo: 'pipe it on standard input or set H2O_WAVE_ACCESS_KEY_SECRET',
  });
  checkSecret(secret);
  const entry = findEntry(keychain, id);
  // An unknown ID is compared against a dummy hash with the keychain's most common cost, so that
  // it takes as long as a wrong secret for a typical known ID (README: what mixed costs reveal).
  const hash = entry?.hash ?? dummyHash(typicalCost(keychain));
  const ok = await verifySecret(secret, hash);
  if (!entry || !ok) throw new KeysmithError(`access key ${id}: verification failed`);
  say(ctx, `access key ${id}: OK`);
}

/**
 * The keychain's most common bcrypt cost, for the dummy hash: an unknown ID then takes as long as a
 * wrong secret for a typical entry. Ties go to the higher cost (the result then does not depend on
 * the order of lines). DEFAULT_COST when there are no bcrypt entries. One pass, no hashing: the
 * cost is read from each hash's text.
 */
export function typicalCost(keychain: Keychain): number {
  const counts = new Array<number>(MAX_COST + 1).fill(0);
  for (const line of keychain.lines) {
    if (line.kind !== 'entry') continue;
    const info = classifyHash(line.hash);
    if (typeof info !== 'string' && info.cost !== undefined) counts[info.cost]!++;
  }
  let best = DEFAULT_COST;
  let bestCount = 0;
  counts.forEach((count, cost) => {
    if (count > 0 && count >= bestCount) [best, bestCount] = [cost, count];
  });
  return best;
}
