/**
 * Where keychains live. A keychain location is a file path (strict parse on read, locked atomic
 * update on write) or, for the stores in KEYCHAIN_STORES, a URL such as `etcd://HOST:PORT/PREFIX`.
 * Commands open a KeychainStore and never see which kind it is; the etcd code (and its client
 * library) is only loaded when a location names it, so file keychains start as fast as before.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { readRegularFileOrNull, updateFile } from '../io/files.js';
import type { HashedAccessKey } from './access-keys.js';
import type { EtcdCliOptions } from './etcd.js';
import {
  appendEntries, decodeText, entries, findEntry, insertEntriesAfter, parseKeychain, removeEntries, removeEntriesFromText,
  serializeKeychain, sortIds, type Keychain,
} from './format.js';
import { findId, idLines, readPlainKeychain, withoutEntries } from './plain.js';

export const DEFAULT_KEYCHAIN = '.wave-keychain';

/**
 * A keychain, wherever it is kept. Every change is all-or-nothing: it happens completely, or the
 * keychain is left as it was (a file: one locked atomic write; etcd: one transaction).
 */
export interface KeychainStore {
  /** The keychain as messages name it: a file path, or an etcd location. */
  readonly name: string;
  /** IDs in byte order, one per line, as text or bytes to print. */
  listIds(): Promise<Uint8Array | string>;
  /** Every entry; `exists` is false for a keychain file that is not there (an empty keychain). */
  load(): Promise<{ keychain: Keychain; exists: boolean }>;
  /** Whether `id` is there now (a quick check before slow hashing; changes check again). */
  has(id: string): Promise<boolean>;
  /** Add new keys; a key whose ID is already taken gets a new ID first (`keys` is updated). */
  addKeys(keys: HashedAccessKey[]): Promise<void>;
  /** Remove entries; if any ID is not there, nothing is removed. `remaining`: entries left. */
  remove(ids: string[]): Promise<{ missing: string[]; remaining: number }>;
  /**
   * Put `keys` in the place of `id` (next to it with keepOld), in one change; `notFound()` is thrown
   * when `id` is not there. Taken IDs are avoided as in addKeys.
   */
  replace(id: string, keys: HashedAccessKey[], keepOld: boolean, notFound: () => Error): Promise<void>;
  /**
   * Set the hash of `id`, adding the entry when missing; true when it was added. `access`: the
   * mode and group a keychain file gets (set-password --mode/--group; other stores refuse them).
   */
  setHash(id: string, hash: string, access?: FileAccess): Promise<boolean>;
  /** Let go of connections (etcd); a file store has none. */
  close(): Promise<void>;
}

/** The mode and group a keychain file is written with, when the user asks for them. */
export interface FileAccess {
  mode?: number;
  group?: number;
}

/** What every keychain command takes to find its keychain. */
export interface KeychainOptions extends EtcdCliOptions {
  keychain?: string;
}

/**
 * The kinds of keychain keysmith knows, declared once: a location that starts with one of a
 * store's `schemes` (`etcd://`) belongs to it; any other location is a file path.
 */
export const KEYCHAIN_STORES = [
  {
    kind: 'etcd',
    schemes: ['etcd', 'etcds'],
    open: async (location: string, ctx: Ctx, opts: KeychainOptions): Promise<KeychainStore> =>
      (await import('./etcd-store.js')).openEtcdKeychain(location, ctx, opts),
  },
] as const;

export type KeychainKind = (typeof KEYCHAIN_STORES)[number]['kind'] | 'file';

/** A location's kind: the store whose scheme it starts with, else a file. Unknown `scheme://` is a UsageError. */
export function keychainKind(location: string): KeychainKind {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(location)?.[1];
  if (scheme === undefined) return 'file';
  const store = KEYCHAIN_STORES.find((s) => (s.schemes as readonly string[]).includes(scheme.toLowerCase()));
  if (store) return store.kind;
  const known = KEYCHAIN_STORES.flatMap((s) => s.schemes.map((x) => `${x}://`)).join(', ');
  throw new UsageError(`unknown keychain location ${JSON.stringify(scheme + '://...')}: expected a file path or ${known}`,
    `a file whose name starts with "${scheme}://" can be given as ./${location}`);
}

/** The keychain location from `--keychain`, else $KEYSMITH_KEYCHAIN, else .wave-keychain here (not resolved). */
export function keychainLocation(ctx: Ctx, flag: string | undefined): string {
  return flag || ctx.env.KEYSMITH_KEYCHAIN || DEFAULT_KEYCHAIN;
}

