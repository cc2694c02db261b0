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

/** What a command wrote, as text (bytes are reused by the writer once `write` returns). */
function text(chunk: string | Uint8Array): string {
  return typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
}

export function fakeCtx(options: FakeCtxOptions = {}): FakeCtx {
  let out = '';
  let err = '';
  let now = options.now ?? Date.now();
  const tty = options.tty ?? false;
  const ctx: Ctx = {
    stdin: () => Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
    stdout: { write: (s: string | Uint8Array) => (out += text(s)) },
    stderr: { write: (s: string | Uint8Array) => (err += text(s)) },
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
