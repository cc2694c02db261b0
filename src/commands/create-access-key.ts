import type { Ctx } from '../io/context.js';
import { checkExport, newAccessKeys, parseCount, printNewKeys } from '../keychain/access-keys.js';
import { parseCost } from '../keychain/hashing.js';
import { withKeychain, type KeychainOptions } from '../keychain/store.js';

export interface CreateAccessKeyOptions extends KeychainOptions {
  count?: string;
  cost?: string;
  json?: boolean;
  export?: boolean;
}

export async function run(opts: CreateAccessKeyOptions, ctx: Ctx): Promise<void> {
  const count = parseCount(opts.count);
  checkExport(opts, count);
  const cost = parseCost(opts.cost);
  const { keys, keychain } = await withKeychain(ctx, opts, async (store) => {
    // Hash before taking the lock: bcrypt is the slow part, and others should not wait for it.
    const keys = await newAccessKeys(count, cost);
    await store.addKeys(keys);
    return { keys, keychain: store.name };
  });
  printNewKeys(ctx, keys, keychain, opts.json ?? false, { exportVars: opts.export });
}
