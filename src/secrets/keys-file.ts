/**
 * Reading a list of signing keys for verification (`inspect-token --secret-file`): the same files
 * `rotate-secret` edits — a YAML config (`authentication.secret_keys`), an env file
 * (`TILED_SECRET_KEYS` JSON list, `TILED_SERVER_SECRET_KEYS` or `SECRET_KEYS` `;` lists) — or a
 * plain file with one key per line (`#` comments and blank lines skipped).
 */
import { basename } from 'node:path';
import { FormatError, NotFoundError } from '../io/errors.js';
import { readFileOrNull } from '../io/files.js';
import { decodeText } from '../io/text.js';
import { readEnvList } from './rotate-env.js';
import { isReference } from './rotation.js';
import { DEFAULT_KEY_PATH, libraryMessage } from './rotate-yaml.js';

/** yaml for .yml/.yaml, env for .env, .env.* and *.env; undefined for other names. */
export function guessFormat(file: string): 'yaml' | 'env' | undefined {
  const name = basename(file).toLowerCase();
  if (/\.ya?ml$/.test(name)) return 'yaml';
  if (name === '.env' || name.startsWith('.env.') || name.endsWith('.env')) return 'env';
  return undefined;
}

/** Env variables that hold signing-key lists, newest servers first. */
const KEY_VARS = ['TILED_SECRET_KEYS', 'TILED_SERVER_SECRET_KEYS', 'SECRET_KEYS'];

export async function readSigningKeys(file: string): Promise<string[]> {
  const bytes = await readFileOrNull(file, 'secret file');
  if (bytes === null) throw new NotFoundError(`secret file ${file} does not exist`);
  const text = decodeText(bytes, file);
  const format = guessFormat(file);
  let keys: string[];
  if (format === 'yaml') keys = await yamlKeys(text, file);
  else if (format === 'env') {
    const found = KEY_VARS.map((name) => readEnvList(text, file, name)).find((list) => list !== undefined);
    if (!found) throw new FormatError(file, undefined, `sets none of ${KEY_VARS.join(', ')}`);
    keys = found;
  } else keys = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  // ${VAR} references are expanded by the server from its environment; we cannot verify with them.
  keys = keys.filter((k) => !isReference(k));
  if (keys.length === 0) throw new FormatError(file, undefined, 'holds no signing keys');
  return keys;
}

async function yamlKeys(text: string, file: string): Promise<string[]> {
  const yaml = await import('yaml');
  const lineCounter = new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { lineCounter, prettyErrors: false });
  const error = doc.errors[0];
  if (error) throw new FormatError(file, lineCounter.linePos(error.pos[0]).line, libraryMessage(error.message));
  const list = doc.getIn(DEFAULT_KEY_PATH.split('.'));
  const items = yaml.isSeq(list) ? list.toJSON() : undefined;
  if (!Array.isArray(items) || !items.every((k) => typeof k === 'string')) {
    throw new FormatError(file, undefined, `expected a list of strings at ${DEFAULT_KEY_PATH}`);
  }
  return items as string[];
}
