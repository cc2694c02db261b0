import type { Ctx } from '../io/context.js';
import { NotFoundError } from '../io/errors.js';
import { checkExport, newAccessKeys, printNewKeys } from '../keychain/access-keys.js';
import { parseCost } from '../keychain/hashing.js';
import { withKeychain, type KeychainOptions } from '../keychain/store.js';

export interface RotateAccessKeyOptions extends KeychainOptions {
  keepOld?: boolean;
  cost?: string;
  json?: boolean;
  export?: boolean;
}

/** Replace a key with a new one in one atomic write (the new entry takes the old one's place). */
export async function run(id: string, opts: RotateAccessKeyOptions, ctx: Ctx): Promise<void> {
  const cost = parseCost(opts.cost);
  checkExport(opts, 1);
  const { keys, path } = await withKeychain(ctx, opts, async (store) => {
    const notFound = () => new NotFoundError(`access key ID ${id} not found in keychain ${store.name}`);
    // Fail before the slow hashing when the ID is plainly not there; checked again as it changes.
    if (!(await store.has(id))) throw notFound();
    const keys = await newAccessKeys(1, cost);
    await store.replace(id, keys, opts.keepOld ?? false, notFound);
    return { keys, path: store.name };
  });
  const saved = opts.keepOld ? `Added access key ${keys[0]!.id} next to ${id} in ${path}.` : `Replaced access key ${id} by ${keys[0]!.id} in ${path}.`;
  printNewKeys(ctx, keys, path, opts.json ?? false, { exportVars: opts.export, saved });
  if (opts.keepOld) ctx.stderr.write(`The old key ${id} stays valid until you remove it: keysmith remove-access-key ${id}\n`);
}
