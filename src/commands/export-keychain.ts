import { say, type Ctx } from '../io/context.js';
import { KeysmithError, NotFoundError, UsageError } from '../io/errors.js';
import { safeLine } from '../io/escape.js';
import { entries } from '../keychain/format.js';
import { DEFAULT_FILE_KEY, MAX_SECRET_BYTES, checkFileKey, checkNamespace, checkSecretName, secretManifest } from '../keychain/k8s-secret.js';
import { openKeychain, type KeychainOptions } from '../keychain/store.js';
import { keychainText } from '../keychain/sync.js';

export const FORMATS = ['k8s-secret'] as const;

export interface ExportKeychainOptions extends KeychainOptions {
  format?: string;
  name?: string;
  namespace?: string;
  fileKey?: string;
}

/**
 * Print the keychain (a file or etcd) as a Kubernetes `v1` Secret manifest for `kubectl apply -f -`:
 * its data holds the keychain as `sync` writes it (sorted `ID:HASH` lines), base64.
 */
export async function run(opts: ExportKeychainOptions, ctx: Ctx): Promise<void> {
  if (opts.format === undefined) throw new UsageError('--format is required', `the one format is ${FORMATS.join(', ')}`);
  if (!(FORMATS as readonly string[]).includes(opts.format)) {
    throw new UsageError(`--format must be ${FORMATS.join(' or ')}, got ${safeLine(JSON.stringify(opts.format), 100)}`);
  }
  if (opts.name === undefined) throw new UsageError('--name is required: the name of the Secret');
  checkSecretName(opts.name);
  if (opts.namespace !== undefined) checkNamespace(opts.namespace);
  const fileKey = opts.fileKey ?? DEFAULT_FILE_KEY;
  checkFileKey(fileKey);

  const store = await openKeychain(ctx, opts);
  let text: string;
  try {
    const { keychain, exists } = await store.load();
    if (!exists) throw new NotFoundError(`keychain ${safeLine(store.name)} does not exist`);
    text = keychainText(new Map(entries(keychain).map((e) => [e.id, e.hash])));
  } finally {
    await store.close();
  }
  // What Kubernetes counts: every data key and value (decoded) together.
  const bytes = Buffer.byteLength(text) + Buffer.byteLength(fileKey);
  if (bytes > MAX_SECRET_BYTES) {
    throw new KeysmithError(`the Secret's data would be ${bytes} bytes; Kubernetes refuses Secrets over ${MAX_SECRET_BYTES} bytes (1 MiB)`, 1,
      'mount it another way (a volume kept in step with keysmith sync --watch)');
  }
  ctx.stdout.write(await secretManifest({ name: opts.name, namespace: opts.namespace, fileKey, content: text }));
  if (text === '') say(ctx, `warning: ${safeLine(store.name)} has no access keys; a Wave server started with this Secret accepts the default key pair`);
}
