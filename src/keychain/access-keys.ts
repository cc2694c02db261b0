/** Access keys as waved makes them: 20-character IDs from A-Z0-9, 40-character secrets from A-Za-z0-9. */
import { out, outJson, say, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { ALNUM, UPPER_DIGITS, randomString } from '../secrets/random.js';
import { hashSecret } from './hashing.js';

export const ID_LENGTH = 20;
export const SECRET_LENGTH = 40;

export interface AccessKey {
  id: string;
  secret: string;
}

export interface HashedAccessKey extends AccessKey {
  hash: string;
}

function newId(): string {
  return randomString(UPPER_DIGITS, ID_LENGTH);
}

/** Make `count` new keys with distinct IDs, hashed in parallel (libuv's thread pool). */
export async function newAccessKeys(count: number, cost: number): Promise<HashedAccessKey[]> {
  const ids = new Set<string>();
  while (ids.size < count) ids.add(newId());
  return Promise.all(
    [...ids].map(async (id) => {
      const secret = randomString(ALNUM, SECRET_LENGTH);
      return { id, secret, hash: await hashSecret(secret, cost) };
    }),
  );
}

/**
 * Keys are made before the keychain is locked (hashing is slow); once it is, give any key whose ID
 * is already taken a new one. With 103 bits per ID this practically never happens, but an
 * existing entry must never be overwritten. The secret's hash does not depend on the ID.
 */
export function avoidTakenIds(keys: AccessKey[], taken: ReadonlySet<string>): void {
  const used = new Set(taken);
  for (const key of keys) {
    while (used.has(key.id)) key.id = newId();
    used.add(key.id);
  }
}

export function parseCount(value: string | undefined, max = 10_000): number {
  if (value === undefined) return 1;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) throw new UsageError(`--count must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * Print new keys: sourceable `H2O_WAVE_ACCESS_KEY_ID=` / `_SECRET=` lines on stdout (`export`ed
 * with --export, so that programs started after `eval` see them; one JSON object per key with
 * --json); the "copy it now" text and the keychain path go to stderr (`saved`: instead of
 * "Access key saved to KEYCHAIN.").
 */
export function printNewKeys(ctx: Ctx, keys: AccessKey[], keychain: string, json: boolean, { exportVars = false, saved }: { exportVars?: boolean; saved?: string } = {}): void {
  const prefix = exportVars ? 'export ' : '';
  for (const key of keys) {
    if (json) outJson(ctx, { id: key.id, secret: key.secret, keychain });
    else {
      out(ctx, `${prefix}H2O_WAVE_ACCESS_KEY_ID=${key.id}`);
      out(ctx, `${prefix}H2O_WAVE_ACCESS_KEY_SECRET=${key.secret}`);
    }
  }
  const n = keys.length;
  say(ctx, saved ?? `${n === 1 ? 'Access key' : `${n} access keys`} saved to ${keychain}.`);
  say(ctx, `Copy the secret${n === 1 ? ' now: it is stored only as a bcrypt hash' : 's now: they are stored only as bcrypt hashes'} and cannot be shown again.`);
}

/** --export sets one pair of variables: not with --json, nor for several keys. */
export function checkExport(opts: { export?: boolean; json?: boolean }, count: number): void {
  if (opts.export && opts.json) throw new UsageError('--export and --json do not go together');
  if (opts.export && count > 1) throw new UsageError('--export sets one pair of variables; for several keys use --json', 'keysmith create-access-key --count N --json');
}

/** waved accepts any client when its keychain is empty; say so whenever a write leaves none. */
export function warnIfEmpty(ctx: Ctx, remaining: number, keychain: string): void {
  if (remaining === 0) {
    say(ctx, `warning: ${keychain} now has no access keys; a Wave server started with it accepts the default key pair. Create one with: keysmith create-access-key`);
  }
}
