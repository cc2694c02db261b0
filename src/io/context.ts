/**
 * Everything a command may touch in the outside world, injected so tests can run
 * commands in-process with fake streams, environment and clock.
 * Only src/cli.ts builds one from `process`.
 */
export interface OutStream {
  /** Text is written as UTF-8; bytes as they are, and used before `write` returns. */
  write(chunk: string | Uint8Array): unknown;
}

export interface Ctx {
  /** Standard input, created on first use (creating process.stdin costs time and can hold the loop). */
  stdin(): NodeJS.ReadableStream;
  stdout: OutStream;
  stderr: OutStream;
  /** stderr as a stream, for interactive prompts; created on first use. */
  stderrStream(): NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Milliseconds since the epoch. */
  now(): number;
  /** Terminal checks; getters in the real process, so paths that never ask pay nothing. */
  readonly isTTY: { readonly stdin: boolean; readonly stdout: boolean; readonly stderr: boolean };
  /** stdin is a pipe, file or socket that may carry data (not a terminal, not /dev/null). */
  stdinPiped: boolean;
  /** Run `handler` on Ctrl-C (SIGINT) instead of dying; returns a function that stops listening. */
  onInterrupt?(handler: () => void): () => void;
  /**
   * Run `handler` on any of `signals` instead of dying (exec forwards them to its child; sync stops
   * cleanly); returns a function that stops listening.
   */
  onSignal?(signals: readonly NodeJS.Signals[], handler: (signal: NodeJS.Signals) => void): () => void;
  /** Start a program (exec, sync --exec). Tests may inject their own; the process uses node:child_process. */
  spawn?(command: string, args: readonly string[], options: SpawnOptions): ChildLike;
  /**
   * The HTTP transport under keysmith's safety policy (src/tokens/http.ts wraps it with guardFetch):
   * tests may inject one to run token commands in-process; the process uses fetch or undici.
   */
  transport?: typeof fetch;
}

export interface SpawnOptions {
  env: Record<string, string | undefined>;
  cwd?: string;
  /** 'inherit': the child gets keysmith's own stdin, stdout and stderr (a TTY stays a TTY). */
  stdio: 'inherit' | 'pipe' | ['inherit' | 'ignore' | 'pipe', 'inherit' | 'ignore' | 'pipe', 'inherit' | 'ignore' | 'pipe'];
  /**
   * Start it in a process group of its own, and have the child's `kill` signal the whole group
   * (`sh -c 'a; b'` does not pass a signal on to what it runs).
   */
  group?: boolean;
}

/** The part of node's ChildProcess that commands use. */
export interface ChildLike {
  readonly pid?: number | undefined;
  kill(signal?: NodeJS.Signals): boolean;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  readonly stdout?: NodeJS.ReadableStream | null;
  readonly stderr?: NodeJS.ReadableStream | null;
  readonly stdin?: NodeJS.WritableStream | null;
}

/** Write one line of data to stdout. */
export function out(ctx: Ctx, line: string): void {
  ctx.stdout.write(line + '\n');
}

/** Write one line for people to stderr. */
export function say(ctx: Ctx, line: string): void {
  ctx.stderr.write(line + '\n');
}

/** Write a line of JSON data to stdout. */
export function outJson(ctx: Ctx, value: unknown): void {
  ctx.stdout.write(JSON.stringify(value) + '\n');
}
