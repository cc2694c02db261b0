/** Reading and writing keychain files: strict parse on read, locked atomic update on write. */
import { isAbsolute, resolve } from 'node:path';
import type { Ctx } from '../io/context.js';
import { readRegularFileOrNull, updateFile } from '../io/files.js';
import { decodeText, entries, parseKeychain, removeEntriesFromText, serializeKeychain, sortIds, type Keychain } from './format.js';
import { findId, idLines, readPlainKeychain, withoutEntries } from './plain.js';

export const DEFAULT_KEYCHAIN = '.wave-keychain';

/** The keychain path from `--keychain`, else $KEYSMITH_KEYCHAIN, else .wave-keychain here. */
export function keychainPath(ctx: Ctx, flag: string | undefined): string {
  const path = flag || ctx.env.KEYSMITH_KEYCHAIN || DEFAULT_KEYCHAIN;
  return isAbsolute(path) ? path : resolve(ctx.cwd, path);
}

function parse(bytes: Buffer | null, path: string): Keychain {
  return bytes === null ? { lines: [] } : parseKeychain(decodeText(bytes, path), path);
}

/** Load a keychain; a missing file is an empty keychain, a FIFO or a device an error. */
export async function loadKeychain(path: string): Promise<{ keychain: Keychain; exists: boolean }> {
  const bytes = await readRegularFileOrNull(path, 'keychain');
  return { keychain: parse(bytes, path), exists: bytes !== null };
}

/**
 * The IDs of a keychain in byte order, one per line, as bytes to print. A keychain of plain bcrypt
 * lines (what waved and keysmith write) is listed from its bytes; any other goes through the parser.
 */
export async function listIds(path: string): Promise<Uint8Array | string> {
  const bytes = await readRegularFileOrNull(path, 'keychain');
  if (bytes === null) return '';
  const plain = readPlainKeychain(bytes);
  if (plain) return idLines(plain.k, plain.order);
  // IDs are unique (the parser rejects duplicates).
  const ids = sortIds(entries(parse(bytes, path)).map((e) => e.id));
  return ids.length > 0 ? ids.join('\n') + '\n' : '';
}

/**
 * Change a keychain under its lock. `change` edits the parsed keychain in place and returns a
 * result; if it throws, the file is left untouched. Created files get mode 0600.
 */
export async function updateKeychain<T>(path: string, change: (keychain: Keychain) => T | Promise<T>): Promise<T> {
  return updateFile(
    path,
    async (bytes) => {
      const keychain = parse(bytes, path);
      const result = await change(keychain);
      return { content: serializeKeychain(keychain), result };
    },
    { what: 'keychain' },
  );
}

/**
 * Remove entries under the keychain's lock, in one write; if any ID is not there, nothing is
 * written. Returns the missing IDs and how many entries the keychain has (left).
 */
export async function removeFromKeychain(path: string, ids: string[]): Promise<{ missing: string[]; remaining: number }> {
  return updateFile(
    path,
    (bytes) => {
      if (bytes === null) return { result: { missing: [...new Set(ids)], remaining: 0 } };
      const plain = readPlainKeychain(bytes);
      if (plain) {
        const { k, order } = plain;
        const wanted = [...new Set(ids)];
        const found = wanted.map((id) => findId(k, order, id));
        const missing = wanted.filter((_, j) => found[j] === -1);
        if (missing.length > 0) return { result: { missing, remaining: k.count } };
        return { content: withoutEntries(k, found), result: { missing, remaining: k.count - wanted.length } };
      }
      const text = decodeText(bytes, path);
      const { missing, text: content, remaining } = removeEntriesFromText(text, parseKeychain(text, path), ids);
      return { content, result: { missing, remaining } };
    },
    { what: 'keychain' },
  );
}
