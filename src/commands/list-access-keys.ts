import { outJson, say, type Ctx } from '../io/context.js';
import { classifyHash, entries, sortIds, type HashInfo } from '../keychain/format.js';
import { withKeychain, type KeychainOptions } from '../keychain/store.js';

export interface ListAccessKeysOptions extends KeychainOptions {
  json?: boolean;
}

/** IDs sorted by byte order, one per line, as waved prints them; a missing keychain lists nothing. */
export async function run(opts: ListAccessKeysOptions, ctx: Ctx): Promise<void> {
  if (!opts.json) {
    const { lines, name, exists } = await withKeychain(ctx, opts, async (store) => {
      const lines = await store.listIds();
      // Only an empty listing pays for the second look.
      return { lines, name: store.name, exists: lines.length > 0 || (await store.load()).exists };
    });
    if (lines.length > 0) ctx.stdout.write(lines);
    else if (!exists) noKeychain(ctx, name);
    return;
  }
  const { keychain, name, exists } = await withKeychain(ctx, opts, async (store) => ({ ...(await store.load()), name: store.name }));
  if (!exists) noKeychain(ctx, name);
  const list = entries(keychain);
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

/** waved lists nothing for a missing keychain, and so does keysmith; people are told why. */
function noKeychain(ctx: Ctx, name: string): void {
  say(ctx, `note: keychain ${name} does not exist, so it has no keys (create one: keysmith create-access-key -k ${name})`);
}
