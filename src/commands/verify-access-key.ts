import { say, type Ctx } from '../io/context.js';
import { KeysmithError } from '../io/errors.js';
import { readSecret } from '../io/input.js';
import { classifyHash, entries, findEntry } from '../keychain/format.js';
import { DEFAULT_COST, checkSecret, dummyHash, verifySecret } from '../keychain/hashing.js';
import { keychainPath, loadKeychain } from '../keychain/store.js';

export interface VerifyAccessKeyOptions {
  keychain?: string;
}

/** Exit 0 when the secret matches the ID's hash, 1 when it does not (or the ID is unknown). */
export async function run(id: string, opts: VerifyAccessKeyOptions, ctx: Ctx): Promise<void> {
  const path = keychainPath(ctx, opts.keychain);
  const { keychain } = await loadKeychain(path);
  const secret = await readSecret(ctx, {
    what: 'secret',
    stdin: 'if-piped',
    envVar: 'H2O_WAVE_ACCESS_KEY_SECRET',
    prompt: `Secret for ${id}:`,
    howTo: 'pipe it on standard input or set H2O_WAVE_ACCESS_KEY_SECRET',
  });
  checkSecret(secret);
  const entry = findEntry(keychain, id);
  // An unknown ID is compared against a dummy hash with the keychain's usual cost, so that it
  // takes as long as a wrong secret for a known ID.
  const hash = entry?.hash ?? dummyHash(typicalCost(keychain));
  const ok = await verifySecret(secret, hash);
  if (!entry || !ok) throw new KeysmithError(`access key ${id}: verification failed`);
  say(ctx, `access key ${id}: OK`);
}

function typicalCost(keychain: Parameters<typeof entries>[0]): number {
  for (const e of entries(keychain)) {
    const info = classifyHash(e.hash);
    if (typeof info !== 'string' && info.cost !== undefined) return info.cost;
  }
  return DEFAULT_COST;
}
