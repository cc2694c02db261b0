import type { Ctx } from '../io/context.js';
import { NotFoundError } from '../io/errors.js';
import { avoidTakenIds, newAccessKeys, printNewKeys } from '../keychain/access-keys.js';
import { entries, findEntry, insertEntriesAfter, removeEntries } from '../keychain/format.js';
import { parseCost } from '../keychain/hashing.js';
import { keychainPath, loadKeychain, updateKeychain } from '../keychain/store.js';

export interface RotateAccessKeyOptions {
  keychain?: string;
  keepOld?: boolean;
  cost?: string;
  json?: boolean;
}

/** Replace a key with a new one in one atomic write (the new entry takes the old one's place). */
export async function run(id: string, opts: RotateAccessKeyOptions, ctx: Ctx): Promise<void> {
  const path = keychainPath(ctx, opts.keychain);
  const cost = parseCost(opts.cost);
  const notFound = () => new NotFoundError(`access key ID ${id} not found in keychain ${path}`);
  // Fail before the slow hashing when the ID is plainly not there; checked again under the lock.
  if (!findEntry((await loadKeychain(path)).keychain, id)) throw notFound();
  const keys = await newAccessKeys(1, cost);
  await updateKeychain(path, (keychain) => {
    if (!findEntry(keychain, id)) throw notFound();
    avoidTakenIds(keys, new Set(entries(keychain).map((e) => e.id)));
    insertEntriesAfter(keychain, id, keys);
    if (!opts.keepOld) removeEntries(keychain, [id]);
  });
  printNewKeys(ctx, keys, path, opts.json ?? false);
  if (opts.keepOld) ctx.stderr.write(`The old key ${id} stays valid until you remove it: keysmith remove-access-key ${id}\n`);
}
