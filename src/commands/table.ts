/**
 * Every keysmith command, as data: name, arguments, options and the module that runs it.
 * Add new commands here. Both argument parsers read this table: src/argv.ts (node:util parseArgs,
 * used for ordinary invocations so start-up never loads commander) and src/program.ts (commander,
 * loaded for help, suggestions and usage errors). A command module exports
 * `run(...positionals, options, ctx)`.
 */
import { DIALECT_NAMES } from '../tokens/dialects/index.js';

export interface OptionSpec {
  /** Commander-style flags: '-k, --keychain <path>', '--json', '--no-qr'. */
  flags: string;
  description: string;
  choices?: readonly string[];
  default?: string;
  /** May be given more than once (`-H A -H B`): the command gets a string array. */
  multiple?: boolean;
}

export interface CommandModule {
  run: (...args: never[]) => Promise<void>;
}

export interface CommandSpec {
  name: string;
  description: string;
  /** Commander-style arguments: '<id>', '<id...>', '[url]'. */
  args?: Array<{ name: string; description: string }>;
  options: OptionSpec[];
  load: () => Promise<CommandModule>;
}

const keychain: OptionSpec = { flags: '-k, --keychain <path>', description: 'keychain or htpasswd file (default: $KEYSMITH_KEYCHAIN, else ./.wave-keychain)' };
const cost: OptionSpec = { flags: '--cost <n>', description: 'bcrypt cost, 4..31 (default: 10)' };
const profile: OptionSpec = { flags: '-p, --profile <name>', description: 'profile (default: $KEYSMITH_PROFILE, else the last login)' };
const timeout: OptionSpec = { flags: '--timeout <seconds>', description: 'give up on the server after this long (default: 30)' };
const secretOptions: OptionSpec[] = [
  { flags: '--bytes <n>', description: 'random bytes per secret (default: 32; at least 16)' },
  { flags: '--encoding <name>', description: 'hex, base64, base64url or alnum (default: hex)' },
  { flags: '--length <n>', description: 'characters, for --encoding alnum (default: 43, 256 bits)' },
  { flags: '--allow-weak', description: 'allow secrets of fewer than 128 bits' },
];

