/**
 * Errors are values with an exit code and one line a user can act on.
 * Only src/cli.ts turns them into process exit codes.
 */
export const EXIT_OK = 0;
/** Operational failure: not found, verification failed, the server said no. */
export const EXIT_FAILURE = 1;
/** Usage or format error: bad flags, bad input files. */
export const EXIT_USAGE = 2;

export class KeysmithError extends Error {
  readonly exitCode: number;
  /** An optional second line telling the user what to do next. */
  readonly hint: string | undefined;
  constructor(message: string, exitCode: number = EXIT_FAILURE, hint?: string) {
    super(message);
    this.name = 'KeysmithError';
    this.exitCode = exitCode;
    this.hint = hint;
  }
}

/**
 * End the command with this exit code and no message: what was to be said has been said (exec
 * passes on its child's code; api has printed the body and a summary line).
 */
export class ExitCode extends KeysmithError {
  constructor(code: number) {
    super(`exit ${code}`, code);
    this.name = 'ExitCode';
  }
}

/** Bad flags, arguments or input: exit code 2. */
export class UsageError extends KeysmithError {
  constructor(message: string, hint?: string) {
    super(message, EXIT_USAGE, hint);
    this.name = 'UsageError';
  }
}

/** A file that is not in the expected format: exit code 2, names the file and line. */
export class FormatError extends KeysmithError {
  readonly file: string;
  readonly line: number | undefined;
  constructor(file: string, line: number | undefined, message: string) {
    super(line === undefined ? `${file}: ${message}` : `${file} line ${line}: ${message}`, EXIT_USAGE);
    this.name = 'FormatError';
    this.file = file;
    this.line = line;
  }
}

/** Something we looked for is not there (an ID, a profile): exit code 1. */
export class NotFoundError extends KeysmithError {
  constructor(message: string, hint?: string) {
    super(message, EXIT_FAILURE, hint);
    this.name = 'NotFoundError';
  }
}

/** Translate a Node.js file-system error into a one-line KeysmithError about `path`. */
export function fileError(err: unknown, path: string, what = 'file'): KeysmithError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EISDIR':
      return new UsageError(`${what} ${path} is a directory, expected a file`);
    case 'EACCES':
    case 'EPERM':
      return new UsageError(`cannot access ${what} ${path}: permission denied`);
    case 'ENOENT':
      return new NotFoundError(`${what} ${path} does not exist`);
    case 'ENOTDIR':
      return new UsageError(`${what} ${path}: a parent of it is not a directory`);
    case 'ENOSPC':
      return new KeysmithError(`cannot write ${what} ${path}: no space left on device`);
    case 'EROFS':
      return new KeysmithError(`cannot write ${what} ${path}: read-only file system`);
    default:
      return new KeysmithError(`${what} ${path}: ${(err as Error)?.message ?? String(err)}`);
  }
}
