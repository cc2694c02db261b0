import type { Ctx } from '../io/context.js';
import { secretSpec, wholeNumber, writeSecretLines, type SecretFlags } from '../secrets/generate.js';

export const MAX_COUNT = 1_000_000;

export interface GenerateSecretOptions extends SecretFlags {
  count?: string;
  json?: boolean;
}

/** Print distinct random secrets, one per line (or one JSON object per line), and nothing else. */
export async function run(opts: GenerateSecretOptions, ctx: Ctx): Promise<void> {
  const spec = secretSpec(opts);
  const count = wholeNumber('--count', opts.count, 1, MAX_COUNT) ?? 1;
  const json = opts.json ? [`{"secret":"`, `","encoding":"${spec.encoding}","bits":${spec.bits}}`] : [];
  writeSecretLines(spec, count, (chunk) => ctx.stdout.write(chunk), ...json);
}
