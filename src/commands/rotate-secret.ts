import { resolve } from 'node:path';
import { out, say, type Ctx } from '../io/context.js';
import { NotFoundError, UsageError } from '../io/errors.js';
import { readRegularFileOrNull, updateFile } from '../io/files.js';
import { decodeText } from '../io/text.js';
import { unifiedDiff } from '../secrets/diff.js';
import { newSecret, secretSpec, wholeNumber, type SecretFlags } from '../secrets/generate.js';
import { DEFAULT_VAR, rotateEnv } from '../secrets/rotate-env.js';
import { guessFormat } from '../secrets/keys-file.js';
import { DEFAULT_KEY_PATH, rotateYaml } from '../secrets/rotate-yaml.js';
import { leakGuard, redactor, type Rotation } from '../secrets/rotation.js';

export const DEFAULT_KEEP = 2;
export const MAX_KEEP = 100;

export interface RotateSecretOptions extends SecretFlags {
  key?: string;
  var?: string;
  format?: string;
  keep?: string;
  dryRun?: boolean;
  print?: boolean;
}

/** yaml for .yml/.yaml, env for .env, .env.* and *.env, unless --format says otherwise. */
export function fileFormat(file: string, flag: string | undefined): 'yaml' | 'env' {
  if (flag !== undefined) {
    if (flag === 'yaml' || flag === 'env') return flag;
    throw new UsageError(`--format must be yaml or env, got ${JSON.stringify(flag)}`);
  }
  const format = guessFormat(file);
  if (format) return format;
  throw new UsageError(`cannot tell the format of ${file} from its name`, 'give --format yaml or --format env');
}

/**
 * Prepend a new secret to a signing-key list in a YAML or env file and keep at most --keep keys,
 * in one locked atomic write. Nothing secret is printed unless --print (the new key, on stdout);
 * --dry-run prints a diff with the keys hidden and writes nothing.
 */
export async function run(file: string, opts: RotateSecretOptions, ctx: Ctx): Promise<void> {
  const format = fileFormat(file, opts.format);
  if (format === 'yaml' && opts.var !== undefined) throw new UsageError('--var is for env files; in a YAML file, give the list with --key');
  if (format === 'env' && opts.key !== undefined) throw new UsageError('--key is for YAML files; in an env file, give the variable with --var');
  if (opts.dryRun && opts.print) throw new UsageError('--print and --dry-run do not go together: a dry run writes no new secret');
  const keep = wholeNumber('--keep', opts.keep, 1, MAX_KEEP) ?? DEFAULT_KEEP;
  const secret = newSecret(secretSpec(opts));
  const path = resolve(ctx.cwd, file);
  const rotate = async (bytes: Buffer | null): Promise<Rotation> => {
    if (bytes === null) throw new NotFoundError(`${file} does not exist`, 'keysmith edits existing files only; create it first (an empty file will do)');
    const text = decodeText(bytes, file);
    return format === 'yaml'
      ? rotateYaml(text, file, opts.key ?? DEFAULT_KEY_PATH, secret, keep)
      : rotateEnv(text, file, opts.var ?? DEFAULT_VAR, secret, keep);
  };
  // Check the file before taking its lock, and again under the lock (it may have changed).
  const before = await readRegularFileOrNull(path);
  const preview = await rotate(before);
  const rotation = opts.dryRun
    ? preview
    : await updateFile(path, async (bytes) => {
        const result = await rotate(bytes);
        return { content: result.text, result };
      });
  const what = `${rotation.where} in ${file}: 1 new, kept ${rotation.kept}, dropped ${rotation.dropped}${rotation.created ? ' (new list)' : ''}`;
  if (opts.dryRun) {
    const text = decodeText(before!, file);
    // Each format cuts the keys of its list (hide); the redactor hides them anywhere else on a line
    // (a comment), and the guard hides a line that would still show 5 characters of a key.
    const shown = { '-': rotation.hide(text), '+': rotation.hide(rotation.text) };
    const redact = redactor(rotation.secrets);
    const guard = leakGuard(rotation.secrets);
    const show = (_: string, kind: '-' | '+', index: number) => guard(redact(shown[kind][index] ?? '<line hidden>'));
    ctx.stdout.write(unifiedDiff(text, rotation.text, file, `${file} (rotated)`, show));
    say(ctx, `Dry run, nothing written: would rotate ${what}`);
  } else {
    say(ctx, `Rotated ${what}`);
  }
  if (keep === 1 && rotation.dropped > 0) say(ctx, 'warning: --keep 1 drops every old key: tokens signed with them stop verifying');
  if (opts.print) out(ctx, secret);
}
