/**
 * keysmith's command-line entry: the only module that touches `process`. Each command's code is
 * imported when that command runs, so `--version`, `token` and `list-access-keys` stay fast.
 */
import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { Command, CommanderError, Option } from 'commander';
import type { Ctx } from './io/context.js';
import { EXIT_FAILURE, EXIT_USAGE, KeysmithError } from './io/errors.js';

declare const __KEYSMITH_VERSION__: string | undefined;
const VERSION = typeof __KEYSMITH_VERSION__ === 'string' ? __KEYSMITH_VERSION__ : '0.0.0-dev';

function stdinIsPiped(): boolean {
  try {
    const st = fstatSync(0);
    return st.isFIFO() || st.isFile() || st.isSocket();
  } catch {
    return false;
  }
}

export function processContext(): Ctx {
  return {
    stdin: () => process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    now: () => Date.now(),
    isTTY: { stdin: isatty(0), stdout: isatty(1), stderr: isatty(2) },
    stdinPiped: !isatty(0) && stdinIsPiped(),
  };
}

type Loader = () => Promise<{ run: (...args: never[]) => Promise<void> }>;

/** Build the program. `ctx` is handed to every command; `load` lets tests stub command modules. */
export function buildProgram(ctx: Ctx): Command {
  const program = new Command('keysmith')
    .description('Keychains, signing secrets and tokens for small web services.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  program.helpCommand('help [command]', 'show help for a command');

  const keychainOption = () =>
    new Option('-k, --keychain <path>', 'keychain or htpasswd file (default: $KEYSMITH_KEYCHAIN, else ./.wave-keychain)');
  const costOption = () => new Option('--cost <n>', 'bcrypt cost, 4..31 (default: 10)');

  /** Register an action that imports its command module only when it runs. */
  const lazy = (load: Loader) =>
    async (...args: unknown[]) => {
      const command = args[args.length - 1] as Command;
      const positional = args.slice(0, -2);
      const mod = await load();
      await (mod.run as (...a: unknown[]) => Promise<void>)(...positional, command.opts(), ctx);
    };

  program
    .command('create-access-key')
    .description('create an access key (ID and secret) and add its bcrypt hash to the keychain')
    .addOption(keychainOption())
    .option('-n, --count <n>', 'how many keys to create in one write', undefined)
    .addOption(costOption())
    .option('--json', 'print one JSON object per key: {"id","secret","keychain"}')
    .action(lazy(() => import('./commands/create-access-key.js')));

  program
    .command('list-access-keys')
    .description('list the IDs in the keychain, sorted')
    .addOption(keychainOption())
    .option('--json', 'print a JSON array of {"id","algorithm","cost"}')
    .action(lazy(() => import('./commands/list-access-keys.js')));

  program
    .command('remove-access-key')
    .description('remove access keys; nothing is removed if any ID is unknown')
    .argument('<id...>', 'access key IDs')
    .addOption(keychainOption())
    .action(lazy(() => import('./commands/remove-access-key.js')));

  program
    .command('verify-access-key')
    .description('check a secret against the keychain (stdin, $H2O_WAVE_ACCESS_KEY_SECRET or a prompt); exit 0 on match, 1 otherwise')
    .argument('<id>', 'access key ID (or htpasswd user)')
    .addOption(keychainOption())
    .action(lazy(() => import('./commands/verify-access-key.js')));

  program
    .command('rotate-access-key')
    .description('replace an access key with a new one in one atomic write')
    .argument('<id>', 'access key ID to replace')
    .addOption(keychainOption())
    .option('--keep-old', 'keep the old key next to the new one')
    .addOption(costOption())
    .option('--json', 'print the new key as JSON')
    .action(lazy(() => import('./commands/rotate-access-key.js')));

  program
    .command('set-password')
    .description('add or update an htpasswd user with a bcrypt hash (for nginx, Apache, Flask-HTTPAuth)')
    .argument('<user>', 'user name')
    .addOption(keychainOption())
    .option('--password-stdin', 'read the password from standard input')
    .addOption(costOption())
    .action(lazy(() => import('./commands/set-password.js')));

  // Tokens: log in once, then `keysmith token` hands scripts a valid access token.
  const profileOption = () => new Option('-p, --profile <name>', 'profile (default: $KEYSMITH_PROFILE, else the last login)');
  const timeoutOption = () => new Option('--timeout <seconds>', 'give up on the server after this long (default: 30)');

  program
    .command('login')
    .description('log in to a server and save the session (password from --password-stdin, $KEYSMITH_PASSWORD or a prompt)')
    .argument('[url]', 'server URL (default: the profile\'s URL)')
    .addOption(profileOption())
    .addOption(new Option('--dialect <dialect>', 'server kind').choices(['auto', 'tiled', 'basic-login', 'wavemaker']).default('auto'))
    .option('--provider <name>', 'Tiled authentication provider')
    .option('-u, --username <name>', 'user name (default: $KEYSMITH_USERNAME, else a prompt)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--cacert <file>', 'trust the CA certificates in this PEM file')
    .option('--token-ttl <seconds>', 'WaveMaker: token lifetime configured on the server (default: 1800)')
    .addOption(timeoutOption())
    .action(lazy(() => import('./commands/login.js')));

  program
    .command('token')
    .description('print a valid access token, refreshing it first when it is about to expire')
    .addOption(profileOption())
    .option('--header', 'print the whole HTTP header line, e.g. "Authorization: Bearer ..."')
    .option('--json', 'print {"token","type","expires_at","expires_in","profile"}')
    .option('--min-ttl <seconds>', 'refresh when the token expires within this many seconds (default: 60, at most half its lifetime)')
    .addOption(timeoutOption())
    .action(lazy(() => import('./commands/token.js')));

  program
    .command('refresh')
    .description('refresh the session now')
    .addOption(profileOption())
    .addOption(timeoutOption())
    .action(lazy(() => import('./commands/refresh.js')));

  program
    .command('logout')
    .description('revoke the session on the server (where it can be) and delete it locally')
    .addOption(profileOption())
    .option('--all', 'log out of every profile')
    .action(lazy(() => import('./commands/logout.js')));

  program
    .command('whoami')
    .description('show who the session belongs to and when it expires')
    .addOption(profileOption())
    .option('--json', 'print JSON')
    .action(lazy(() => import('./commands/whoami.js')));

  program
    .command('profiles')
    .description('list profiles (* marks the default), or change the default')
    .option('--json', 'print a JSON array')
    .option('--default <name>', 'make this profile the default')
    .action(lazy(() => import('./commands/profiles.js')));

  return program;
}

function reportError(ctx: Ctx, err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (and a suggestion for near misses).
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
    return EXIT_USAGE;
  }
  if (err instanceof KeysmithError) {
    ctx.stderr.write(`error: ${err.message}\n`);
    if (err.hint) ctx.stderr.write(`hint: ${err.hint}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  ctx.stderr.write(`error: unexpected failure: ${message}\n`);
  if (ctx.env.KEYSMITH_DEBUG && err instanceof Error && err.stack) ctx.stderr.write(err.stack + '\n');
  else ctx.stderr.write('hint: set KEYSMITH_DEBUG=1 for details\n');
  return EXIT_FAILURE;
}

/** Run keysmith with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[], ctx: Ctx = processContext()): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(ctx, err);
  }
}
