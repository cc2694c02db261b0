/**
 * A small tmux driver for end-to-end tests of keysmith's terminal prompts: each command runs in its
 * own tmux session (a real pseudo-terminal), keys are typed with `send-keys`, and the screen is
 * read with `capture-pane`.
 *
 *   const term = new Terminal();                       // one private tmux server (-L socket)
 *   const pane = await term.run(['verify-access-key', id, '-k', file], { home });
 *   await pane.waitFor('Secret for');
 *   await pane.type(secret);
 *   await pane.press('Enter');
 *   const { code } = await pane.exit();
 *   await term.kill();                                 // in afterAll; an exit hook is the safety net
 *
 * The command runs under `env -i` (PATH, HOME, TERM=xterm-256color and what the test adds) inside
 * a small sh wrapper that prints `EXIT:<status> TTY:<restored|changed>` when it ends (TTY compares
 * `stty -g` before and after, so a prompt that leaves the terminal raw or without echo is caught)
 * and then keeps the pane alive until the session is closed. The wrapper survives SIGINT itself
 * (a trap, which its child does not inherit), so a Ctrl-C that kills keysmith by signal still gets
 * reported (as 130, but without keysmith's `error: cancelled`). Everything the pane receives is also logged raw (`pipe-pane`), for checks on
 * what was ever drawn, not just what is left on the screen.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/keysmith.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Bounded waits: long enough for a node start-up on a busy 2-core CI machine, short enough to fail fast. */
export const WAIT_MS = 8_000;
const POLL_MS = 50;
const TMUX_CALL_TIMEOUT_MS = 5_000;
/**
 * How long the tmux server and its panes may live: far longer than a test file runs, short enough
 * that a server orphaned by a killed test process (no exit hook ran) goes away by itself.
 */
const LIFETIME_S = 900;
export const WIDTH = 120;
export const HEIGHT = 30;

/** Why tmux cannot be used here, or undefined when it can. */
export function tmuxMissing(): string | undefined {
  const r = spawnSync('tmux', ['-V'], { encoding: 'utf8', timeout: TMUX_CALL_TIMEOUT_MS });
  if (r.error) return `tmux not found (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}; Debian: apt-get install tmux)`;
  if (r.status !== 0) return `tmux -V failed: ${r.stderr.trim()}`;
  return undefined;
}

