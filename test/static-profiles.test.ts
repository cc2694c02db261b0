/**
 * Static-credential profiles end to end, through the built binary: `login --dialect apikey |
 * basic | digest | wave` keeps the credential without asking any server, and `token`,
 * `token --header`, `token --json` and `whoami` give what each dialect has. Secrets come from
 * stdin or the environment, never argv, and never show up in output or in profiles.json.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keysmith, oneErrorLine, type RunResult } from './helpers/keysmith.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh HOME, removed when the file's tests end (also when they fail). */
function home(): { HOME: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ks-static-'));
  dirs.push(dir);
  return { HOME: dir };
}

const configDir = (env: { HOME: string }) => join(env.HOME, '.config', 'keysmith');
const sessionsDir = (env: { HOME: string }) => join(env.HOME, '.local', 'state', 'keysmith', 'sessions');
const profilesText = (env: { HOME: string }) => readFileSync(join(configDir(env), 'profiles.json'), 'utf8');
const profiles = (env: { HOME: string }) => JSON.parse(profilesText(env)).profiles as Record<string, Record<string, unknown>>;

function sessionFile(env: { HOME: string }): string {
  const files = readdirSync(sessionsDir(env)).filter((f) => f.endsWith('.json'));
  expect(files).toHaveLength(1);
  return join(sessionsDir(env), files[0]!);
}

/** Nothing was saved: no profiles file, no session. */
function expectNothingSaved(env: { HOME: string }): void {
  expect(() => statSync(join(configDir(env), 'profiles.json'))).toThrow();
  let sessions: string[] = [];
  try {
    sessions = readdirSync(sessionsDir(env));
  } catch {
    // no sessions directory at all
  }
  expect(sessions).toEqual([]);
}

/**
 * What a login said on stderr, without the one-time `note:` about where secrets are kept (the
 * first login of a HOME on a machine without an OS keyring says it).
 */
const confirmation = (r: RunResult) => r.stderr.split('\n').filter((line) => !line.startsWith('note: ')).join('\n');

/** A login that worked: nothing on stdout, one confirmation line on stderr, private files. */
function expectSaved(login: RunResult, env: { HOME: string }, secret: string): void {
  expect(login.exitCode, login.stderr).toBe(0);
  expect(login.stdout).toBe('');
  expect(confirmation(login).split('\n')).toHaveLength(1);
  expect(confirmation(login)).toMatch(/^Saved /);
  expect(login.stderr).not.toContain(secret);
  expect(profilesText(env)).not.toContain(secret);
  expect(statSync(join(configDir(env), 'profiles.json')).mode & 0o777).toBe(0o600);
  expect(statSync(configDir(env)).mode & 0o777).toBe(0o700);
  expect(statSync(sessionsDir(env)).mode & 0o777).toBe(0o700);
  expect(statSync(sessionFile(env)).mode & 0o777).toBe(0o600);
}

