/**
 * Interactive prompts on the terminal (stderr), loaded only when a prompt is needed:
 * @inquirer/prompts costs ~70 ms to import.
 */
import type { Ctx } from './context.js';
import { KeysmithError } from './errors.js';

type PromptContext = { input: NodeJS.ReadableStream; output: NodeJS.WritableStream; clearPromptOnDone: boolean; signal: AbortSignal };

/**
 * Run one prompt; Ctrl-C (and Ctrl-D, below) become `cancelled`, exit 130.
 *
 * Ctrl-D on an empty prompt makes readline close the prompt's interface, and @inquirer/prompts then
 * neither resolves nor rejects: nothing keeps the event loop alive, Node ends the process, and
 * signal-exit (loaded by @inquirer/core) turns the exit code into 0. keysmith would end "successfully"
 * without an answer: for verify-access-key, exit 0 is "the secret matched". Readline pauses its
 * input when it closes, so a paused input just after Ctrl-D, or an input that ends, aborts the
 * prompt instead.
 */
async function ask<T>(ctx: Ctx, run: (context: PromptContext) => Promise<T>): Promise<T> {
  const input = ctx.stdin();
  const closed = new AbortController();
  const onKeypress = (_text: unknown, key?: { ctrl?: boolean; name?: string }) => {
    // Readline handles the key in its own listener, which may run after this one.
    if (key?.ctrl && key.name === 'd') setImmediate(() => input.isPaused() && closed.abort());
  };
  const onEnd = () => closed.abort();
  input.on('keypress', onKeypress);
  input.once('end', onEnd);
  try {
    return await run({ input, output: ctx.stderrStream(), clearPromptOnDone: false, signal: closed.signal });
  } catch (err) {
    const name = (err as Error)?.name;
    if (name === 'ExitPromptError' || name === 'AbortPromptError') throw new KeysmithError('cancelled', 130);
    throw err;
  } finally {
    input.off('keypress', onKeypress);
    input.off('end', onEnd);
  }
}

/** Enter on an empty prompt asks again (no secret or name is empty); Ctrl-C leaves. */
const notEmpty = (value: string) => value !== '' || 'Type a value, or press Ctrl-C to cancel.';

export async function promptPassword(ctx: Ctx, message: string): Promise<string> {
  const { password } = await import('@inquirer/prompts');
  return ask(ctx, (context) => password({ message, mask: '*', validate: notEmpty }, context));
}

export async function promptInput(ctx: Ctx, message: string): Promise<string> {
  const { input } = await import('@inquirer/prompts');
  return ask(ctx, (context) => input({ message, validate: notEmpty }, context));
}

export async function promptSelect(ctx: Ctx, message: string, choices: string[]): Promise<string> {
  const { select } = await import('@inquirer/prompts');
  return ask(ctx, (context) => select({ message, choices: choices.map((value) => ({ value, name: value })) }, context));
}
