/**
 * A keychain as a Kubernetes `v1` Secret manifest, for clusters that mount it into Wave pods
 * (pure: names are checked here, the YAML is made by the `yaml` package).
 */
import { UsageError } from '../io/errors.js';
import { safeLine } from '../io/escape.js';

/** The Secret key that holds the keychain, and so the file name in the mounted volume. */
export const DEFAULT_FILE_KEY = '.wave-keychain';
/** Kubernetes refuses a Secret whose data adds up to more than 1 MiB. */
export const MAX_SECRET_BYTES = 1024 * 1024;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function quoted(value: string): string {
  return safeLine(JSON.stringify(value), 100);
}

/** A Secret's name: a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253). */
export function checkSecretName(name: string): void {
  const why = name.length === 0 ? 'it is empty'
    : name.length > 253 ? `it is ${name.length} characters long (at most 253)`
    : !name.split('.').every((label) => DNS1123_LABEL.test(label))
      ? 'use lowercase letters, digits, \'-\' and \'.\', starting and ending with a letter or digit'
      : undefined;
  if (why) throw new UsageError(`--name ${quoted(name)} is not a valid Kubernetes Secret name: ${why}`);
}

/** A namespace: a DNS-1123 label (lowercase letters, digits and '-', at most 63). */
export function checkNamespace(namespace: string): void {
  const why = namespace.length === 0 ? 'it is empty'
    : namespace.length > 63 ? `it is ${namespace.length} characters long (at most 63)`
    : !DNS1123_LABEL.test(namespace) ? 'use lowercase letters, digits and \'-\', starting and ending with a letter or digit'
    : undefined;
  if (why) throw new UsageError(`--namespace ${quoted(namespace)} is not a valid Kubernetes namespace: ${why}`);
}

/** A Secret data key: letters, digits, '-', '_' and '.', at most 253, not '.' or '..' or starting with '..'. */
export function checkFileKey(key: string): void {
  const why = key.length === 0 ? 'it is empty'
    : key.length > 253 ? `it is ${key.length} characters long (at most 253)`
    : !/^[-._a-zA-Z0-9]+$/.test(key) ? 'use letters, digits, \'-\', \'_\' and \'.\' only'
    : key === '.' || key === '..' || key.startsWith('..') ? 'it may not be \'.\' or \'..\' or start with \'..\''
    : undefined;
  if (why) throw new UsageError(`--file-key ${quoted(key)} is not a valid Secret data key: ${why}`);
}

export interface SecretManifest {
  name: string;
  namespace?: string;
  fileKey?: string;
  /** The file's bytes, stored base64 in `data`. */
  content: string | Uint8Array;
}

/** The manifest's YAML: apiVersion, kind, metadata, type Opaque and data, in that order. */
export async function secretManifest(m: SecretManifest): Promise<string> {
  const { stringify } = await import('yaml');
  const bytes = typeof m.content === 'string' ? Buffer.from(m.content, 'utf8') : Buffer.from(m.content);
  const manifest = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: m.name, ...(m.namespace !== undefined && { namespace: m.namespace }) },
    type: 'Opaque',
    data: { [m.fileKey ?? DEFAULT_FILE_KEY]: bytes.toString('base64') },
  };
  // No line folding: a base64 value stays on one line, as kubectl writes it.
  return stringify(manifest, { lineWidth: 0 });
}
