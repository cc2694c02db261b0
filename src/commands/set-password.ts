import { existsSync } from 'node:fs';
import { say, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { readSecret } from '../io/input.js';
import { commandLine } from '../io/words.js';
import { invalidNewIdReason } from '../keychain/format.js';
import { checkSecret, hashSecret, parseCost } from '../keychain/hashing.js';
import { keychainKind, keychainLocation, keychainPath, withKeychain, type FileAccess, type KeychainOptions } from '../keychain/store.js';

export interface SetPasswordOptions extends KeychainOptions {
  passwordStdin?: boolean;
  cost?: string;
  group?: string;
  mode?: string;
}

/** Add or update an htpasswd user with a bcrypt hash; other entries stay as they are. */
export async function run(user: string, opts: SetPasswordOptions, ctx: Ctx): Promise<void> {
  const problem = invalidNewIdReason(user);
  if (problem) throw new UsageError(`invalid user name: ${problem.replace(/^ID/, 'user')}`);
  const cost = parseCost(opts.cost);
  // An htpasswd user in the Wave keychain is never what was meant: name the file.
  if (!opts.keychain && !ctx.env.KEYSMITH_KEYCHAIN) {
    throw new UsageError('set-password needs the htpasswd file: -k FILE (or $KEYSMITH_KEYCHAIN)', commandLine(['set-password', '-k', '.htpasswd', user]));
  }
  const access = await fileAccess(ctx, opts);
  const file = access ? keychainPath(ctx, opts.keychain) : undefined;
  const existed = file !== undefined && existsSync(file);
  if (opts.passwordStdin && opts.etcdPasswordStdin) {
    throw new UsageError('--password-stdin and --etcd-password-stdin cannot both read standard input', 'give the etcd password in $KEYSMITH_ETCD_PASSWORD');
  }
  const { created, path } = await withKeychain(ctx, opts, async (store) => {
    const password = await readSecret(ctx, {
      what: 'password',
      stdin: opts.passwordStdin ? 'always' : 'never',
      prompt: `New password for ${user}:`,
      confirm: true,
      howTo: 'pipe it with --password-stdin',
    });
    checkSecret(password, 'password');
    const hash = await hashSecret(password, cost);
    return { created: await store.setHash(user, hash, access), path: store.name };
  });
  say(ctx, `${created ? 'Added' : 'Updated'} user ${user} in ${path}.`);
  if (file !== undefined && (!existed || opts.group !== undefined || opts.mode !== undefined)) {
    const { whoCanRead } = await import('../io/owners.js');
    const who = whoCanRead(file);
    const hint = access?.group === undefined && !existed ? " For a web server, give it the server's group with --group (nginx and Apache on Debian: www-data)." : '';
    if (who) say(ctx, existed ? `${file} is now ${who}.` : `Created ${file}: ${who}.${hint}`);
  }
}

/**
 * The mode and group the user asked a keychain file to get: --group alone makes it 0640 in that
 * group (a web server's workers read it as that group), --mode sets the mode; both change an
 * existing file too. Without either, both are undefined and the file keeps what it has (a new one
 * is 0600). Undefined for keychains that are not files.
 */
async function fileAccess(ctx: Ctx, opts: SetPasswordOptions): Promise<FileAccess | undefined> {
  const kind = keychainKind(keychainLocation(ctx, opts.keychain));
  if (kind !== 'file') {
    if (opts.group !== undefined || opts.mode !== undefined) throw new UsageError(`--group and --mode are for keychain files, not ${kind} keychains`);
    return undefined;
  }
  const { groupId, parseFileMode } = await import('../io/owners.js');
  const mode = parseFileMode(opts.mode);
  const group = opts.group === undefined ? undefined : groupId(opts.group);
  return { mode: mode ?? (group === undefined ? undefined : 0o640), group };
}