export const COMMANDS: CommandSpec[] = [
  // Keychains (H2O Wave access keys, htpasswd users)
  {
    name: 'create-access-key',
    description: 'create an access key (ID and secret) and add its bcrypt hash to the keychain',
    options: [
      keychain,
      { flags: '-n, --count <n>', description: 'how many keys to create in one write' },
      cost,
      { flags: '--json', description: 'print one JSON object per key: {"id","secret","keychain"}' },
    ],
    load: () => import('./create-access-key.js'),
  },
  {
    name: 'list-access-keys',
    description: 'list the IDs in the keychain, sorted',
    options: [keychain, { flags: '--json', description: 'print a JSON array of {"id","algorithm","cost"}' }],
    load: () => import('./list-access-keys.js'),
  },
  {
    name: 'remove-access-key',
    description: 'remove access keys; nothing is removed if any ID is unknown',
    args: [{ name: '<id...>', description: 'access key IDs' }],
    options: [keychain],
    load: () => import('./remove-access-key.js'),
  },
  {
    name: 'verify-access-key',
    description: 'check a secret against the keychain (stdin, $H2O_WAVE_ACCESS_KEY_SECRET or a prompt); exit 0 on match, 1 otherwise',
    args: [{ name: '<id>', description: 'access key ID (or htpasswd user)' }],
    options: [keychain],
    load: () => import('./verify-access-key.js'),
  },
  {
    name: 'rotate-access-key',
    description: 'replace an access key with a new one in one atomic write',
    args: [{ name: '<id>', description: 'access key ID to replace' }],
    options: [keychain, { flags: '--keep-old', description: 'keep the old key next to the new one' }, cost, { flags: '--json', description: 'print the new key as JSON' }],
    load: () => import('./rotate-access-key.js'),
  },
  {
    name: 'set-password',
    description: 'add or update an htpasswd user with a bcrypt hash (for nginx, Apache, Flask-HTTPAuth)',
    args: [{ name: '<user>', description: 'user name' }],
    options: [keychain, { flags: '--password-stdin', description: 'read the password from standard input' }, cost],
    load: () => import('./set-password.js'),
  },

  // Secrets: random secrets, and rotation of signing-key lists in YAML configs and env files.
  {
    name: 'generate-secret',
    description: 'print a random secret (default: 32 bytes as hex, like `openssl rand -hex 32`)',
    options: [
      ...secretOptions,
      { flags: '-n, --count <n>', description: 'print this many distinct secrets, one per line' },
      { flags: '--json', description: 'print one JSON object per secret: {"secret","encoding","bits"}' },
    ],
    load: () => import('./generate-secret.js'),
  },
  {
    name: 'rotate-secret',
    description: 'put a new signing key first in a list in a YAML config or env file, keeping the previous ones',
    args: [{ name: '<file>', description: 'YAML file (.yml, .yaml) or env file (.env, .env.*, *.env)' }],
    options: [
      { flags: '--key <path>', description: 'YAML: dotted path of the list (default: authentication.secret_keys)' },
      { flags: '--var <name>', description: 'env file: variable holding the list (default: TILED_SERVER_SECRET_KEYS)' },
      { flags: '--format <format>', description: 'yaml or env (default: from the file name)' },
      { flags: '--keep <n>', description: 'keys to keep, the new one included (default: 2)' },
      ...secretOptions,
      { flags: '--dry-run', description: 'print a diff with the keys hidden, and write nothing' },
      { flags: '--print', description: 'print the new key on stdout' },
    ],
    load: () => import('./rotate-secret.js'),
  },

  // Tokens: log in once, then `keysmith token` hands scripts a valid access token.
  {
    name: 'login',
    description: 'log in to a server and save the session (password from --password-stdin, $KEYSMITH_PASSWORD or a prompt)',
    args: [{ name: '[url]', description: "server URL (default: the profile's URL)" }],
    options: [
      profile,
      { flags: '--dialect <dialect>', description: 'server kind', choices: ['auto', ...DIALECT_NAMES], default: 'auto' },
      { flags: '--provider <name>', description: 'Tiled authentication provider (external providers log in with the device flow)' },
      {
        flags: '--flow <flow>',
        description: 'password (tiled, basic-login, wavemaker), device (oauth2 default, Tiled external providers, basic-login /authorize) or client-credentials (oauth2)',
        choices: ['device', 'client-credentials', 'password'],
      },
      { flags: '--client-id <id>', description: 'OAuth 2.0 client ID' },
      { flags: '--client-secret-stdin', description: 'read the OAuth 2.0 client secret from standard input (else $KEYSMITH_CLIENT_SECRET)' },
      { flags: '--scope <scopes>', description: 'OAuth 2.0 scopes, space-separated (device flow default: openid offline_access, where offered)' },
      { flags: '--no-qr', description: 'device flow: do not draw a QR code of the address' },
      { flags: '--json', description: 'device flow: also write the codes to stderr as one JSON line' },
      { flags: '-u, --username <name>', description: 'user name (default: $KEYSMITH_USERNAME, else a prompt)' },
      { flags: '--password-stdin', description: 'read the password from standard input' },
      { flags: '--cacert <file>', description: 'trust the CA certificates in this PEM file' },
      { flags: '--token-ttl <seconds>', description: 'WaveMaker: token lifetime configured on the server (default: 1800)' },
      timeout,
    ],
    load: () => import('./login.js'),
  },
  {
    name: 'token',
    description: 'print a valid access token, refreshing it first when it is about to expire',
    options: [
      profile,
      { flags: '--header', description: 'print the whole HTTP header line, e.g. "Authorization: Bearer ..."' },
      { flags: '--json', description: 'print {"token","type","expires_at","expires_in","profile"}' },
      { flags: '--min-ttl <seconds>', description: 'refresh when the token expires within this many seconds (default: 60, at most half its lifetime)' },
      timeout,
    ],
    load: () => import('./token.js'),
  },
  {
    name: 'refresh',
    description: 'refresh the session now',
    options: [profile, timeout],
    load: () => import('./refresh.js'),
  },
  {
    name: 'logout',
    description: 'revoke the session on the server (where it can be) and delete it locally',
    options: [profile, { flags: '--all', description: 'log out of every profile' }],
    load: () => import('./logout.js'),
  },
  {
    name: 'whoami',
    description: 'show who the session belongs to and when it expires',
    options: [profile, { flags: '--json', description: 'print JSON' }],
    load: () => import('./whoami.js'),
  },
  {
    name: 'inspect-token',
    description: "decode a JWT (header, claims, expiry); with --secret-file, verify HS256 against every key in a rotation list",
    args: [{ name: '[token]', description: "the token, or - for standard input (default: piped stdin, else the profile's token)" }],
    options: [
      { flags: '--secret-file <file>', description: 'YAML config, env file or one key per line: the keys to verify the signature with' },
      { flags: '--json', description: 'print {"header","claims","expires_at","expired","verified","key_index"}' },
      profile,
    ],
    load: () => import('./inspect-token.js'),
  },
  {
    name: 'profiles',
    description: 'list profiles (* marks the default), or change the default',
    options: [{ flags: '--json', description: 'print a JSON array' }, { flags: '--default <name>', description: 'make this profile the default' }],
    load: () => import('./profiles.js'),
  },
];

/** Parsed flags: '-k, --keychain <path>' → { short: 'k', long: 'keychain', key: 'keychain', takesValue: true }. */
export function parseFlags(flags: string): { short?: string; long: string; key: string; takesValue: boolean; negate: boolean } {
  const m = /^(?:-([A-Za-z]), )?--([a-z0-9-]+)(?: <[^>]+>)?$/.exec(flags);
  if (!m) throw new Error(`bad option flags in command table: ${flags}`);
  const long = m[2]!;
  const negate = long.startsWith('no-');
  const name = negate ? long.slice(3) : long;
  return { short: m[1], long, key: name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase()), takesValue: flags.includes('<'), negate };
}
