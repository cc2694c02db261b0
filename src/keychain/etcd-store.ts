/**
 * The keychain store on etcd (see etcd.ts for locations and connections). Every change is one
 * etcd transaction that compares what it depends on and then writes:
 *
 * - add: each new key's create_revision is 0 (the ID is free), then put each; a taken ID gets a
 *   new ID and the transaction is tried again;
 * - remove: every ID's version is > 0 (all are there), then delete them all; else nothing;
 * - replace (rotate): the old key's mod_revision is the one read and the new ID is free, then
 *   delete the old key (unless keepOld) and put the new one;
 * - setHash (set-password): the key's mod_revision is the one read (0: still missing), then put.
 *
 * An answer lost on the way (a leader change, an endpoint dying, a deadline) leaves it open
 * whether a write happened, so calls are retried on another endpoint until the timeout; the
 * retried transaction finds its own earlier write by the value (a bcrypt hash has a random salt,
 * so no one else writes the same one) and reports success instead of writing again.
 */
import type { Etcd3, ICompare, IKeyValue, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import type { Ctx } from '../io/context.js';
import { KeysmithError } from '../io/errors.js';
import { avoidTakenIds, type HashedAccessKey } from './access-keys.js';
import {
  checkHash, connectEtcd, entryKey, etcdConnectOptions, etcdError, idOfKeyValue, keychainRange, loadEtcd3, parseEtcdLocation,
  readEntries, readKeyValues, timeoutMs, type EtcdConnectOptions, type EtcdLocation,
} from './etcd.js';
import type { Keychain } from './format.js';
import type { KeychainOptions, KeychainStore } from './store.js';

export async function openEtcdKeychain(text: string, ctx: Ctx, opts: KeychainOptions): Promise<KeychainStore> {
  const location = parseEtcdLocation(text);
  const options = await etcdConnectOptions(ctx, opts, location);
  const client = await connectEtcd(location, options);
  const { isRecoverableError } = await loadEtcd3();
  return new EtcdKeychain(location, options, client, isRecoverableError);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class EtcdKeychain implements KeychainStore {
  readonly name: string;
  private readonly prefixBytes: number;

  constructor(
    readonly location: EtcdLocation,
    private readonly options: EtcdConnectOptions,
    readonly client: Etcd3,
    private readonly isRecoverable: (err: Error) => boolean,
  ) {
    this.name = location.display;
    this.prefixBytes = Buffer.byteLength(location.prefix) + 1;
  }

  private key(id: string): Buffer {
    return Buffer.from(entryKey(this.location, id));
  }

  /** Errors worth another try (on another endpoint): no answer, no leader, leader changed. */
  private transient(err: unknown): boolean {
    if (!(err instanceof Error) || err instanceof KeysmithError) return false;
    if (this.isRecoverable(err)) return true;
    return err.constructor.name === 'BrokenCircuitError' || /leader changed|no leader|request timed out|Unavailable|ECONNRESET/i.test(err.message);
  }

  /**
   * Run `attempt` until it returns, retrying transient failures until the timeout. `attempt`
   * gets the deadline for its calls and whether an earlier try may have written already.
   */
  private async retry<T>(attempt: (deadline: number, retried: boolean) => Promise<T>): Promise<T> {
    const deadline = Date.now() + timeoutMs(this.options);
    let retried = false;
    // What went wrong on a connection: later tries may only say that its circuit breaker is open.
    let cause: unknown;
    for (let n = 0; ; n++) {
      try {
        return await attempt(deadline, retried);
      } catch (err) {
        if (!(err instanceof Error && err.constructor.name === 'BrokenCircuitError')) cause = err;
        if (!this.transient(err) || Date.now() + 50 >= deadline) throw etcdError(cause ?? err, this.location, this.options);
        retried = true;
        await sleep(Math.min(25 * 2 ** n, 500) * (0.5 + Math.random()));
      }
    }
  }

  private txn(request: ITxnRequest, deadline: number): Promise<ITxnResponse> {
    return this.client.kv.txn(request, { deadline });
  }

  private rangeOp(key: Buffer, countOnly = false): IRequestOp {
    return { request_range: { key, ...(countOnly && { count_only: true }) } };
  }

  /** The key-value a range op in a transaction's answer found, if any. */
  private static found(response: ITxnResponse, index: number): IKeyValue | undefined {
    return response.responses[index]?.response_range?.kvs[0];
  }

  async listIds(): Promise<Uint8Array | string> {
    const { kvs } = await this.retry(() => readKeyValues(this.client, this.location));
    let size = 0;
    for (const kv of kvs) size += kv.key.length - this.prefixBytes + 1;
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (const kv of kvs) {
      const id = idOfKeyValue(this.location, this.prefixBytes, kv.key);
      checkHash(this.location, id, kv.value.toString());
      o += kv.key.copy(out, o, this.prefixBytes);
      out[o++] = 10;
    }
    return out;
  }

  async load(): Promise<{ keychain: Keychain; exists: boolean }> {
    const { entries } = await this.retry(() => readEntries(this.client, this.location));
    return { keychain: { lines: entries.map(({ id, hash }) => ({ kind: 'entry', id, hash, eol: '\n' })) }, exists: true };
  }

  async has(id: string): Promise<boolean> {
    const response = await this.retry((deadline) => this.client.kv.range({ key: this.key(id), count_only: true }, { deadline }));
    return Number(response.count) > 0;
  }

  async addKeys(keys: HashedAccessKey[]): Promise<void> {
    await this.retry(async (deadline) => {
      for (;;) {
        const keyBuffers = keys.map((k) => this.key(k.id));
        const response = await this.txn({
          compare: keyBuffers.map((key): ICompare => ({ key, target: 'Create', result: 'Equal', create_revision: 0 })),
          success: keys.map((k, i) => ({ request_put: { key: keyBuffers[i], value: Buffer.from(k.hash) } })),
          failure: keyBuffers.map((key) => this.rangeOp(key)),
        }, deadline);
        if (response.succeeded) return;
        const taken = new Set<string>();
        let ours = false;
        keys.forEach((k, i) => {
          const kv = EtcdKeychain.found(response, i);
          if (!kv) return;
          if (kv.value.toString() === k.hash) ours = true;
          taken.add(k.id);
        });
        // The transaction is atomic: one of our keys there means an earlier try wrote them all.
        if (ours) return;
        avoidTakenIds(keys, taken);
      }
    });
  }

  async remove(ids: string[]): Promise<{ missing: string[]; remaining: number }> {
    const wanted = [...new Set(ids)];
    const { start, end } = keychainRange(this.location);
    return this.retry(async (deadline, retried) => {
      const keys = wanted.map((id) => this.key(id));
      const response = await this.txn({
        compare: keys.map((key): ICompare => ({ key, target: 'Version', result: 'Greater', version: 0 })),
        success: [{ request_range: { key: start, range_end: end, count_only: true } }, ...keys.map((key) => ({ request_delete_range: { key } }))],
        failure: [{ request_range: { key: start, range_end: end, count_only: true } }, ...keys.map((key) => this.rangeOp(key, true))],
      }, deadline);
      const count = Number(response.responses[0]?.response_range?.count ?? 0);
      if (response.succeeded) return { missing: [], remaining: count - wanted.length };
      const missing = wanted.filter((_, i) => Number(response.responses[i + 1]?.response_range?.count ?? 0) === 0);
      // All gone after a try whose answer was lost: that try removed them.
      if (retried && missing.length === wanted.length) return { missing: [], remaining: count };
      return { missing, remaining: count };
    });
  }

  async replace(id: string, keys: HashedAccessKey[], keepOld: boolean, notFound: () => Error): Promise<void> {
    const oldKey = this.key(id);
    await this.retry(async (deadline, retried) => {
      const current = await this.client.kv.range({ key: oldKey }, { deadline });
      let modRevision = current.kvs[0]?.mod_revision;
      if (modRevision === undefined) {
        // Gone: after a lost answer, perhaps because that try replaced it.
        if (retried && (await this.allOurs(keys, deadline))) return;
        throw notFound();
      }
      for (;;) {
        const newKeys = keys.map((k) => this.key(k.id));
        const response = await this.txn({
          compare: [
            { key: oldKey, target: 'Mod', result: 'Equal', mod_revision: modRevision },
            ...newKeys.map((key): ICompare => ({ key, target: 'Create', result: 'Equal', create_revision: 0 })),
          ],
          success: [
            ...(keepOld ? [] : [{ request_delete_range: { key: oldKey } }]),
            ...keys.map((k, i) => ({ request_put: { key: newKeys[i], value: Buffer.from(k.hash) } })),
          ],
          failure: [this.rangeOp(oldKey), ...newKeys.map((key) => this.rangeOp(key))],
        }, deadline);
        if (response.succeeded) return;
        const taken = new Set<string>();
        let ours = false;
        keys.forEach((k, i) => {
          const kv = EtcdKeychain.found(response, i + 1);
          if (!kv) return;
          if (kv.value.toString() === k.hash) ours = true;
          taken.add(k.id);
        });
        if (ours) return;
        const old = EtcdKeychain.found(response, 0);
        if (!old) throw notFound();
        // Changed meanwhile (set-password): it is still the key to replace.
        modRevision = old.mod_revision;
        avoidTakenIds(keys, taken);
      }
    });
  }

  /** Whether every one of `keys` is stored with its hash (a replace whose answer was lost). */
  private async allOurs(keys: HashedAccessKey[], deadline: number): Promise<boolean> {
    for (const k of keys) {
      const response = await this.client.kv.range({ key: this.key(k.id) }, { deadline });
      if (response.kvs[0]?.value.toString() !== k.hash) return false;
    }
    return true;
  }

  async setHash(id: string, hash: string): Promise<boolean> {
    const key = this.key(id);
    let wasMissing: boolean | undefined;
    return this.retry(async (deadline) => {
      const current = await this.client.kv.range({ key }, { deadline });
      let kv: IKeyValue | undefined = current.kvs[0];
      wasMissing ??= kv === undefined;
      for (;;) {
        if (kv?.value.toString() === hash) return wasMissing; // our own write, whose answer was lost
        const response = await this.txn({
          compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: kv?.mod_revision ?? 0 }],
          success: [{ request_put: { key, value: Buffer.from(hash) } }],
          failure: [this.rangeOp(key)],
        }, deadline);
        if (response.succeeded) return kv === undefined;
        // Someone else changed it since it was read: try again on what is there now.
        kv = EtcdKeychain.found(response, 0);
      }
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
