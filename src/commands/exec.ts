/**
 * `keysmith exec [--profile P] [--env NAME=FIELD ...] -- CMD [ARGS...]`: run CMD with the
 * profile's credentials in its environment, like `op run` and `aws-vault exec`. keysmith starts
 * once per job instead of once per request, and a long-running child stays authenticated through
 * the token file (src/tokens/token-file.ts). The child's stdin, stdout and stderr are keysmith's
 * own (a terminal stays a terminal); SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on; keysmith
 * exits with the child's code, 128+N when a signal N killed it, and 127/126 when CMD is not found
 * or cannot be run, as shells do. Credentials travel in the environment only, never in argv.
 */
import { readFileSync } from 'node:fs';
import type { ChildLike, Ctx } from '../io/context.js';
import { ExitCode, KeysmithError, UsageError } from '../io/errors.js';
import { printable } from '../io/escape.js';
import { checkSession, headerLine, staticCredentials } from '../tokens/dialect.js';
import { DEFAULT_MIN_TTL_SECONDS } from '../tokens/policy.js';
import { currentSession } from '../tokens/session.js';
import { resolveProfile, type Profile, type Session } from '../tokens/store.js';
import type { Refresher, TokenFile } from '../tokens/token-file.js';
import { parseSeconds } from './token.js';

export interface ExecOptions {
  profile?: string;
  env?: string[];
  minTtl?: string;
  timeout?: string;
}

/** What `--env NAME=FIELD` can name. */
export type Field = 'token' | 'header' | 'token_file' | 'param' | 'username' | 'password' | 'id' | 'secret' | 'url' | 'profile';

interface Kind {
  /** The fields a profile of this kind has, in the order the help lists them. */
  fields: readonly Field[];
  /** Variables set when --env does not rename them: NAME → field. */
  env: Readonly<Record<string, Field>>;
}

/** Set for every kind of profile. */
const ALWAYS: Readonly<Record<string, Field>> = { KEYSMITH_PROFILE: 'profile', KEYSMITH_URL: 'url' };

/**
 * The one table of what a child gets, per kind of profile. Token dialects (tiled, basic-login,
 * oauth2, wavemaker) and header API keys: the token and its header line; token dialects also the
 * token file. Basic and Digest: the user and password; Wave: the access key pair under the names
 * Wave apps read.
 */
export const KINDS = {
  token: {
    fields: ['token', 'header', 'token_file', 'username', 'url', 'profile'],
    env: { KEYSMITH_TOKEN: 'token', KEYSMITH_AUTH_HEADER: 'header', KEYSMITH_TOKEN_FILE: 'token_file' },
  },
  'apikey-header': {
    fields: ['token', 'header', 'token_file', 'url', 'profile'],
    env: { KEYSMITH_TOKEN: 'token', KEYSMITH_AUTH_HEADER: 'header' },
  },
  'apikey-query': {
    fields: ['token', 'param', 'token_file', 'url', 'profile'],
    env: { KEYSMITH_TOKEN: 'token', KEYSMITH_API_KEY_PARAM: 'param' },
  },
  basic: {
    fields: ['username', 'password', 'header', 'url', 'profile'],
    env: { KEYSMITH_USERNAME: 'username', KEYSMITH_PASSWORD: 'password' },
  },
  digest: {
    fields: ['username', 'password', 'url', 'profile'],
    env: { KEYSMITH_USERNAME: 'username', KEYSMITH_PASSWORD: 'password' },
  },
  wave: {
    fields: ['id', 'secret', 'username', 'password', 'header', 'url', 'profile'],
    env: { H2O_WAVE_ACCESS_KEY_ID: 'id', H2O_WAVE_ACCESS_KEY_SECRET: 'secret' },
  },
} as const satisfies Record<string, Kind>;

export type KindName = keyof typeof KINDS;

export function kindOf(profile: Profile): KindName {
  switch (profile.dialect) {
    case 'apikey':
      return profile.apiKey?.in === 'query' ? 'apikey-query' : 'apikey-header';
    case 'basic':
    case 'digest':
    case 'wave':
      return profile.dialect;
    default:
      return 'token';
  }
}

