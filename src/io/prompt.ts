/**
 * Interactive prompts on the terminal (stderr), loaded only when a prompt is needed:
 * @inquirer/prompts costs ~70 ms to import.
 */
import type { Ctx } from './context.js';
import { KeysmithError } from './errors.js';

function context(ctx: Ctx) {
  return { input: ctx.stdin(), output: ctx.stderrStream(), clearPromptOnDone: false };
}

async function ask<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if ((err as Error)?.name === 'ExitPromptError') throw new KeysmithError('cancelled', 130);
    throw err;
  }
}

export async function promptPassword(ctx: Ctx, message: string): Promise<string> {
  const { password } = await import('@inquirer/prompts');
  return ask(() => password({ message, mask: '*' }, context(ctx)));
}

export async function promptInput(ctx: Ctx, message: string): Promise<string> {
  const { input } = await import('@inquirer/prompts');
  return ask(() => input({ message }, context(ctx)));
}

export async function promptSelect(ctx: Ctx, message: string, choices: string[]): Promise<string> {
  const { select } = await import('@inquirer/prompts');
  return ask(() => select({ message, choices: choices.map((value) => ({ value, name: value })) }, context(ctx)));
}
