import { say, type Ctx } from '../io/context.js';
import { NotFoundError, UsageError } from '../io/errors.js';
import { warnIfEmpty } from '../keychain/access-keys.js';
import { withKeychain, type KeychainOptions } from '../keychain/store.js';

export interface RemoveAccessKeyOptions extends KeychainOptions {}

/** Remove entries; if any ID is unknown, nothing is removed. */
export async function run(ids: string[], opts: RemoveAccessKeyOptions, ctx: Ctx): Promise<void> {
  if (ids.length === 0) throw new UsageError('name at least one access key ID to remove');
  const { missing, remaining, path } = await withKeychain(ctx, opts, async (store) => ({ ...(await store.remove(ids)), path: store.name }));
  if (missing.length > 0) {
    const list = missing.join(', ');
    throw new NotFoundError(`access key ID${missing.length > 1 ? 's' : ''} ${list} not found in keychain ${path}; nothing removed`);
  }
  const unique = new Set(ids).size;
  say(ctx, `Removed ${unique} access key${unique === 1 ? '' : 's'} from ${path}.`);
  warnIfEmpty(ctx, remaining, path);
}