/** The keychain path from `--keychain`, else $KEYSMITH_KEYCHAIN, else .wave-keychain here. */
export function keychainPath(ctx: Ctx, flag: string | undefined): string {
  const path = keychainLocation(ctx, flag);
  return isAbsolute(path) ? path : resolve(ctx.cwd, path);
}

/** Flags that only mean something for one kind of store, as they are written on the command line. */
const ETCD_FLAGS: Array<[keyof EtcdCliOptions, string]> = [
  ['timeout', '--timeout'], ['etcdCacert', '--etcd-cacert'], ['etcdCert', '--etcd-cert'], ['etcdKey', '--etcd-key'],
  ['etcdUser', '--etcd-user'], ['etcdPasswordStdin', '--etcd-password-stdin'],
];

/** Open the keychain the options name (file or etcd). Close it when done: `withKeychain` does. */
export async function openKeychain(ctx: Ctx, opts: KeychainOptions): Promise<KeychainStore> {
  const location = keychainLocation(ctx, opts.keychain);
  const kind = keychainKind(location);
  const store = KEYCHAIN_STORES.find((s) => s.kind === kind);
  if (store) return store.open(location, ctx, opts);
  const flag = ETCD_FLAGS.find(([key]) => opts[key] !== undefined && opts[key] !== false);
  if (flag) throw new UsageError(`${flag[1]} is for keychains on etcd (-k etcd://HOST:PORT/PREFIX), not files`);
  return new FileKeychain(isAbsolute(location) ? location : resolve(ctx.cwd, location));
}

/** Open the keychain, run `fn` with it, and close it (also when `fn` throws). */
export async function withKeychain<T>(ctx: Ctx, opts: KeychainOptions, fn: (store: KeychainStore) => Promise<T>): Promise<T> {
  const store = await openKeychain(ctx, opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A keychain file: every change is updateFile's locked, atomic read-modify-write of its bytes. */
export class FileKeychain implements KeychainStore {
  constructor(readonly name: string) {}

  listIds(): Promise<Uint8Array | string> {
    return listIds(this.name);
  }

  load(): Promise<{ keychain: Keychain; exists: boolean }> {
    return loadKeychain(this.name);
  }

  async has(id: string): Promise<boolean> {
    return findEntry((await loadKeychain(this.name)).keychain, id) !== undefined;
  }

  async addKeys(keys: HashedAccessKey[]): Promise<void> {
    // Not imported at the top: access-keys loads node:crypto, which listing does not need.
    const { avoidTakenIds } = await import('./access-keys.js');
    await updateKeychain(this.name, (keychain) => {
      avoidTakenIds(keys, new Set(entries(keychain).map((e) => e.id)));
      appendEntries(keychain, keys);
    });
  }

  remove(ids: string[]): Promise<{ missing: string[]; remaining: number }> {
    return removeFromKeychain(this.name, ids);
  }

  async replace(id: string, keys: HashedAccessKey[], keepOld: boolean, notFound: () => Error): Promise<void> {
    const { avoidTakenIds } = await import('./access-keys.js');
    await updateKeychain(this.name, (keychain) => {
      if (!findEntry(keychain, id)) throw notFound();
      avoidTakenIds(keys, new Set(entries(keychain).map((e) => e.id)));
      insertEntriesAfter(keychain, id, keys);
      if (!keepOld) removeEntries(keychain, [id]);
    });
  }

  setHash(id: string, hash: string, access: FileAccess = {}): Promise<boolean> {
    return updateKeychain(this.name, (keychain) => {
      const entry = findEntry(keychain, id);
      if (entry) entry.hash = hash;
      else appendEntries(keychain, [{ id, hash }]);
      return !entry;
    }, access);
  }

  async close(): Promise<void> {}
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
 * result; if it throws, the file is left untouched. Created files get mode 0600, unless `access`
 * (set-password --mode/--group) says otherwise; it applies to an existing file too.
 */
export async function updateKeychain<T>(path: string, change: (keychain: Keychain) => T | Promise<T>, access: { mode?: number; group?: number } = {}): Promise<T> {
  return updateFile(
    path,
    async (bytes) => {
      const keychain = parse(bytes, path);
      const result = await change(keychain);
      return { content: serializeKeychain(keychain), result };
    },
    { what: 'keychain', ...access },
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
