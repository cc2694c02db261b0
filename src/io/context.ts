/**
 * Everything a command may touch in the outside world, injected so tests can run
 * commands in-process with fake streams, environment and clock.
 * Only src/cli.ts builds one from `process`.
 */
export interface OutStream {
  write(chunk: string): unknown;
}

export interface Ctx {
  /** Standard input, created on first use (creating process.stdin costs time and can hold the loop). */
  stdin(): NodeJS.ReadableStream;
  stdout: OutStream;
  stderr: OutStream;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Milliseconds since the epoch. */
  now(): number;
  isTTY: { stdin: boolean; stdout: boolean; stderr: boolean };
  /** stdin is a pipe, file or socket that may carry data (not a terminal, not /dev/null). */
  stdinPiped: boolean;
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
