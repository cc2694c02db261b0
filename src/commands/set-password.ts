import { say, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { readSecret } from '../io/input.js';
import { appendEntries, findEntry, invalidNewIdReason } from '../keychain/format.js';
import { checkSecret, hashSecret, parseCost } from '../keychain/hashing.js';
import { keychainPath, updateKeychain } from '../keychain/store.js';

export interface SetPasswordOptions {
  keychain?: string;
  passwordStdin?: boolean;
  cost?: string;
}

/** Add or update an htpasswd user with a bcrypt hash; other entries stay as they are. */
export async function run(user: string, opts: SetPasswordOptions, ctx: Ctx): Promise<void> {
  const problem = invalidNewIdReason(user);
  if (problem) throw new UsageError(`invalid user name: ${problem.replace(/^ID/, 'user')}`);
  const path = keychainPath(ctx, opts.keychain);
  const cost = parseCost(opts.cost);
  const password = await readSecret(ctx, {
    what: 'password',
    stdin: opts.passwordStdin ? 'always' : 'never',
    prompt: `New password for ${user}:`,
    confirm: true,
    howTo: 'pipe it with --password-stdin',
  });
  checkSecret(password, 'password');
  const hash = await hashSecret(password, cost);
  const created = await updateKeychain(path, (keychain) => {
    const entry = findEntry(keychain, user);
    if (entry) entry.hash = hash;
    else appendEntries(keychain, [{ id: user, hash }]);
    return !entry;
  });
  say(ctx, `${created ? 'Added' : 'Updated'} user ${user} in ${path}.`);
}
