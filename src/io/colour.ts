import type { ChalkInstance } from 'chalk';
import type { Ctx } from './context.js';

/**
 * Colour for human text on stderr (or stdout when it is a terminal).
 * NO_COLOR (any non-empty value) wins; FORCE_COLOR=0..3 forces a level; otherwise colour
 * only when the stream is a terminal, so piped output is never decorated.
 */
export function colourLevel(ctx: Ctx, stream: 'stdout' | 'stderr'): 0 | 1 | 2 | 3 {
  const env = ctx.env;
  if (env.NO_COLOR) return 0;
  const forced = env.FORCE_COLOR;
  if (forced !== undefined) {
    if (forced === '' || forced === 'true') return 1;
    if (forced === 'false') return 0;
    const n = Number(forced);
    if (Number.isInteger(n) && n >= 0 && n <= 3) return n as 0 | 1 | 2 | 3;
    return 1;
  }
  if (!ctx.isTTY[stream]) return 0;
  if (env.TERM === 'dumb') return 0;
  return 1;
}

/**
 * A chalk instance for `stream`, or undefined when it gets no colour. chalk is imported only
 * then (a static import would load it at every start).
 */
export async function colours(ctx: Ctx, stream: 'stdout' | 'stderr' = 'stderr'): Promise<ChalkInstance | undefined> {
  const level = colourLevel(ctx, stream);
  if (level === 0) return undefined;
  const { Chalk } = await import('chalk');
  return new Chalk({ level });
}
