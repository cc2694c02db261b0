import type { Ctx } from '../io/context.js';
import { avoidTakenIds, newAccessKeys, parseCount, printNewKeys } from '../keychain/access-keys.js';
import { appendEntries, entries } from '../keychain/format.js';
import { parseCost } from '../keychain/hashing.js';
import { keychainPath, updateKeychain } from '../keychain/store.js';

export interface CreateAccessKeyOptions {
  keychain?: string;
  count?: string;
  cost?: string;
  json?: boolean;
}

export async function run(opts: CreateAccessKeyOptions, ctx: Ctx): Promise<void> {
  const path = keychainPath(ctx, opts.keychain);
  const count = parseCount(opts.count);
  const cost = parseCost(opts.cost);
  // Hash before taking the lock: bcrypt is the slow part, and others should not wait for it.
  const keys = await newAccessKeys(count, cost);
  await updateKeychain(path, (keychain) => {
    avoidTakenIds(keys, new Set(entries(keychain).map((e) => e.id)));
    appendEntries(keychain, keys);
  });
  printNewKeys(ctx, keys, path, opts.json ?? false);
}
