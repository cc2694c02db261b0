/** Reading secrets: from stdin, an environment variable or a masked prompt, never from argv. */
import type { Ctx } from './context.js';
import { UsageError } from './errors.js';

/** Read all of stdin as UTF-8. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Drop one trailing newline (LF or CRLF), as `echo` and here-strings add one. */
export function chompOnce(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

export interface SecretSource {
  /** Human name of the secret in messages ("secret", "password"). */
  what: string;
  /** Read from stdin: 'always' (a --*-stdin flag), 'if-piped', or 'never'. */
  stdin: 'always' | 'if-piped' | 'never';
  /** Environment variable to fall back on. */
  envVar?: string;
  /** Prompt text for a terminal. */
  prompt: string;
  /** Ask twice and compare (new passwords). */
  confirm?: boolean;
  /** How to provide it without a terminal, for the error message. */
  howTo: string;
}

/**
 * Get a secret from the first available source; fail fast without a TTY. Once stdin is the
 * source (a --*-stdin flag, or 'if-piped' with something piped), it is the only one: an empty
 * pipe is an error, never a fallback to the environment, so `echo -n "$EMPTY" | ...` cannot
 * quietly use a secret the caller did not mean.
 */
export async function readSecret(ctx: Ctx, source: SecretSource): Promise<string> {
  if (source.stdin === 'always' || (source.stdin === 'if-piped' && ctx.stdinPiped)) {
    if (source.stdin === 'always' && ctx.isTTY.stdin) {
      // Reading a terminal until EOF would look like a hang; say what is happening.
      ctx.stderr.write(`Reading the ${source.what} from standard input (end with Ctrl-D)...\n`);
    }
    const value = chompOnce(await readAll(ctx.stdin()));
    if (value === '') throw new UsageError(`no ${source.what} on standard input (it was empty)`);
    return value;
  }
  const fromEnv = source.envVar ? ctx.env[source.envVar] : undefined;
  if (fromEnv) return fromEnv;
  if (ctx.isTTY.stdin && ctx.isTTY.stderr) return promptSecret(ctx, source);
  throw new UsageError(`no ${source.what} given and no terminal to ask on`, source.howTo);
}

async function promptSecret(ctx: Ctx, source: SecretSource): Promise<string> {
  const { promptPassword } = await import('./prompt.js');
  const first = await promptPassword(ctx, source.prompt);
  if (source.confirm) {
    const second = await promptPassword(ctx, `Repeat the ${source.what}:`);
    if (first !== second) throw new UsageError(`the two ${source.what}s do not match`);
  }
  return first;
}
