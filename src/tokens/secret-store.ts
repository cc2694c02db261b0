/**
 * Where a session's long-lived secrets live: the OS keyring when one answers, else the 0600
 * session file, as before keyrings. Behind readSession/writeSession/deleteSession (store.ts); no
 * other code needs to know.
 *
 * Long-lived: the refresh token, an OAuth client secret, and a static dialect's credential (the
 * API key, or base64 of user:password, kept in `accessToken`). A short-lived access token stays in
 * the file, so the cached `token` path reads one file and never asks the keyring.
 *
 * The session file of a keyring profile holds everything else plus a marker naming the entries,
 * never their values:
 *
 *   "keyring": {"service": "keysmith", "account": "NAME", "fields": ["refreshToken"]}
 *
 * one entry per field: service `keysmith`, account `NAME/refresh-token`, `NAME/client-secret` or
 * `NAME/credential` (profile names have no slash).
 *
 * Rules: a login without --storage takes the keyring when one answers, else the file (a note the
 * first time no keyring answers; a warning each time one is there but locked or refusing). A
 * profile whose session is in the keyring stays there: when the keyring cannot be used later,
 * reading or writing its secrets fails with one line, never a silent move to a file.
 */
import { join } from 'node:path';
import { say, type Ctx } from '../io/context.js';
import { warn } from '../io/escape.js';
import { FormatError, KeysmithError, UsageError } from '../io/errors.js';
import { isDialectName, isStatic, type DialectName } from './dialects/index.js';
import { KEYRING_SERVICE, KeyringError, keyringOps, type KeyringOp } from './keyring.js';
import type { Session } from './store.js';

/** Where a profile's secrets are. */
export type Storage = 'keyring' | 'file';

/** Where to put them: `auto` is the keyring when one answers, else the file. */
export type StorageChoice = Storage | 'auto';

/** Session fields that are long-lived secrets. */
export type SecretField = 'accessToken' | 'refreshToken' | 'clientSecret';

const SECRET_FIELDS: readonly SecretField[] = ['accessToken', 'refreshToken', 'clientSecret'];

/** The keyring account of each field is `NAME/<this>`. */
const ENTRY_NAMES: Record<SecretField, string> = { accessToken: 'credential', refreshToken: 'refresh-token', clientSecret: 'client-secret' };

const WHAT: Record<SecretField, string> = { accessToken: 'credential', refreshToken: 'refresh token', clientSecret: 'client secret' };

/** What a keyring profile's session file says in place of its secrets. */
export interface KeyringMarker {
  service: string;
  account: string;
  fields: SecretField[];
}

/** A session file as stored: the session less the fields in the keyring, plus the marker. */
export type StoredSession = Partial<Session> & { keyring?: KeyringMarker };

export interface WriteSessionOptions {
  /**
   * Where the secrets go: `keyring` (fail when it cannot be used), `file`, or `auto`. Without it
   * (a refresh), they stay where they are, and a new session takes `auto`.
   */
  storage?: StorageChoice;
  /** The profile's dialect: a static dialect's credential is a long-lived secret too. */
  dialect?: DialectName;
}

/** `all`: every secret; `use`: what using the session needs, not the refresh token or client secret. */
export type SecretsNeeded = 'all' | 'use';

/** Token types of the static dialects (src/tokens/dialect.ts): their accessToken is the credential. */
const STATIC_TOKEN_TYPES = new Set(['apikey', 'basic', 'digest', 'wave']);

export function entryAccount(account: string, field: SecretField): string {
  return `${account}/${ENTRY_NAMES[field]}`;
}

/**
 * Sessions read without their refresh token or client secret: writing one back would lose them
 * from the keyring, so writeSession refuses (a programming error, not a user's).
 */
const partial = new WeakSet<object>();

/** Values this process read from or wrote to the keyring, so an unchanged secret is not written again. */
const known = new Map<string, string>();

function knownKey(service: string, account: string): string {
  return `${service}\u0000${account}`;
}

