import { outJson, type Ctx } from '../io/context.js';
import { classifyHash, entries, sortIds, type HashInfo } from '../keychain/format.js';
import { keychainPath, listIds, loadKeychain } from '../keychain/store.js';

export interface ListAccessKeysOptions {
  keychain?: string;
  json?: boolean;
}

/** IDs sorted by byte order, one per line, as waved prints them; a missing keychain lists nothing. */
export async function run(opts: ListAccessKeysOptions, ctx: Ctx): Promise<void> {
  const path = keychainPath(ctx, opts.keychain);
  if (!opts.json) {
    const lines = await listIds(path);
    if (lines.length > 0) ctx.stdout.write(lines);
    return;
  }
  const list = entries((await loadKeychain(path)).keychain);
  // IDs are unique (the parser rejects duplicates).
  const ids = sortIds(list.map((e) => e.id));
  const byId = new Map(list.map((e) => [e.id, e.hash]));
  // One JSON array, so `jq '.[].id'` works and an empty keychain is `[]`.
  outJson(
    ctx,
    ids.map((id) => {
      const info = classifyHash(byId.get(id)!) as HashInfo;
      return info.cost === undefined ? { id, algorithm: info.algorithm } : { id, algorithm: info.algorithm, cost: info.cost };
    }),
  );
}