const basicOf = (user: string, password: string) => `Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('apikey', () => {
  const KEY = 'ks_live_0123456789abcdefWXYZ';

  it('from --api-key-stdin: Authorization: Apikey KEY; token, --header, --json, whoami never show more than the last 4', async () => {
    const env = home();
    const login = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'apikey', '--api-key-stdin'], { env, input: `${KEY}\n` });
    expectSaved(login, env, KEY);
    expect(confirmation(login)).toBe('Saved the API key for http://127.0.0.1:9 (profile 127.0.0.1:9, apikey), sent as Authorization: Apikey KEY.');
    expect(profiles(env)['127.0.0.1:9']).toEqual({
      name: '127.0.0.1:9', url: 'http://127.0.0.1:9', dialect: 'apikey', apiKey: { in: 'header', name: 'Authorization', scheme: 'Apikey' },
    });
    const token = await keysmith(['token'], { env });
    expect([token.exitCode, token.stdout, token.stderr]).toEqual([0, KEY, '']);
    expect((await keysmith(['token', '--header'], { env })).stdout).toBe(`Authorization: Apikey ${KEY}`);
    expect(JSON.parse((await keysmith(['token', '--json'], { env })).stdout)).toEqual({
      token: KEY, type: 'apikey', expires_at: null, expires_in: null, profile: '127.0.0.1:9',
    });
    const who = await keysmith(['whoami'], { env });
    expect(who.exitCode).toBe(0);
    expect(who.stdout).toBe('API key …WXYZ');
    expect(who.stderr).not.toContain(KEY.slice(0, -4));
    const whoJson = JSON.parse((await keysmith(['whoami', '--json'], { env })).stdout);
    expect(whoJson).toMatchObject({ user: 'API key …WXYZ', dialect: 'apikey', token_expires_at: null });
    // A static credential never goes stale: refresh keeps it.
    expect((await keysmith(['refresh'], { env })).exitCode).toBe(0);
    expect((await keysmith(['token'], { env })).stdout).toBe(KEY);
  });

  it('from $KEYSMITH_API_KEY, in other headers and schemes', async () => {
    const cases: Array<[string[], string]> = [
      [['--api-key-name', 'X-API-Key'], `X-API-Key: ${KEY}`],
      [['--api-key-scheme', 'Bearer'], `Authorization: Bearer ${KEY}`],
      [['--api-key-scheme', 'Token'], `Authorization: Token ${KEY}`],
      [['--api-key-name', 'Authorization', '--api-key-scheme', 'none'], `Authorization: ${KEY}`],
      [['--api-key-name', 'X-Auth', '--api-key-scheme', 'Key'], `X-Auth: Key ${KEY}`],
    ];
    for (const [flags, header] of cases) {
      const env = home();
      const login = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'apikey', ...flags], { env: { ...env, KEYSMITH_API_KEY: KEY } });
      expectSaved(login, env, KEY);
      expect((await keysmith(['token', '--header'], { env })).stdout).toBe(header);
      expect((await keysmith(['token'], { env })).stdout).toBe(KEY);
    }
  });

  it('as a query parameter: token prints the key; --header exits 2 and says why', async () => {
    for (const [flags, name] of [[['--api-key-in', 'query'], 'api_key'], [['--api-key-in', 'query', '--api-key-name', 'key'], 'key']] as const) {
      const env = home();
      const login = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'apikey', '--api-key-stdin', ...flags], { env, input: KEY });
      expectSaved(login, env, KEY);
      expect(login.stderr).toContain(`sent as ?${name}=KEY`);
      expect(profiles(env)['127.0.0.1:9']!.apiKey).toEqual({ in: 'query', name });
      expect((await keysmith(['token'], { env })).stdout).toBe(KEY);
      const header = await keysmith(['token', '--header'], { env });
      expect(header.exitCode).toBe(2);
      expect(header.stdout).toBe('');
      expect(oneErrorLine(header.stderr)).toContain(`query parameter ${name}`);
      expect(header.stderr).not.toContain(KEY);
    }
  });

  it('bad keys and bad placements: one line, exit 2, nothing saved, the key never echoed', async () => {
    const login = (args: string[], input?: string, extra: Record<string, string> = {}) => {
      const env = home();
      return keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'apikey', ...args], { env: { ...env, ...extra }, ...(input !== undefined && { input }) }).then((r) => ({ r, env }));
    };
    const cases: Array<[string[], string | undefined, Record<string, string>, RegExp]> = [
      [['--api-key-stdin'], '', {}, /no API key on standard input \(it was empty\)/],
      [['--api-key-stdin'], '\n', {}, /no API key on standard input/],
      [['--api-key-stdin'], 'two words\n', {}, /characters a key cannot have/],
      [['--api-key-stdin'], 'line1\nline2\n', {}, /characters a key cannot have/],
      [['--api-key-stdin'], 'clé-ünïcode\n', {}, /characters a key cannot have/],
      [[], undefined, {}, /no API key given and no terminal to ask on/],
      [['--api-key-stdin', '--api-key-name', 'X API'], KEY, {}, /not a valid HTTP header name/],
      [['--api-key-stdin', '--api-key-name', 'X-Key:'], KEY, {}, /not a valid HTTP header name/],
      [['--api-key-stdin', '--api-key-scheme', 'Two words'], KEY, {}, /not a valid scheme/],
      [['--api-key-stdin', '--api-key-in', 'query', '--api-key-scheme', 'Bearer'], KEY, {}, /--api-key-scheme is for keys sent in a header/],
      [['--api-key-stdin', '--api-key-in', 'query', '--api-key-name', ''], KEY, {}, /not a usable query parameter name/],
      [['--api-key-stdin', '--api-key-in', 'cookie'], KEY, {}, /cookie/],
      [['--api-key-stdin', '-u', 'alice'], KEY, {}, /an API key profile has no user or password/],
      [['--api-key-stdin', '--password-stdin'], KEY, {}, /cannot both read standard input/],
      [['--api-key-stdin', '--flow', 'password'], KEY, {}, /--flow is for token servers/],
    ];
    for (const [args, input, extra, message] of cases) {
      const { r, env } = await login(args, input, extra);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(message);
      expect(r.stderr).not.toContain(KEY);
      expectNothingSaved(env);
    }
  });

  it('api-key options with another dialect are refused', async () => {
    const env = home();
    const r = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'basic', '-u', 'alice', '--api-key-name', 'X-Key'], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/are for API keys \(--dialect apikey\)/);
    expectNothingSaved(env);
  });
});

describe('basic', () => {
  const PASSWORD = 'c0rrect horse: battery';

  it('user from -u, password from --password-stdin: token --header, whoami; plain token and --json exit 2', async () => {
    const env = home();
    const login = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'basic', '-u', 'alice', '--password-stdin'], { env, input: `${PASSWORD}\n` });
    expectSaved(login, env, PASSWORD);
    expect(confirmation(login)).toBe('Saved the password of alice for http://127.0.0.1:9 (profile 127.0.0.1:9, basic).');
    expect(profiles(env)['127.0.0.1:9']).toEqual({ name: '127.0.0.1:9', url: 'http://127.0.0.1:9', dialect: 'basic', username: 'alice' });
    expect(readFileSync(sessionFile(env), 'utf8')).not.toContain(PASSWORD);
    const header = await keysmith(['token', '--header'], { env });
    expect([header.exitCode, header.stdout, header.stderr]).toEqual([0, basicOf('alice', PASSWORD), '']);
    for (const args of [['token'], ['token', '--json'], ['token', '--json', '--header']]) {
      const r = await keysmith(args, { env });
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(/holds a user and password \(basic\), not a token/);
      expect(r.stderr).toMatch(/hint: .*--header.*keysmith api.*keysmith exec/);
    }
    const who = await keysmith(['whoami'], { env });
    expect([who.exitCode, who.stdout]).toEqual([0, 'alice']);
    expect(who.stderr).toBe('profile 127.0.0.1:9 at http://127.0.0.1:9 (basic)');
  });

  it('user and password from $KEYSMITH_USERNAME and $KEYSMITH_PASSWORD (UTF-8 kept as is)', async () => {
    const env = home();
    const login = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'basic'], { env: { ...env, KEYSMITH_USERNAME: 'zoë', KEYSMITH_PASSWORD: 'pässwörd' } });
    expectSaved(login, env, 'pässwörd');
    expect((await keysmith(['token', '--header'], { env })).stdout).toBe(basicOf('zoë', 'pässwörd'));
    expect((await keysmith(['whoami'], { env })).stdout).toBe('zoë');
  });

  it('bad input: a ":" in the user, an empty pipe, no source: exit 2, nothing saved', async () => {
    const cases: Array<[string[], string | undefined, Record<string, string>, RegExp]> = [
      [['-u', 'a:b', '--password-stdin'], 'pw', {}, /user name with ":" cannot be sent with HTTP Basic/],
      [['-u', 'alice', '--password-stdin'], '', {}, /no password on standard input \(it was empty\)/],
      [['-u', 'alice'], undefined, {}, /no password given and no terminal to ask on/],
      [[], undefined, { KEYSMITH_PASSWORD: 'pw' }, /no user name given and no terminal to ask on/],
      [['-u', 'alice', '--access-key-stdin'], 'x', {}, /--access-key-stdin is for H2O Wave access keys/],
    ];
    for (const [args, input, extra, message] of cases) {
      const env = home();
      const r = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'basic', ...args], { env: { ...env, ...extra }, ...(input !== undefined && { input }) });
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(oneErrorLine(r.stderr)).toMatch(message);
      expectNothingSaved(env);
    }
  });
});

describe('digest', () => {
  it('keeps user and password; token --header exits 2 explaining the challenge; whoami shows the user', async () => {
    const env = home();
    const login = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'digest', '-u', 'bob', '--password-stdin'], { env, input: 'dig-pass\n' });
    expectSaved(login, env, 'dig-pass');
    expect(confirmation(login)).toBe('Saved the password of bob for http://127.0.0.1:9 (profile 127.0.0.1:9, digest).');
    const header = await keysmith(['token', '--header'], { env });
    expect(header.exitCode).toBe(2);
    expect(header.stdout).toBe('');
    expect(oneErrorLine(header.stderr)).toMatch(/Digest has no header to print/);
    expect(header.stderr).toMatch(/keysmith api/);
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(2);
    expect(oneErrorLine(token.stderr)).toMatch(/holds a user and password \(digest\), not a token/);
    expect(token.stderr).toMatch(/hint: Digest answers a challenge/);
    expect((await keysmith(['whoami'], { env })).stdout).toBe('bob');
    const colon = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'digest', '-u', 'b:ob', '--password-stdin'], { env: home(), input: 'x' });
    expect(colon.exitCode).toBe(2);
    oneErrorLine(colon.stderr);
  });
});

describe('wave', () => {
  /** A real access key: `keysmith create-access-key` into a temp keychain; its stdout as is. */
  async function createAccessKey(args: string[] = []): Promise<{ output: string; id: string; secret: string; keychain: string }> {
    const dir = home().HOME;
    const keychain = join(dir, '.wave-keychain');
    const created = await keysmith(['create-access-key', '-k', keychain, '--cost', '4', ...args], { keepFinalNewline: true });
    expect(created.exitCode, created.stderr).toBe(0);
    const id = /H2O_WAVE_ACCESS_KEY_ID=["']?(\w+)/.exec(created.stdout)?.[1] ?? JSON.parse(created.stdout || '{}').id;
    const secret = /H2O_WAVE_ACCESS_KEY_SECRET=["']?(\w+)/.exec(created.stdout)?.[1] ?? JSON.parse(created.stdout || '{}').secret;
    return { output: created.stdout, id, secret, keychain };
  }

  /** The stored pair is the one in the keychain: verify-access-key accepts the secret the header carries. */
  async function expectHeaderVerifies(env: { HOME: string }, id: string, secret: string, keychain: string): Promise<void> {
    const header = await keysmith(['token', '--header'], { env });
    expect(header.stdout).toBe(basicOf(id, secret));
    const decoded = Buffer.from(header.stdout.replace('Authorization: Basic ', ''), 'base64').toString('utf8');
    const verify = await keysmith(['verify-access-key', '-k', keychain, decoded.split(':')[0]!], { env: home(), input: decoded.slice(decoded.indexOf(':') + 1) });
    expect(verify.exitCode, verify.stderr).toBe(0);
  }

  it('keysmith create-access-key | keysmith login URL --dialect wave --access-key-stdin', async () => {
    const { output, id, secret, keychain } = await createAccessKey();
    expect(id).toMatch(/^[A-Z0-9]{20}$/);
    const env = home();
    const login = await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '--access-key-stdin'], { env, input: output });
    expectSaved(login, env, secret);
    expect(confirmation(login)).toBe(`Saved access key ${id} for http://127.0.0.1:10101 (profile 127.0.0.1:10101, wave).`);
    expect(profiles(env)['127.0.0.1:10101']).toEqual({ name: '127.0.0.1:10101', url: 'http://127.0.0.1:10101', dialect: 'wave', username: id });
    await expectHeaderVerifies(env, id, secret, keychain);
    expect((await keysmith(['whoami'], { env })).stdout).toBe(id);
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(2);
    expect(token.stdout + token.stderr).not.toContain(secret);
  });

  it('the --export and --json outputs, export lines with quotes, CRLF, and other variables of an env file', async () => {
    const { output, id, secret, keychain } = await createAccessKey(['--json']);
    const exported = await createAccessKey(['--export']);
    expect(exported.output).toMatch(/^export H2O_WAVE_ACCESS_KEY_ID=/);
    const env = home();
    expectSaved(await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '--access-key-stdin'], { env, input: exported.output }), env, exported.secret);
    await expectHeaderVerifies(env, exported.id, exported.secret, exported.keychain);
    const forms = [
      output,
      `export H2O_WAVE_ACCESS_KEY_ID='${id}'\nexport H2O_WAVE_ACCESS_KEY_SECRET='${secret}'\n`,
      `export H2O_WAVE_ACCESS_KEY_ID="${id}"\nexport H2O_WAVE_ACCESS_KEY_SECRET="${secret}"\n`,
      `# from create-access-key\r\nH2O_WAVE_ACCESS_KEY_ID=${id}\r\nH2O_WAVE_ADDRESS=http://127.0.0.1:10101\r\n\r\nH2O_WAVE_ACCESS_KEY_SECRET=${secret}\r\n`,
    ];
    for (const input of forms) {
      const env = home();
      const login = await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '--access-key-stdin'], { env, input });
      expectSaved(login, env, secret);
      await expectHeaderVerifies(env, id, secret, keychain);
    }
  });

  it('from $H2O_WAVE_ACCESS_KEY_ID and _SECRET, or -u ID with --password-stdin', async () => {
    const { id, secret, keychain } = await createAccessKey();
    const fromEnv = home();
    expectSaved(await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave'], { env: { ...fromEnv, H2O_WAVE_ACCESS_KEY_ID: id, H2O_WAVE_ACCESS_KEY_SECRET: secret } }), fromEnv, secret);
    await expectHeaderVerifies(fromEnv, id, secret, keychain);
    const fromFlags = home();
    expectSaved(await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '-u', id, '--password-stdin'], { env: fromFlags, input: `${secret}\n` }), fromFlags, secret);
    await expectHeaderVerifies(fromFlags, id, secret, keychain);
  });

  it('empty or malformed input: one line, exit 2, nothing saved, the secret never echoed', async () => {
    const { output: two } = await createAccessKey(['-n', '2']);
    const secret = 'S3cretS3cretS3cretS3cretS3cretS3cretS3cr';
    const cases: Array<[string, RegExp]> = [
      ['', /no access key on standard input \(it was empty\)/],
      ['\n\n', /no access key on standard input/],
      [`H2O_WAVE_ACCESS_KEY_ID=ABC\n`, /no H2O_WAVE_ACCESS_KEY_SECRET= line/],
      [`H2O_WAVE_ACCESS_KEY_SECRET=${secret}\n`, /no H2O_WAVE_ACCESS_KEY_ID= line/],
      [two, /more than one H2O_WAVE_ACCESS_KEY_ID= line/],
      [`H2O_WAVE_ACCESS_KEY_ID=ABC\n${secret}\n`, /line 2 is not NAME=value/],
      [`H2O_WAVE_ACCESS_KEY_ID=A:B\nH2O_WAVE_ACCESS_KEY_SECRET=${secret}\n`, /access key ID with ":" cannot be sent/],
      [`H2O_WAVE_ACCESS_KEY_ID=ABC\nH2O_WAVE_ACCESS_KEY_SECRET=\n`, /H2O_WAVE_ACCESS_KEY_SECRET on standard input is empty/],
      [`H2O_WAVE_ACCESS_KEY_ID=ABC\nH2O_WAVE_ACCESS_KEY_SECRET=${secret} x\n`, /has characters an access key cannot have/],
      [`{"id": "ABC", "secret": "${secret}"\n`, /not valid JSON/],
      [`{"id": "ABC"}\n`, /no "id" and "secret" strings/],
    ];
    for (const [input, message] of cases) {
      const env = home();
      const r = await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '--access-key-stdin'], { env, input });
      expect(r.exitCode, `${JSON.stringify(input)}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneErrorLine(r.stderr)).toMatch(message);
      expect(r.stderr).not.toContain(secret);
      expectNothingSaved(env);
    }
    const half = home();
    const onlyId = await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave'], { env: { ...half, H2O_WAVE_ACCESS_KEY_ID: 'ABC' } });
    expect(onlyId.exitCode).toBe(2);
    expect(oneErrorLine(onlyId.stderr)).toMatch(/\$H2O_WAVE_ACCESS_KEY_SECRET is not set/);
    expectNothingSaved(half);
    const both = await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '--access-key-stdin', '--password-stdin'], { env: half, input: 'x' });
    expect(both.exitCode).toBe(2);
    expect(oneErrorLine(both.stderr)).toMatch(/cannot both read standard input/);
    const none = await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave'], { env: half });
    expect(none.exitCode).toBe(2);
    expect(oneErrorLine(none.stderr)).toMatch(/no access key ID given and no terminal to ask on/);
    expect(none.stderr).toMatch(/hint: pipe `keysmith create-access-key` into --access-key-stdin/);
    expectNothingSaved(half);
  });
});

describe('static dialects are never auto-detected and never call the server', () => {
  it('login to a port where nothing listens succeeds; --dialect auto does not pick a static dialect', async () => {
    const env = home();
    const ok = await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'basic', '-u', 'a', '--password-stdin', '--timeout', '2'], { env, input: 'pw' });
    expect(ok.exitCode, ok.stderr).toBe(0);
    const auto = await keysmith(['login', 'http://127.0.0.1:9/elsewhere', '-u', 'a', '--timeout', '2'], { env: { ...home(), KEYSMITH_PASSWORD: 'pw' } });
    expect(auto.exitCode).not.toBe(0);
    oneErrorLine(auto.stderr);
  });
});