/** The marker of a session file, checked: the file is the user's, and may have been edited. */
export function markerOf(stored: StoredSession, path: string): KeyringMarker | undefined {
  const marker = stored.keyring as unknown;
  if (marker === undefined) return undefined;
  const m = marker as Partial<KeyringMarker> | null;
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.service !== 'string' ||
    typeof m.account !== 'string' ||
    m.service === '' ||
    m.account === '' ||
    !Array.isArray(m.fields) ||
    !m.fields.every((f) => (SECRET_FIELDS as readonly unknown[]).includes(f))
  ) {
    throw new FormatError(path, undefined, 'the "keyring" entry is damaged; log in again');
  }
  return { service: m.service, account: m.account, fields: [...new Set(m.fields)] };
}

function keptThere(err: unknown, name: string, action: string): unknown {
  if (!(err instanceof KeyringError)) return err;
  const hint =
    err.kind === 'absent'
      ? `run it where the keyring answers (a desktop session), or log in again with --storage file: keysmith login --profile ${name} --storage file`
      : err.kind === 'locked' || err.kind === 'timeout'
        ? `unlock the keyring (e.g. secret-tool search --unlock service ${KEYRING_SERVICE}) and try again`
        : `check the keyring, or log in again with --storage file: keysmith login --profile ${name} --storage file`;
  return new KeysmithError(`${err.message}: cannot ${action} of profile ${name}, which is kept there (never moved to a file without --storage file)`, 1, hint);
}

/**
 * The session of a keyring profile, with the secrets `needed` read from the keyring. `use`
 * reads nothing for token dialects (their access token is in the file): the cached path.
 */
export async function loadSecrets(ctx: Ctx, name: string, stored: StoredSession, path: string, needed: SecretsNeeded): Promise<Session> {
  const marker = markerOf(stored, path)!;
  const session: Partial<Session> & { keyring?: unknown } = { ...stored };
  delete session.keyring;
  const wanted = marker.fields.filter((f) => needed === 'all' || f === 'accessToken');
  if (wanted.length > 0) {
    let values;
    try {
      values = await keyringOps(
        ctx,
        wanted.map((f) => ({ op: 'get', account: entryAccount(marker.account, f) })),
        marker.service,
      );
    } catch (err) {
      throw keptThere(err, name, `read the ${wanted.map((f) => WHAT[f]).join(' and ')}`);
    }
    wanted.forEach((field, i) => {
      const value = values[i];
      if (typeof value !== 'string') return;
      session[field] = value;
      known.set(knownKey(marker.service, entryAccount(marker.account, field)), value);
    });
  }
  if (typeof session.accessToken !== 'string') {
    if (marker.fields.includes('accessToken')) {
      throw new KeysmithError(`the credential of profile ${name} is missing from the OS keyring`, 1, `log in again: keysmith login --profile ${name}`);
    }
    throw new FormatError(path, undefined, 'no access token in session file; log in again');
  }
  if (needed !== 'all' && marker.fields.some((f) => !wanted.includes(f))) partial.add(session);
  return session as Session;
}

function isStaticCredential(session: Session, options: WriteSessionOptions, before: KeyringMarker | undefined): boolean {
  if (options.dialect !== undefined) return isDialectName(options.dialect) && isStatic(options.dialect);
  if (before) return before.fields.includes('accessToken');
  return STATIC_TOKEN_TYPES.has(session.tokenType) && session.expiresAt === undefined && session.refreshToken === undefined;
}

/**
 * Put a session's secrets where they belong and return what the session file gets. `previous` is
 * the file as it is now (null when there is none); the caller holds the session lock.
 */
