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
