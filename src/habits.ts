/**
 * Habits from the tools keysmith replaces: docker's `login -p`, openssl's `rand -hex 32`,
 * htpasswd's `-c`/`-b` and `FILE USER` order, waved's `-create-access-key`. Each gets one error
 * line and, in a `hint:` line, the keysmith command that does what was meant. Passwords typed on
 * the command line are never repeated in either line.
 *
 * Only src/program.ts loads this, when the fast parser has declined the command line, so
 * ordinary invocations never pay for it.
 */
import { COMMANDS, parseFlags, type CommandSpec } from './commands/table.js';
import { UsageError } from './io/errors.js';
import { commandLine } from './io/words.js';

/** How a password goes in instead: from a variable, through standard input. */
const PIPE_PASSWORD = `printf '%s\\n' "$PASSWORD" | `;

/** The error for a habit in `argv` (keysmith's arguments), or undefined when there is none. */
export function habit(argv: readonly string[]): UsageError | undefined {
  const spec = COMMANDS.find((c) => c.name === argv[0]);
  if (!spec) return wavedSpelling(argv);
  switch (spec.name) {
    case 'login':
      return dockerPassword(spec, argv);
    case 'set-password':
      return htpasswdSpelling(spec, argv);
    case 'generate-secret':
      return opensslSpelling(spec, argv);
    default:
      return undefined;
  }
}

/** Whether `arg` is one of the command's options, and whether it takes a value from the next argument. */
function option(spec: CommandSpec, arg: string): { known: boolean; takesNext: boolean } {
  const [name] = arg.split('=', 1) as [string];
  for (const o of spec.options) {
    const f = parseFlags(o.flags);
    if (name === `--${f.long}` || (f.short !== undefined && name === `-${f.short}`)) return { known: true, takesNext: f.takesValue && !arg.includes('=') };
    if (f.short !== undefined && f.takesValue && arg.startsWith(`-${f.short}`) && !arg.startsWith('--')) return { known: true, takesNext: false };
  }
  return { known: false, takesNext: false };
}

/** waved's flags: `waved -create-access-key`, `-list-access-keys`, `-access-keychain FILE`. */
function wavedSpelling(argv: readonly string[]): UsageError | undefined {
  const at = argv.findIndex((a) => /^--?[a-z-]+$/.test(a) && COMMANDS.some((c) => c.name === a.replace(/^--?/, '')));
  if (at === -1) return undefined;
  const name = argv[at]!.replace(/^--?/, '');
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (i === at) continue;
    const keychain = /^--?access-keychain(?:=(.*))?$/.exec(argv[i]!);
    if (keychain) rest.push('-k', keychain[1] ?? argv[++i] ?? 'FILE');
    else rest.push(argv[i]!);
  }
  return new UsageError(`keysmith commands are words, not flags: ${argv[at]} is waved's spelling`, commandLine([name, ...rest]));
}

/** docker's `login -u alice -p secret`: login has no -p, and never takes a password in argv. */
function dockerPassword(spec: CommandSpec, argv: readonly string[]): UsageError | undefined {
  const kept: string[] = [];
  let found: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      kept.push(...argv.slice(i));
      break;
    }
    if (a === '-p' || a === '--password') {
      found ??= a;
      i++; // the password itself: never repeated
    } else if (/^-p./.test(a) || a.startsWith('--password=')) found ??= a.startsWith('--') ? '--password' : '-p';
    else {
      kept.push(a);
      if (option(spec, a).takesNext && i + 1 < argv.length) kept.push(argv[++i]!);
    }
  }
  if (!found) return undefined;
  if (!kept.includes('--password-stdin')) kept.push('--password-stdin');
  return new UsageError(
    `login takes no ${found}: a password on the command line shows in ps and stays in your shell history`,
    `passwords come from --password-stdin or $KEYSMITH_PASSWORD (a profile is --profile NAME): ${PIPE_PASSWORD}${commandLine(['login', ...kept])}`,
  );
}