export async function storeSecrets(
  ctx: Ctx,
  name: string,
  session: Session,
  previous: StoredSession | null,
  path: string,
  options: WriteSessionOptions,
): Promise<{ content: StoredSession; storage: Storage }> {
  if (partial.has(session)) throw new Error(`internal: the session of ${name} was read without its keyring secrets and cannot be written back`);
  const choice = options.storage;
  if (choice !== undefined && choice !== 'keyring' && choice !== 'file' && choice !== 'auto') {
    throw new UsageError(`--storage must be keyring or file, got ${JSON.stringify(choice)}`);
  }
  let before: KeyringMarker | undefined;
  try {
    before = previous ? markerOf(previous, path) : undefined;
  } catch {
    before = undefined; // a damaged file is being replaced
  }
  const plain: StoredSession = { ...session };
  delete plain.keyring;
  // Without a choice (a refresh), the secrets stay where they are; a profile in the keyring stays there.
  const wanted: StorageChoice = choice === 'file' ? 'file' : before ? 'keyring' : (choice ?? (previous ? 'file' : 'auto'));
  if (wanted === 'file') {
    if (before) await forget(ctx, name, before, 'warn');
    return { content: plain, storage: 'file' };
  }
  const fields = SECRET_FIELDS.filter((f) => (f === 'accessToken' ? isStaticCredential(session, options, before) : typeof session[f] === 'string' && session[f] !== ''));
  // Nothing long-lived to keep (a session without a refresh token): the keyring is not asked.
  if (fields.length === 0 && !before && wanted === 'auto') return { content: plain, storage: 'file' };
  const marker: KeyringMarker = { service: KEYRING_SERVICE, account: name, fields };
  const ops: KeyringOp[] = [];
  for (const field of fields) {
    const account = entryAccount(name, field);
    const value = session[field] as string;
    if (known.get(knownKey(KEYRING_SERVICE, account)) !== value || !before?.fields.includes(field)) ops.push({ op: 'set', account, value });
  }
  const stale = before && before.service === KEYRING_SERVICE && before.account === name ? before.fields.filter((f) => !fields.includes(f)) : [];
  for (const field of stale) ops.push({ op: 'delete', account: entryAccount(name, field) });
  // --storage keyring with nothing to write yet: still make sure a keyring answers.
  if (ops.length === 0 && !before) ops.push({ op: 'get', account: entryAccount(name, 'refreshToken') });
  try {
    await keyringOps(ctx, ops);
  } catch (err) {
    if (!(err instanceof KeyringError) || wanted === 'keyring') {
      throw before
        ? keptThere(err, name, 'save the credentials')
        : err instanceof KeyringError
          ? new KeysmithError(`${err.message}: nothing was saved (--storage keyring)`, 1, 'unlock or start the keyring, or log in with --storage file')
          : err;
    }
    await fellBack(ctx, name, err);
    return { content: plain, storage: 'file' };
  }
  for (const op of ops) if (op.op === 'set') known.set(knownKey(KEYRING_SERVICE, op.account), op.value);
  // Entries of a marker that named another service or account (an edited file): remove them too.
  if (before && (before.service !== KEYRING_SERVICE || before.account !== name)) await forget(ctx, name, before, 'warn');
  const content: StoredSession = { ...plain, keyring: marker };
  for (const field of fields) delete content[field];
  return { content, storage: 'keyring' };
}

/** Remove a profile's keyring entries: `throw` when they cannot be (logout), `warn` when a move to a file leaves them. */
export async function forget(ctx: Ctx, name: string, marker: KeyringMarker, onFailure: 'throw' | 'warn'): Promise<void> {
  const ops: KeyringOp[] = marker.fields.map((f) => ({ op: 'delete', account: entryAccount(marker.account, f) }));
  try {
    await keyringOps(ctx, ops, marker.service);
  } catch (err) {
    if (onFailure === 'throw') throw keptThere(err, name, 'remove the credentials');
    warn(ctx, `could not remove the keyring entries of profile ${name}: ${(err as Error).message}`);
    return;
  }
  for (const op of ops) known.delete(knownKey(marker.service, op.account));
}

/** A login allowed to fall back: say why, once when no keyring exists, each time when one refused. */
async function fellBack(ctx: Ctx, name: string, err: KeyringError): Promise<void> {
  if (err.kind !== 'absent') {
    warn(ctx, `${err.message}; keeping the credentials of profile ${name} in its 0600 session file (--storage keyring requires the keyring)`);
    return;
  }
  const { stateDir } = await import('./store.js');
  const { ensureDir, readFileOrNull, writeFileAtomic, FILE_MODE } = await import('../io/files.js');
  const flag = join(stateDir(ctx), 'keyring-absent-noted');
  if (await readFileOrNull(flag).catch(() => null)) return;
  say(ctx, `note: ${err.message}; refresh tokens and credentials stay in 0600 files under ${stateDir(ctx)} (said once)`);
  try {
    await ensureDir(stateDir(ctx));
    await writeFileAtomic(flag, '', FILE_MODE);
  } catch {
    // Saying it again next time is no harm.
  }
}
