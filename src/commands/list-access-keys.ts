import { outJson, type Ctx } from '../io/context.js';
import { classifyHash, entries, sortIds, type HashInfo } from '../keychain/format.js';
import { keychainPath, loadKeychain } from '../keychain/store.js';

export interface ListAccessKeysOptions {
  keychain?: string;
  json?: boolean;
}

/** IDs sorted by byte order, one per line, as waved prints them; a missing keychain lists nothing. */
export async function run(opts: ListAccessKeysOptions, ctx: Ctx): Promise<void> {
  const { keychain } = await loadKeychain(keychainPath(ctx, opts.keychain));
  const list = entries(keychain);
  // IDs are unique (the parser rejects duplicates).
  const ids = sortIds(list.map((e) => e.id));
  if (opts.json) {
    const byId = new Map(list.map((e) => [e.id, e.hash]));
    // One JSON array, so `jq '.[].id'` works and an empty keychain is `[]`.
    outJson(
      ctx,
      ids.map((id) => {
        const info = classifyHash(byId.get(id)!) as HashInfo;
        return info.cost === undefined ? { id, algorithm: info.algorithm } : { id, algorithm: info.algorithm, cost: info.cost };
      }),
    );
    return;
  }
  if (ids.length > 0) ctx.stdout.write(ids.join('\n') + '\n');
}