/** An SGR (colour/style) escape sequence. */
export const SGR = /\x1b\[[0-9;:]*m/;

/** Text without colour/style sequences. */
export function stripSgr(text: string): string {
  return text.replace(new RegExp(SGR.source, 'g'), '');
}

/** Environment for the tmux client (and the server it starts): ours without tmux's own variables. */
function tmuxEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TMUX;
  delete env.TMUX_PANE;
  return env;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Quote for /bin/sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs in the pane: remember the terminal modes, run the command, report its status and whether
 * the modes came back, then stay alive so the screen can be read.
 */
const WRAPPER = [
  'trap : INT',
  'before=$(stty -g)',
  '"$@"',
  'status=$?',
  'if [ "$(stty -g)" = "$before" ]; then tty=restored; else tty=changed; fi',
  'echo "EXIT:$status TTY:$tty"',
  `exec sleep ${LIFETIME_S}`,
].join('\n');

const EXIT_LINE = /^EXIT:(\d+) TTY:(\w+)$/m;

export interface RunOptions {
  /** HOME inside the pane (required: the pane never sees the test's own HOME). */
  home: string;
  /** Extra environment variables inside the pane, on top of PATH, HOME and TERM. */
  env?: Record<string, string>;
  cwd?: string;
  /** The node script to run instead of bin/keysmith.js (for checking this driver itself). */
  script?: string;
  /** A program to run instead of node (`['zsh', '-f', '-i']`: a shell to type into); `args` follow it. */
  program?: string[];
}

export interface ExitResult {
  code: number;
  /** stty settings after the command equal those before it. */
  ttyRestored: boolean;
  /** The screen (with scroll-back) when the exit line appeared. */
  screen: string;
}

/** One private tmux server, on its own socket; sessions are created by run(). */
export class Terminal {
  readonly socket = `keysmith-tty-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  private readonly logDir = mkdtempSync(join(tmpdir(), 'keysmith-tty-'));
  private count = 0;
  private started = false;
  private killed = false;
  /** The server's socket file, which kill-server leaves behind (tmux reports it; this is its default). */
  private socketPath = join(process.env.TMUX_TMPDIR || '/tmp', `tmux-${process.getuid?.() ?? 0}`, this.socket);
  private readonly onExit = () => this.killSync();

  constructor() {
    process.once('exit', this.onExit);
  }

  /** Run tmux with our socket and no user configuration; rejects with tmux's stderr on failure. */
  tmux(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        'tmux',
        ['-L', this.socket, '-f', '/dev/null', '-u', ...args],
        { env: tmuxEnv(), timeout: TMUX_CALL_TIMEOUT_MS, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`tmux ${args.join(' ')}: ${stderr.trim() || err.message}`));
          else resolve(stdout);
        },
      );
    });
  }

  /** Start `keysmith ARGS` in a new 120x30 session. */
  async run(args: string[], options: RunOptions): Promise<Pane> {
    // tmux reads an argument ending in ";" as a command separator.
    const bad = args.find((a) => a.endsWith(';'));
    if (bad !== undefined) throw new Error(`tty driver: argument ${JSON.stringify(bad)} ends in ";", which tmux would take for a separator`);
    const env = ['PATH=' + (process.env.PATH ?? '/usr/bin:/bin'), 'HOME=' + options.home, 'TERM=xterm-256color'];
    for (const [name, value] of Object.entries(options.env ?? {})) env.push(`${name}=${value}`);
    const envBin = existsSync('/usr/bin/env') ? '/usr/bin/env' : 'env';
    const name = `k${++this.count}`;
    const log = join(this.logDir, `${name}.log`);
    const program = options.program ?? [process.execPath, options.script ?? BIN];
    const command = [envBin, '-i', ...env, '/bin/sh', '-c', WRAPPER, 'sh', ...program, ...args];
    // The server exits when its last session is closed, and a new-session sent while it shuts down
    // is lost: a keep-alive session holds it up from the first run on.
    const keepAlive = this.started ? [] : ['new-session', '-d', '-s', 'keep-alive', '/bin/sleep', String(LIFETIME_S), ';'];
    this.started = true;
    // pipe-pane runs in the same command sequence, before the server reads any of the pane's output.
    const out = await this.tmux([
      ...keepAlive,
      'new-session', '-d', '-P', '-F', '#{session_id} #{pane_id} #{socket_path}', '-s', name, '-x', String(WIDTH), '-y', String(HEIGHT), '-c', options.cwd ?? ROOT,
      '--', ...command,
      ';', 'pipe-pane', '-o', `cat >> ${shQuote(log)}`,
    ]);
    const [session, pane, ...rest] = out.replace(/\n$/, '').split(' ');
    const socketPath = rest.join(' ');
    if (!session?.startsWith('$') || !pane?.startsWith('%') || !socketPath) throw new Error(`tmux new-session printed ${JSON.stringify(out)}`);
    this.socketPath = socketPath;
    return new Pane(this, session, pane, log, [...(options.program ?? ['keysmith']), ...args].join(' '));
  }

  /** Kill the tmux server (all sessions) and remove the logs. Idempotent. */
  async kill(): Promise<void> {
    process.off('exit', this.onExit);
    if (this.killed) return;
    this.killed = true;
    await this.tmux(['kill-server']).catch(() => {}); // no server running: nothing to kill
    this.removeFiles();
  }

  private killSync(): void {
    if (this.killed) return;
    this.killed = true;
    spawnSync('tmux', ['-L', this.socket, 'kill-server'], { env: tmuxEnv(), timeout: TMUX_CALL_TIMEOUT_MS, stdio: 'ignore' });
    this.removeFiles();
  }

  private removeFiles(): void {
    rmSync(this.socketPath, { force: true });
    rmSync(this.logDir, { recursive: true, force: true });
  }
}

export class Pane {
  constructor(
    private readonly term: Terminal,
    private readonly session: string,
    readonly id: string,
    private readonly logFile: string,
    readonly label: string,
  ) {}

  /**
   * The screen and its scroll-back, wrapped lines joined, trailing blanks cut. With `escapes`,
   * colour and style as SGR sequences (capture-pane -e).
   */
  async screen({ escapes = false }: { escapes?: boolean } = {}): Promise<string> {
    const text = await this.term.tmux(['capture-pane', '-p', '-J', '-S', '-', ...(escapes ? ['-e'] : []), '-t', this.id]);
    return text
      .split('\n')
      .map((line) => line.replace(/\s+$/, ''))
      .join('\n')
      .replace(/\n+$/, '');
  }

  /** Everything the pane has received so far, escape sequences included. */
  output(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Poll the screen until `expected` appears (a string, a pattern or a test); fail with the screen after `timeoutMs`. */
  async waitFor(expected: string | RegExp | ((screen: string) => boolean), { timeoutMs = WAIT_MS, what }: { timeoutMs?: number; what?: string } = {}): Promise<string> {
    const test = typeof expected === 'function' ? expected : typeof expected === 'string' ? (s: string) => s.includes(expected) : (s: string) => expected.test(s);
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    for (;;) {
      screen = await this.screen();
      if (test(screen)) return screen;
      if (Date.now() >= deadline) break;
      await sleep(POLL_MS);
    }
    const description = what ?? (typeof expected === 'function' ? 'the expected screen' : JSON.stringify(String(expected)));
    throw new Error(`${this.label}: no ${description} within ${timeoutMs} ms; the screen was:\n${frame(screen)}`);
  }

  /** Type text literally (no key names). */
  async type(text: string): Promise<void> {
    await this.term.tmux(['send-keys', '-t', this.id, '-l', '--', text]);
  }

  /** Press keys by tmux name: Enter, Down, Up, C-c, ... */
  async press(...keys: string[]): Promise<void> {
    await this.term.tmux(['send-keys', '-t', this.id, ...keys]);
  }

  /** Wait for the command to end; its exit status and whether the terminal modes came back. */
  async exit({ timeoutMs = WAIT_MS }: { timeoutMs?: number } = {}): Promise<ExitResult> {
    const screen = await this.waitFor(EXIT_LINE, { timeoutMs, what: 'exit (EXIT:<status> line)' });
    const [, code, tty] = EXIT_LINE.exec(screen)!;
    // The raw log trails the screen slightly: wait until it has the exit line too (escape
    // sequences may precede it on its line, so it is not anchored there).
    const deadline = Date.now() + timeoutMs;
    while (!/EXIT:\d+ TTY:\w+\r?\n/.test(this.output())) {
      if (Date.now() >= deadline) throw new Error(`${this.label}: the exit line never reached the raw log ${this.logFile}`);
      await sleep(POLL_MS);
    }
    return { code: Number(code), ttyRestored: tty === 'restored', screen };
  }

  /**
   * One row of the visible screen (0 = top) with its colour and style as SGR sequences, captured on
   * its own so that it starts from default attributes: a colour left on by the line above shows.
   */
  async row(y: number): Promise<string> {
    return (await this.term.tmux(['capture-pane', '-p', '-e', '-S', String(y), '-E', String(y), '-t', this.id])).replace(/\s+$/, '');
  }

  /** The cursor's row on the visible screen (0 = top). */
  async cursorRow(): Promise<number> {
    return Number((await this.term.tmux(['display-message', '-p', '-t', this.id, '#{cursor_y}'])).trim());
  }

  /** The terminal's cursor is visible (a prompt that hides it must show it again). */
  async cursorVisible(): Promise<boolean> {
    return (await this.term.tmux(['display-message', '-p', '-t', this.id, '#{cursor_flag}'])).trim() === '1';
  }

  /** Kill this pane's session. */
  async close(): Promise<void> {
    await this.term.tmux(['kill-session', '-t', this.session]).catch(() => {});
  }
}

/** A screen for a failure message, framed so blank lines and line ends are visible. */
export function frame(screen: string): string {
  const bar = '-'.repeat(WIDTH);
  return `${bar}\n${screen}\n${bar}`;
}