/** The fields this profile has (a token dialect's `username` only where the profile knows it). */
function fieldsOf(profile: Profile, kind: KindName): readonly Field[] {
  const fields: readonly Field[] = KINDS[kind].fields;
  return kind === 'token' && !profile.username ? fields.filter((f) => f !== 'username') : fields;
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The child's variables, NAME → field: the kind's defaults and KEYSMITH_PROFILE/KEYSMITH_URL,
 * except those whose field an `--env NAME=FIELD` maps (that renames it), plus every --env.
 */
export function variablesFor(profile: Profile, given: readonly string[]): Map<string, Field> {
  const kind = kindOf(profile);
  const fields = fieldsOf(profile, kind);
  const explicit = new Map<string, Field>();
  for (const spec of given) {
    const eq = spec.indexOf('=');
    const name = eq < 0 ? spec : spec.slice(0, eq);
    const field = eq < 0 ? '' : spec.slice(eq + 1);
    if (!SHELL_NAME.test(name)) {
      throw new UsageError(`--env ${printable(JSON.stringify(spec), 80)}: expected NAME=FIELD with NAME a shell variable name (letters, digits, _; not starting with a digit)`);
    }
    if (!(fields as readonly string[]).includes(field)) {
      const which = `profile ${profile.name} (${profile.dialect}) has the fields ${fields.join(', ')}`;
      throw new UsageError(eq < 0 || field === '' ? `--env ${name}: expected NAME=FIELD; ${which}` : `--env ${name}=${printable(field, 40)}: no such field; ${which}`);
    }
    if (explicit.has(name)) throw new UsageError(`--env ${name} is given twice`);
    explicit.set(name, field as Field);
  }
  const renamed = new Set(explicit.values());
  const variables = new Map<string, Field>();
  for (const [name, field] of Object.entries({ ...KINDS[kind].env, ...ALWAYS })) if (!renamed.has(field)) variables.set(name, field);
  for (const [name, field] of explicit) variables.set(name, field);
  return variables;
}

/** The value of each field but `token_file` (which exists once the file does). */
function fieldValue(field: Exclude<Field, 'token_file'>, profile: Profile, session: Session): string {
  switch (field) {
    case 'token':
      return session.accessToken;
    case 'header': {
      const [name, value] = headerLine(profile, session);
      return `${name}: ${value}`;
    }
    case 'param':
      return profile.apiKey?.name ?? 'api_key';
    case 'username':
    case 'id':
      return profile.dialect === 'basic' || profile.dialect === 'digest' || profile.dialect === 'wave' ? staticCredentials(session).username : (profile.username ?? '');
    case 'password':
    case 'secret':
      return staticCredentials(session).password;
    case 'url':
      return profile.url;
    case 'profile':
      return profile.name;
  }
}

/**
 * On Linux: true when a keyboard signal (Ctrl-C, Ctrl-\) has reached the child already, because
 * the terminal sends it to its whole foreground process group, and that is ours and the child's.
 * Passing it on as well would deliver it twice (a REPL or "press Ctrl-C again to quit" would act
 * on both). Elsewhere, or when /proc cannot tell, false: the signal is passed on.
 */
function terminalDelivered(childPid: number | undefined): boolean {
  if (childPid === undefined) return false;
  const self = procStat('self');
  const child = procStat(String(childPid));
  return self !== undefined && child !== undefined && self.tpgid === self.pgrp && child.pgrp === self.pgrp;
}

/** Process group and the terminal's foreground process group, from /proc/PID/stat. */
function procStat(pid: string): { pgrp: number; tpgid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const tpgid = Number(fields[5]);
    return Number.isInteger(pgrp) && Number.isInteger(tpgid) && pgrp > 0 ? { pgrp, tpgid } : undefined;
  } catch {
    return undefined;
  }
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
const KEYBOARD: ReadonlySet<NodeJS.Signals> = new Set(['SIGINT', 'SIGQUIT']);

async function signalNumber(signal: NodeJS.Signals): Promise<number> {
  const { constants } = await import('node:os');
  return constants.signals[signal] ?? 0;
}

/** Why the child could not be started, as a shell says it, and the shell's exit code. */
function spawnFailure(command: string, err: NodeJS.ErrnoException): KeysmithError {
  const name = printable(command, 200);
  if (err.code === 'ENOENT') return new KeysmithError(command.includes('/') ? `${name}: no such file` : `${name}: command not found`, 127);
  if (err.code === 'EACCES') return new KeysmithError(`${name}: permission denied (not an executable file)`, 126);
  return new KeysmithError(`cannot run ${name}: ${err.message}`, 126);
}

type Outcome = { code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException };

export async function run(command: string[], opts: ExecOptions, ctx: Ctx): Promise<void> {
  const [program, ...args] = command;
  if (program === undefined || program === '') throw new UsageError('exec needs a command to run: keysmith exec [options] -- CMD [ARGS...]');
  const minTtl = parseSeconds(opts.minTtl, '--min-ttl', DEFAULT_MIN_TTL_SECONDS);
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  if (!ctx.spawn) throw new KeysmithError('this keysmith cannot start programs');
  const profile = await resolveProfile(ctx, opts.profile);
  const variables = variablesFor(profile, opts.env ?? []);
  // Checked like `token` checks it: no token with a line break reaches KEYSMITH_AUTH_HEADER.
  const session = checkSession(await currentSession(ctx, profile, { minTtl, timeout }), 'exec');

  const env: Record<string, string | undefined> = { ...ctx.env };
  let wantsFile = false;
  for (const [name, field] of variables) {
    if (field === 'token_file') {
      wantsFile = true;
      continue;
    }
    const value = fieldValue(field, profile, session);
    if (value.includes('\0')) throw new KeysmithError(`the ${field} of profile ${profile.name} contains a NUL character, which an environment variable cannot hold`);
    env[name] = value;
  }

  // From here on, signals are ours to pass on; one that comes before the child exists ends
  // keysmith after cleaning up, as it would have without a handler.
  let child: ChildLike | undefined;
  let early: NodeJS.Signals | undefined;
  const stopListening = ctx.onSignal?.(FORWARDED, (signal) => {
    if (!child) early ??= signal;
    else if (!(KEYBOARD.has(signal) && terminalDelivered(child.pid))) child.kill(signal);
  });
  let file: TokenFile | undefined;
  let refresher: Refresher | undefined;
  let keepFresh: (() => Refresher) | undefined;
  try {
    if (wantsFile) {
      const tokens = await import('../tokens/token-file.js');
      const made = tokens.createTokenFile(ctx, profile.name, session.accessToken);
      file = made;
      for (const [name, field] of variables) if (field === 'token_file') env[name] = made.path;
      // The token is fresh (currentSession saw to that): refreshing can start once the child has.
      keepFresh = () => tokens.keepTokenFresh(ctx, profile, session, made, { minTtl, timeout });
    }
    if (early) throw new ExitCode(128 + (await signalNumber(early)));
    let outcome: Outcome;
    try {
      outcome = await new Promise<Outcome>((resolve) => {
        const started = ctx.spawn!(program, args, { env, stdio: 'inherit' });
        child = started;
        refresher = keepFresh?.();
        // 'error' after a successful start (a kill that failed) is not the end of the child.
        started.on('error', (error) => {
          if (started.pid === undefined) resolve({ error });
        });
        started.on('exit', (code, signal) => resolve({ code, signal }));
      });
    } catch (err) {
      // spawn() itself threw (arguments it refuses); nothing was started.
      throw new KeysmithError(`cannot run ${printable(program, 200)}: ${(err as Error).message}`, 126);
    }
    if ('error' in outcome) throw spawnFailure(program, outcome.error);
    const code = outcome.code ?? 128 + (outcome.signal ? await signalNumber(outcome.signal) : 0);
    if (code !== 0) throw new ExitCode(code);
  } finally {
    await refresher?.stop();
    file?.remove();
    stopListening?.();
  }
}
