import { randomBytes } from 'node:crypto';

export const UPPER_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * `length` characters drawn uniformly from `alphabet` with a CSPRNG. Bytes at or above the
 * largest multiple of the alphabet size are rejected, so there is no modulo bias.
 */
export function randomString(alphabet: string, length: number): string {
  const n = alphabet.length;
  if (n < 2 || n > 256) throw new RangeError('alphabet must have 2..256 characters');
  const limit = 256 - (256 % n);
  let result = '';
  while (result.length < length) {
    // Ask for a little more than needed: with rejection, a few bytes are thrown away.
    const bytes = randomBytes(Math.ceil((length - result.length) * 1.3) + 8);
    for (let i = 0; i < bytes.length && result.length < length; i++) {
      const b = bytes[i]!;
      if (b < limit) result += alphabet[b % n];
    }
  }
  return result;
}