/**
 * htpasswd's habits: `htpasswd [-c] [-B] [-C COST] FILE USER`, `htpasswd -b FILE USER PASSWORD`,
 * `-i` (password from stdin), `-D` (delete) and `-v` (verify).
 */
function htpasswdSpelling(spec: CommandSpec, argv: readonly string[]): UsageError | undefined {
  const kept: string[] = [];
  const positionals: string[] = [];
  const letters = new Set<string>();
  let keychain: string | undefined;
  let cost: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const o = option(spec, a);
    if (o.known) {
      const value = o.takesNext ? argv[++i] : undefined;
      if (/^(-k|--keychain)(=|$)/.test(a) || /^-k./.test(a)) keychain = value ?? a.replace(/^(-k|--keychain=)/, '');
      else kept.push(a, ...(value === undefined ? [] : [value]));
    } else if (/^-[bcBCiDv]+$/.test(a)) {
      for (const letter of a.slice(1)) letters.add(letter);
      if (a.endsWith('C')) cost = argv[++i];
    } else if (a.startsWith('-')) return undefined; // an unknown flag: commander's message fits
    else positionals.push(a);
  }
  const fileFirst = keychain === undefined && positionals.length >= 2;
  const file = keychain ?? (fileFirst ? positionals.shift()! : 'FILE');
  const user = positionals.shift() ?? 'USER';
  const passwordInArgv = letters.has('b') || positionals.length > 0;
  if (letters.size === 0 && !fileFirst && !passwordInArgv) return undefined;
  if (cost !== undefined) kept.push('--cost', cost);
  const target = ['-k', file, user];
  if (letters.has('D')) {
    return new UsageError('keysmith removes htpasswd users with remove-access-key (htpasswd -D)', commandLine(['remove-access-key', ...target]));
  }
  if (letters.has('v')) {
    return new UsageError('keysmith checks htpasswd passwords with verify-access-key (htpasswd -v)',
      `${passwordInArgv ? PIPE_PASSWORD : ''}${commandLine(['verify-access-key', ...target])}`);
  }
  const fromStdin = passwordInArgv || letters.has('i') || kept.includes('--password-stdin');
  const command = commandLine(['set-password', ...target, ...kept.filter((a) => a !== '--password-stdin'), ...(fromStdin ? ['--password-stdin'] : [])]);
  const why = passwordInArgv ? 'set-password takes no password on the command line (htpasswd -b): it would show in ps and stay in your shell history'
    : fileFirst ? 'set-password takes the file with -k FILE, then the user (htpasswd takes FILE USER)'
    : letters.has('c') ? 'set-password needs no -c: it creates the file when it is missing'
    : letters.has('B') ? 'set-password needs no -B: keysmith always writes bcrypt'
    : letters.has('C') ? 'set-password takes the bcrypt cost as --cost N (htpasswd -C N)'
    : 'set-password reads the password from standard input with --password-stdin (htpasswd -i)';
  return new UsageError(why, `${passwordInArgv ? PIPE_PASSWORD : ''}${command}`);
}

/** openssl's `rand -hex 32` and `-base64 32`: the encoding and the byte count as keysmith spells them. */
function opensslSpelling(spec: CommandSpec, argv: readonly string[]): UsageError | undefined {
  const rewritten: string[] = [];
  let why: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const encoding = /^--?(hex|base64|base64url|alnum)$/.exec(a)?.[1];
    if (encoding) {
      rewritten.push('--encoding', encoding);
      why ??= `generate-secret takes --encoding ${encoding}, not ${a} (openssl rand's spelling)`;
    } else if (/^\d+$/.test(a)) {
      rewritten.push('--bytes', a);
      why ??= `generate-secret takes the number of random bytes as --bytes ${a}`;
    } else {
      rewritten.push(a);
      if (option(spec, a).takesNext && i + 1 < argv.length) rewritten.push(argv[++i]!);
    }
  }
  return why ? new UsageError(why, commandLine(['generate-secret', ...rewritten])) : undefined;
}
