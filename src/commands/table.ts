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
  /** What shell completion offers for the value (`choices` are offered without it). */
  values?: CompletionValues;
}

/**
 * Values shell completion offers: a fixed list, file names, profile names (read from the profile
 * store when completing), group names, or keysmith's command names. Never enforced by the parsers.
 */
export type CompletionValues = readonly string[] | 'file' | 'profile' | 'group' | 'command';

export interface CommandModule {
  run: (...args: never[]) => Promise<void>;
}

export interface CommandSpec {
  name: string;
  description: string;
  /** Commander-style arguments: '<id>', '<id...>', '[url]'. */
  args?: Array<{ name: string; description: string; values?: CompletionValues }>;
  options: OptionSpec[];
  load: () => Promise<CommandModule>;
}

const keychain: OptionSpec = {
  flags: '-k, --keychain <path>',
  description: 'keychain or htpasswd file, or etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds:// for TLS) (default: $KEYSMITH_KEYCHAIN, else ./.wave-keychain)',
};
/** How keychains on etcd are reached (-k etcd://...): every keychain command takes these. */
export const etcdOptions: OptionSpec[] = [
  { flags: '--timeout <seconds>', description: 'etcd: give up after this long (default: 10)' },
  { flags: '--etcd-cacert <file>', description: 'etcds://: trust the CA certificates in this PEM file (default: the system\'s)', values: 'file' },
  { flags: '--etcd-cert <file>', description: 'etcds://: client certificate (PEM), with --etcd-key', values: 'file' },
  { flags: '--etcd-key <file>', description: "etcds://: the client certificate's private key (PEM)", values: 'file' },
  { flags: '--etcd-user <name>', description: 'etcd user (default: $KEYSMITH_ETCD_USER); password from $KEYSMITH_ETCD_PASSWORD or --etcd-password-stdin' },
  { flags: '--etcd-password-stdin', description: "read the etcd user's password from standard input" },
];
const cost: OptionSpec = { flags: '--cost <n>', description: 'bcrypt cost, 4..31 (default: 10)' };
const profile: OptionSpec = { flags: '-p, --profile <name>', description: 'profile (default: $KEYSMITH_PROFILE, else the last login)', values: 'profile' };
const timeout: OptionSpec = { flags: '--timeout <seconds>', description: 'give up on the server after this long (default: 30)' };
const secretOptions: OptionSpec[] = [
  { flags: '--bytes <n>', description: 'random bytes per secret (default: 32; at least 16)' },
  { flags: '--encoding <name>', description: 'hex, base64, base64url or alnum (default: hex)', values: ['hex', 'base64', 'base64url', 'alnum'] },
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
      { flags: '--export', description: 'print `export H2O_WAVE_ACCESS_KEY_ID=...` lines, for eval "$(keysmith create-access-key --export)"' },
      ...etcdOptions,
    ],
    load: () => import('./create-access-key.js'),
  },
  {
    name: 'list-access-keys',
    description: 'list the IDs in the keychain, sorted',
    options: [keychain, { flags: '--json', description: 'print a JSON array of {"id","algorithm","cost"}' }, ...etcdOptions],
    load: () => import('./list-access-keys.js'),
  },
  {
    name: 'remove-access-key',
    description: 'remove access keys; nothing is removed if any ID is unknown',
    args: [{ name: '<id...>', description: 'access key IDs' }],
    options: [keychain, ...etcdOptions],
    load: () => import('./remove-access-key.js'),
  },
  {
    name: 'verify-access-key',
    description: 'check a secret against the keychain (stdin, $H2O_WAVE_ACCESS_KEY_SECRET or a prompt); exit 0 on match, 1 otherwise',
    args: [{ name: '<id>', description: 'access key ID (or htpasswd user)' }],
    options: [keychain, ...etcdOptions],
    load: () => import('./verify-access-key.js'),
  },
  {
    name: 'rotate-access-key',
    description: 'replace an access key with a new one in one atomic write',
    args: [{ name: '<id>', description: 'access key ID to replace' }],
    options: [
      keychain,
      { flags: '--keep-old', description: 'keep the old key next to the new one' },
      cost,
      { flags: '--json', description: 'print the new key as JSON' },
      { flags: '--export', description: 'print `export H2O_WAVE_ACCESS_KEY_ID=...` lines, for eval' },
      ...etcdOptions,
    ],
    load: () => import('./rotate-access-key.js'),
  },
  {
    name: 'set-password',
    description: 'add or update an htpasswd user with a bcrypt hash (for nginx, Apache, Flask-HTTPAuth)',
    args: [{ name: '<user>', description: 'user name' }],
    options: [
      keychain,
      { flags: '--password-stdin', description: 'read the password from standard input' },
      cost,
      { flags: '--group <group>', description: "give the file to this group, which may read it (a web server's: www-data for nginx and Apache on Debian); mode 0640", values: 'group' },
      { flags: '--mode <mode>', description: 'set the mode, in octal, never readable by others (default: kept; a new file 0600, or 0640 with --group)', values: ['0600', '0640'] },
      ...etcdOptions,
    ],
    load: () => import('./set-password.js'),
  },
  {
    name: 'sync',
    description: 'keep a keychain file in step with a keychain on etcd (--watch to follow it), or import a file into etcd',
    options: [
      { flags: '--from <location>', description: 'etcd://HOST:PORT[,...]/PREFIX to write a file from, or a keychain file to import', values: 'file' },
      { flags: '--to <location>', description: 'the keychain file to write (what the Wave server reads), or etcd://... to import into', values: 'file' },
      { flags: '--watch', description: 'etcd → file: keep following etcd and rewrite the file after each burst of changes, until SIGTERM' },
      { flags: '--exec <command>', description: 'etcd → file: run this shell command (/bin/sh -c) after each write, e.g. "systemctl restart waved"' },
      { flags: '--force', description: 'file → etcd: replace entries whose hash on etcd differs from the file' },
      { flags: '--dry-run', description: 'print what would change (add|replace|remove|conflict ID lines) and write nothing' },
      { flags: '--json', description: 'print JSON: the dry run, or one object per write' },
      ...etcdOptions,
    ],
    load: () => import('./sync.js'),
  },
  {
    name: 'export-keychain',
    description: 'print the keychain as a Kubernetes Secret manifest, for kubectl apply -f -',
    options: [
      keychain,
      { flags: '--format <format>', description: 'output format', choices: ['k8s-secret'] },
      { flags: '--name <name>', description: 'the Secret\'s name' },
      { flags: '--namespace <namespace>', description: 'the Secret\'s namespace (default: none, kubectl\'s current one)' },
      { flags: '--file-key <key>', description: 'the data key, i.e. the file name where the Secret is mounted (default: .wave-keychain)' },
      ...etcdOptions,
    ],
    load: () => import('./export-keychain.js'),
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
    args: [{ name: '<file>', description: 'YAML file (.yml, .yaml) or env file (.env, .env.*, *.env)', values: 'file' }],
    options: [
      { flags: '--key <path>', description: 'YAML: dotted path of the list (default: authentication.secret_keys)' },
      { flags: '--var <name>', description: 'env file: variable holding the list (default: TILED_SERVER_SECRET_KEYS)' },
      { flags: '--format <format>', description: 'yaml or env (default: from the file name)', values: ['yaml', 'env'] },
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
      // No -p: docker's `login -u alice -p secret` must not name a profile `secret` (src/habits.ts).
      { ...profile, flags: '--profile <name>' },
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
      { flags: '--api-key-stdin', description: 'apikey: read the API key from standard input (else $KEYSMITH_API_KEY, else a prompt)' },
      { flags: '--api-key-in <where>', description: 'apikey: send the key in a header or as a query parameter (default: header)', choices: ['header', 'query'] },
      { flags: '--api-key-name <name>', description: 'apikey: header or query parameter name (default: Authorization, or api_key for --api-key-in query)' },
      { flags: '--api-key-scheme <scheme>', description: 'apikey: word before the key in the header, e.g. Bearer, Token; none for the bare key (default: Apikey for Authorization, else none)' },
      { flags: '--access-key-stdin', description: 'wave: read the access key ID and secret from standard input, e.g. piped from `keysmith create-access-key` (else $H2O_WAVE_ACCESS_KEY_ID and _SECRET)' },
      { flags: '--cacert <file>', description: 'trust the CA certificates in this PEM file' },
      { flags: '--token-ttl <seconds>', description: 'WaveMaker: token lifetime configured on the server (default: 1800)' },
      { flags: '--storage <where>', description: 'keep refresh tokens, client secrets and static credentials in the OS keyring or the 0600 session file (default: the keyring when one answers)', choices: ['keyring', 'file'] },
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
    name: 'api',
    description: "make one HTTP request with the profile's credentials (like gh api); the answer's body goes to stdout, exit 1 for HTTP status >= 400",
    args: [{ name: '<path-or-url>', description: "a path under the profile's URL (/api/v1/...), or a URL on the profile's server" }],
    options: [
      profile,
      { flags: '-X, --method <method>', description: 'HTTP method (default: GET, or POST with -d)' },
      { flags: '-H, --header <line>', description: "add a header, 'Name: value' (repeatable; replaces keysmith's own of that name)", multiple: true },
      { flags: '-d, --data <data>', description: 'request body: DATA, @FILE, or @- for standard input' },
      { flags: '--json-body', description: 'the body is JSON: check it and send Content-Type: application/json' },
      { flags: '-i, --include', description: 'print the status line and headers before the body' },
      { flags: '--silent', description: 'print nothing on stdout (the exit code and stderr still tell)' },
      { flags: '--no-auth', description: 'send no credentials (also lets a URL on another server through)' },
      timeout,
    ],
    load: () => import('./api.js'),
  },
  {
    name: 'exec',
    description: "run a command with the profile's credentials in its environment (KEYSMITH_TOKEN, KEYSMITH_TOKEN_FILE kept fresh, ...); exits with its code",
    args: [{ name: '<command...>', description: 'the command and its arguments, after --' }],
    options: [
      profile,
      { flags: '--env <name=field>', description: 'set NAME to FIELD (token, header, token_file, username, password, id, secret, param, url, profile) instead of its default name; repeatable', multiple: true },
      { flags: '--min-ttl <seconds>', description: 'refresh when the token expires within this many seconds (default: 60, at most half its lifetime)' },
      timeout,
    ],
    load: () => import('./exec.js'),
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

  // Other tools' credential protocols (git, kubectl), and Tiled API keys.
  {
    name: 'git-credential',
    description: "git credential helper: `get` answers with the token (or static credential) of the profile matching git's URL; store and erase are ignored",
    // No choices: git may add actions, and a helper must ignore the ones it does not know.
    args: [{ name: '<action>', description: 'get, store or erase (git appends it)', values: ['get', 'store', 'erase'] }],
    options: [
      { flags: '-p, --profile <name>', description: "answer only for this profile (and still only for its own protocol, host and port)", values: 'profile' },
      timeout,
    ],
    load: () => import('./git-credential.js'),
  },
  {
    name: 'kube-credential',
    description: 'kubectl exec plugin: print an ExecCredential with a valid token (client.authentication.k8s.io/v1, or v1beta1 when kubectl asks)',
    options: [
      profile,
      { flags: '--min-ttl <seconds>', description: 'refresh when the token expires within this many seconds (default: 60, at most half its lifetime)' },
      timeout,
    ],
    load: () => import('./kube-credential.js'),
  },
  {
    name: 'api-key',
    description: 'Tiled API keys: create one (the secret is printed once, or saved as a profile), list them, or revoke one',
    args: [
      { name: '<action>', description: 'create, list or revoke', values: ['create', 'list', 'revoke'] },
      { name: '[first-eight]', description: 'revoke: the first 8 characters of the key (see api-key list)' },
    ],
    options: [
      profile,
      { flags: '--expires-in <seconds>', description: 'create: the key expires after this many seconds (default: never)' },
      { flags: '--scopes <scopes>', description: 'create: scopes, comma-separated or repeated (default: inherit the user\'s)', multiple: true },
      { flags: '--note <text>', description: 'create: a note stored with the key' },
      { flags: '--save-profile <name>', description: 'create: save the key as an API-key profile of this name instead of printing it' },
      { flags: '--json', description: 'create: print the key as JSON; list: print a JSON array' },
      timeout,
    ],
    load: () => import('./api-key.js'),
  },
  {
    name: 'profiles',
    description: 'list profiles (* marks the default), change the default, or delete one',
    options: [
      { flags: '--json', description: 'print a JSON array' },
      { flags: '--names', description: 'print only the names, one per line' },
      { flags: '--default <name>', description: 'make this profile the default', values: 'profile' },
      { flags: '--delete <name>', description: 'log out of this profile (revoking where the server can) and delete it', values: 'profile' },
    ],
    load: () => import('./profiles.js'),
  },

  // The shell around keysmith.
  {
    name: 'completion',
    description: 'print a completion script for bash, zsh or fish (see README: Shell completion)',
    args: [{ name: '<shell>', description: 'bash, zsh or fish', values: ['bash', 'zsh', 'fish'] }],
    options: [],
    load: () => import('./completion.js'),
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
