/** An in-memory Ctx for running commands in-process: capture stdout/stderr, inject env, clock, stdin. */
import { Readable } from 'node:stream';
import type { Ctx } from '../../src/io/context.js';

export interface FakeCtx {
  ctx: Ctx;
  stdout(): string;
  stderr(): string;
  /** Move the fake clock forward. */
  advance(ms: number): void;
}

export interface FakeCtxOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Text on stdin; when given, stdin counts as piped. */
  stdin?: string;
  now?: number;
  tty?: boolean;
}

export function fakeCtx(options: FakeCtxOptions = {}): FakeCtx {
  let out = '';
  let err = '';
  let now = options.now ?? Date.now();
  const tty = options.tty ?? false;
  const ctx: Ctx = {
    stdin: () => Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stderrStream: () => {
      throw new Error('no terminal in tests');
    },
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    now: () => now,
    isTTY: { stdin: tty, stdout: tty, stderr: tty },
    stdinPiped: options.stdin !== undefined,
  };
  return { ctx, stdout: () => out, stderr: () => err, advance: (ms) => (now += ms) };
}
