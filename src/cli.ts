/**
 * keysmith's command-line entry: the only module that touches `process`. Commands are listed in
 * src/commands/table.ts; each one's code is imported only when it runs, and commander only for
 * help and usage errors, so `token` and `list-access-keys` start fast.
 */
import { fstatSync, writeSync } from 'node:fs';
import { parseFast } from './argv.js';
import type { CommandSpec } from './commands/table.js';
import type { Ctx, OutStream } from './io/context.js';
import { EXIT_FAILURE, EXIT_USAGE, ExitCode, KeysmithError } from './io/errors.js';

declare const __KEYSMITH_VERSION__: string | undefined;
export const VERSION = typeof __KEYSMITH_VERSION__ === 'string' ? __KEYSMITH_VERSION__ : '0.0.0-dev';

/** The reader of our output went away (`keysmith ... | head -1`): stop quietly, like SIGPIPE. */
class OutputClosed extends Error {}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Synchronous writes to a file descriptor. Creating process.stdout loads Node's stream, net and
 * tty modules (measurable start-up time); a CLI that prints a line and exits needs none of that.
 */
function fdWriter(fd: number): OutStream {
  return {
    write(chunk: string | Uint8Array) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      for (let offset = 0; offset < buffer.length; ) {
        try {
          offset += writeSync(fd, buffer, offset);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') Atomics.wait(pause, 0, 0, 1); // a non-blocking pipe is full: wait for the reader
          else if (code === 'EPIPE') throw new OutputClosed();
          else throw err;
        }
      }
    },
  };
}

function fdIsPiped(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isFile() || st.isSocket();
  } catch {
    return false;
  }
}

/** node:tty loads net and streams, so it is loaded (synchronously) only when a check is needed. */
function isTerminal(fd: number): boolean {
  return (process.getBuiltinModule('node:tty') as typeof import('node:tty')).isatty(fd);
}

export function processContext(): Ctx {
  // NO_COLOR wins over FORCE_COLOR (colour.ts). Libraries that read the environment themselves
  // (the prompts' colours) would otherwise colour anyway, and Node warns about the pair.
  if (process.env.NO_COLOR) delete process.env.FORCE_COLOR;
  // Node's deprecation notices are for keysmith's developers, not its users: gRPC (etcd over TLS
  // with IP endpoints) triggers DEP0123, two lines of noise on stderr that scripts would capture.
  (process as { noDeprecation?: boolean }).noDeprecation = true;
  const tty: Partial<Record<'stdin' | 'stdout' | 'stderr', boolean>> = {};
  const check = (name: 'stdin' | 'stdout' | 'stderr', fd: number) => (tty[name] ??= isTerminal(fd));
  return {
    stdin: () => process.stdin,
    stdout: fdWriter(1),
    stderr: fdWriter(2),
    stderrStream: () => process.stderr,
    env: process.env,
    cwd: process.cwd(),
    now: () => Date.now(),
    isTTY: {
      get stdin() {
        return check('stdin', 0);
      },
      get stdout() {
        return check('stdout', 1);
      },
      get stderr() {
        return check('stderr', 2);
      },
    },
    get stdinPiped() {
      return fdIsPiped(0);
    },
    onInterrupt: (handler) => {
      process.on('SIGINT', handler);
      return () => void process.off('SIGINT', handler);
    },
    onSignal: (signals, handler) => {
      for (const s of signals) process.on(s, handler);
      return () => {
        for (const s of signals) process.off(s, handler);
      };
    },
    spawn: (command, args, options) => {
      const { spawn } = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
      const child = spawn(command, args, { env: options.env as NodeJS.ProcessEnv, cwd: options.cwd, stdio: options.stdio, detached: options.group });
      if (options.group) {
        child.kill = (signal?: NodeJS.Signals | number) => {
          try {
            return process.kill(-child.pid!, signal);
          } catch {
            return false; // the group is gone
          }
        };
      }
      return child;
    },
  };
}

async function reportError(ctx: Ctx, err: unknown): Promise<number> {
  if (err instanceof OutputClosed) return 0;
  if (err instanceof ExitCode) return err.exitCode;
  const commanderCode = (err as { code?: unknown })?.code;
  if (typeof commanderCode === 'string' && commanderCode.startsWith('commander.')) {
    // Commander has already printed its message (and a suggestion for near misses).
    const exitCode = (err as { exitCode?: number }).exitCode;
    return commanderCode === 'commander.helpDisplayed' || commanderCode === 'commander.version' || exitCode === 0 ? 0 : EXIT_USAGE;
  }
  const { colours } = await import('./io/colour.js');
  const { safeLine } = await import('./io/escape.js');
  const c = await colours(ctx, 'stderr');
  const error = c ? c.red.bold('error:') : 'error:';
  // Messages may carry server text, file contents or URLs: one line each, nothing a terminal obeys.
  const hint = (text: string) => ctx.stderr.write(`${c ? c.dim('hint:') : 'hint:'} ${safeLine(text)}\n`);
  if (err instanceof KeysmithError) {
    ctx.stderr.write(`${error} ${safeLine(err.message)}\n`);
    if (err.hint) hint(err.hint);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  ctx.stderr.write(`${error} unexpected failure: ${safeLine(message)}\n`);
  if (ctx.env.KEYSMITH_DEBUG && err instanceof Error && err.stack) ctx.stderr.write(err.stack.split('\n').map((line) => safeLine(line)).join('\n') + '\n');
  else hint('set KEYSMITH_DEBUG=1 for details');
  return EXIT_FAILURE;
}

/** Run keysmith with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[], ctx: Ctx = processContext()): Promise<number> {
  const runCommand = async (spec: CommandSpec, positionals: unknown[], options: Record<string, unknown>) => {
    const mod = await spec.load();
    await (mod.run as (...a: unknown[]) => Promise<void>)(...positionals, options, ctx);
  };
  try {
    const fast = parseFast(argv);
    if (fast?.kind === 'version') {
      ctx.stdout.write(`keysmith ${VERSION}\n`);
    } else if (fast) {
      await runCommand(fast.spec, fast.positionals, fast.options);
    } else {
      const { buildProgram } = await import('./program.js');
      const program = await buildProgram(ctx, VERSION, runCommand);
      await program.parseAsync(argv, { from: 'user' });
    }
    return 0;
  } catch (err) {
    return await reportError(ctx, err);
  }
}
