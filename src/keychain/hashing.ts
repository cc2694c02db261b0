/**
 * Password hashing and verification. keysmith writes bcrypt only; it verifies bcrypt
 * ($2a$/$2b$/$2y$), Apache $apr1$ MD5 and {SHA} so old htpasswd files can be checked.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../io/errors.js';
import { classifyHash, type Algorithm } from './format.js';

export const DEFAULT_COST = 10;
export const MIN_COST = 4;
export const MAX_COST = 31;
/** bcrypt only uses the first 72 bytes of a secret; longer ones are refused, not truncated. */
export const MAX_SECRET_BYTES = 72;

type Bcrypt = typeof import('bcrypt');
let bcryptModule: Promise<Bcrypt> | undefined;
/** The native bcrypt binding loads lazily: list and remove never need it. */
function bcrypt(): Promise<Bcrypt> {
  bcryptModule ??= import('bcrypt').then((m) => ((m as { default?: Bcrypt }).default ?? m) as Bcrypt);
  return bcryptModule;
}

export function parseCost(value: string | number | undefined): number {
  if (value === undefined) return DEFAULT_COST;
  const cost = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(cost) || cost < MIN_COST || cost > MAX_COST || (typeof value === 'string' && !/^\d+$/.test(value))) {
    throw new UsageError(`--cost must be a whole number from ${MIN_COST} to ${MAX_COST}, got ${JSON.stringify(String(value))}`);
  }
  return cost;
}

/** Refuse secrets bcrypt would silently truncate, and empty ones. */
export function checkSecret(secret: string, what = 'secret'): void {
  if (secret.length === 0) throw new UsageError(`the ${what} is empty`);
  const bytes = Buffer.byteLength(secret, 'utf8');
  if (bytes > MAX_SECRET_BYTES) {
    throw new UsageError(`the ${what} is ${bytes} bytes long; bcrypt uses only the first ${MAX_SECRET_BYTES}, so it is refused rather than silently truncated`);
  }
}

export async function hashSecret(secret: string, cost: number): Promise<string> {
  checkSecret(secret);
  return (await bcrypt()).hash(secret, cost);
}

/**
 * A bcrypt hash that matches no secret, with the given cost: comparing against it takes as long
 * as comparing against a real entry, so unknown IDs cannot be told apart by timing.
 */
export function dummyHash(cost: number): string {
  return `$2b$${String(cost).padStart(2, '0')}$` + 'keysmithdummysaltkeysmi'.slice(0, 22) + 'A'.repeat(31);
}

/** Check `secret` against `hash`. Returns false for a mismatch; throws for hashes it cannot check. */
export async function verifySecret(secret: string, hash: string): Promise<boolean> {
  const info = classifyHash(hash);
  const algorithm: Algorithm | undefined = typeof info === 'string' ? undefined : info.algorithm;
  switch (algorithm) {
    case 'bcrypt':
      // $2y$ (PHP/Apache) and $2a$ (Go/waved) are the same algorithm as $2b$ for secrets of at
      // most 72 bytes, which is all we accept.
      return (await bcrypt()).compare(secret, '$2b$' + hash.slice(4));
    case 'apr1':
      return constantTimeEquals(apr1(secret, hash.split('$')[2]!), hash);
    case 'sha1':
      return constantTimeEquals('{SHA}' + createHash('sha1').update(secret, 'utf8').digest('base64'), hash);
    default:
      throw new UsageError(`cannot verify a ${algorithm ?? 'malformed'} hash; keysmith verifies bcrypt, $apr1$ and {SHA}`);
  }
}

function constantTimeEquals(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function to64(value: number, count: number): string {
  let s = '';
  for (let i = 0; i < count; i++) {
    s += CRYPT64[value & 0x3f];
    value >>>= 6;
  }
  return s;
}

/** Apache's MD5-crypt variant ($apr1$), as specified by APR's apr_md5_encode. */
export function apr1(password: string, salt: string): string {
  const pw = Buffer.from(password, 'utf8');
  const magic = '$apr1$';
  salt = salt.slice(0, 8);
  const md5 = () => createHash('md5');
  let final = md5().update(pw).update(salt).update(pw).digest();
  const ctx = md5().update(pw).update(magic).update(salt);
  for (let len = pw.length; len > 0; len -= 16) ctx.update(final.subarray(0, Math.min(16, len)));
  for (let i = pw.length; i; i >>= 1) ctx.update(i & 1 ? Buffer.from([0]) : pw.subarray(0, 1));
  final = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    const round = md5();
    round.update(i & 1 ? pw : final);
    if (i % 3) round.update(salt);
    if (i % 7) round.update(pw);
    round.update(i & 1 ? final : pw);
    final = round.digest();
  }
  const f = final;
  const encoded =
    to64((f[0]! << 16) | (f[6]! << 8) | f[12]!, 4) +
    to64((f[1]! << 16) | (f[7]! << 8) | f[13]!, 4) +
    to64((f[2]! << 16) | (f[8]! << 8) | f[14]!, 4) +
    to64((f[3]! << 16) | (f[9]! << 8) | f[15]!, 4) +
    to64((f[4]! << 16) | (f[10]! << 8) | f[5]!, 4) +
    to64(f[11]!, 2);
  return `${magic}${salt}$${encoded}`;
}
