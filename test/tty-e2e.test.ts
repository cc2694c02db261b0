/**
 * End to end on a real terminal: the built binary runs inside tmux (test/helpers/tty.ts), keys are
 * typed with send-keys and the screen is read back (and everything the pane received, to check
 * that a secret was never drawn). Covers the masked secret and password prompts, the Tiled
 * provider menu, Ctrl-C and Ctrl-D at a prompt, terminal modes and cursor restored, and colour.
 *
 * Without tmux the tests are skipped with the reason in their name, except under CI (`$CI` set),
 * where .ci/run installs tmux and a missing one is a failure.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, scratchDir } from './helpers/keychain-cli.js';
import { keysmith, oneErrorLine } from './helpers/keysmith.js';
import { startServer, stopAllServers } from './helpers/servers.js';
import { SGR, Terminal, frame, stripSgr, tmuxMissing, type Pane } from './helpers/tty.js';

const CI = Boolean(process.env.CI);
const missing = tmuxMissing();
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const STACK = /^\s+at /m;

let term: Terminal;
let scratch: { dir: string; cleanup: () => void };
let counter = 0;

/** A fresh directory for one test (also its HOME inside the pane). */
function freshDir(): string {
  const dir = join(scratch.dir, `t${counter++}`);
  mkdirSync(dir);
  return dir;
}

/** Run `keysmith ARGS` in a new tmux session, hand the pane to `body`, and always close the session. */
async function inPane<T>(args: string[], options: { home: string; env?: Record<string, string> }, body: (pane: Pane) => Promise<T>): Promise<T> {
  const pane = await term.run(args, options);
  try {
    return await body(pane);
  } finally {
    await pane.close();
  }
}

/** Fail when `secret` was ever drawn on the terminal, even in part (any 6 characters of it in a row). */
function expectNeverShown(pane: Pane, secret: string, screen: string): void {
  const output = pane.output();
  for (let i = 0; i + 6 <= secret.length; i++) {
    const piece = secret.slice(i, i + 6);
    if (output.includes(piece) || screen.includes(piece)) {
      throw new Error(`the terminal showed ${JSON.stringify(piece)} of the secret ${JSON.stringify(secret)}:\n${frame(screen)}`);
    }
  }
}

/** A new access key in `file`, made non-interactively; its ID and secret from stdout. */
async function createKey(file: string): Promise<{ id: string; secret: string }> {
  const r = await keysmith(['create-access-key', '--cost', '4', '-k', file]);
  expect(r.exitCode, r.stderr).toBe(0);
  const m = /^H2O_WAVE_ACCESS_KEY_ID=([A-Z0-9]{20})\nH2O_WAVE_ACCESS_KEY_SECRET=([A-Za-z0-9]{40})$/.exec(r.stdout);
  if (!m) throw new Error(`unexpected create-access-key output:\n${r.stdout}`);
  return { id: m[1]!, secret: m[2]! };
}

/** A fresh keychain with one new key, and `verify-access-key` for that key in a pane. */
async function verifyNewKey<T>(env: Record<string, string>, body: (pane: Pane, key: { id: string; secret: string }) => Promise<T>): Promise<T> {
  const dir = freshDir();
  const file = join(dir, 'keychain');
  const key = await createKey(file);
  return inPane(['verify-access-key', key.id, '-k', file], { home: dir, env }, (pane) => body(pane, key));
}

/** The command ended with exit `code`, the terminal modes back as they were and the cursor visible. */
async function expectExit(pane: Pane, code: number): Promise<string> {
  const result = await pane.exit();
  expect(result.code, `exit status of ${pane.label}:\n${frame(result.screen)}`).toBe(code);
  expect(result.ttyRestored, `terminal modes (stty) changed by ${pane.label}:\n${frame(result.screen)}`).toBe(true);
  expect(await pane.cursorVisible(), `cursor left hidden by ${pane.label}`).toBe(true);
  return result.screen;
}

/** The screen without the wrapper's exit line. */
function keysmithLines(screen: string): string {
  return screen.replace(/^EXIT:.*$/m, '').trimEnd();
}

function suite(): void {
  beforeAll(() => {
    assertBuilt();
    scratch = scratchDir('keysmith-tty-e2e-');
    term = new Terminal();
  });
  afterAll(async () => {
    await term?.kill();
    await stopAllServers();
    scratch?.cleanup();
  });

  describe('verify-access-key asks for the secret on the terminal', () => {
    it('masks it and exits 0 for the right secret', async () => {
      await verifyNewKey({}, async (pane, { id, secret }) => {
        await pane.waitFor(`Secret for ${id}:`);
        await pane.type(secret);
        // Masked while typing: one * per character, never the secret.
        const typed = await pane.waitFor('*'.repeat(secret.length), { what: `${secret.length} mask characters` });
        expectNeverShown(pane, secret, typed);
        // Ctrl-D after some text is no end of input (it cancels only an empty prompt, below).
        await pane.press('C-d', 'Enter');
        const screen = await expectExit(pane, 0);
        expect(screen).toContain(`access key ${id}: OK`);
        expect(screen).not.toContain('error:');
        expectNeverShown(pane, secret, screen);
      });
    });

    it('asks again after Enter on an empty prompt', async () => {
      await verifyNewKey({}, async (pane, { id, secret }) => {
        await pane.waitFor(`Secret for ${id}:`);
        await pane.press('Enter');
        await pane.waitFor('Type a value, or press Ctrl-C to cancel.');
        await pane.type(secret);
        await pane.waitFor('*'.repeat(secret.length), { what: `${secret.length} mask characters` });
        await pane.press('Enter');
        const screen = await expectExit(pane, 0);
        expect(screen).toContain(`access key ${id}: OK`);
        expectNeverShown(pane, secret, screen);
      });
    });

    it('exits 1 for a wrong secret, with one error line', async () => {
      await verifyNewKey({}, async (pane, { id, secret }) => {
        const wrong = secret.slice(20) + secret.slice(0, 20);
        await pane.waitFor(`Secret for ${id}:`);
        await pane.type(wrong);
        await pane.waitFor('*'.repeat(wrong.length), { what: `${wrong.length} mask characters` });
        await pane.press('Enter');
        const screen = await expectExit(pane, 1);
        expect(oneErrorLine(keysmithLines(screen))).toBe(`error: access key ${id}: verification failed`);
        expectNeverShown(pane, wrong, screen);
      });
    });
  });

  describe('set-password asks twice', () => {
    /** A file with one user (bob) in it, made non-interactively. */
    async function htpasswd(dir: string): Promise<string> {
      const file = join(dir, 'htpasswd');
      const r = await keysmith(['set-password', 'bob', '-k', file, '--cost', '4', '--password-stdin'], { input: 'bob-password\n' });
      expect(r.exitCode, r.stderr).toBe(0);
      return file;
    }

    it('exits 2 and leaves the file alone when the two entries differ', async () => {
      const dir = freshDir();
      const file = await htpasswd(dir);
      const before = readFileSync(file);
      await inPane(['set-password', 'alice', '-k', file, '--cost', '4'], { home: dir }, async (pane) => {
        await pane.waitFor('New password for alice:');
        await pane.type('first-try-1');
        await pane.waitFor('*'.repeat(11), { what: '11 mask characters' });
        await pane.press('Enter');
        await pane.waitFor('Repeat the password:');
        await pane.type('second-try-2');
        await pane.waitFor('*'.repeat(12), { what: '12 mask characters' });
        await pane.press('Enter');
        const screen = await expectExit(pane, 2);
        expect(oneErrorLine(keysmithLines(screen))).toBe('error: the two passwords do not match');
        expectNeverShown(pane, 'first-try-1', screen);
        expectNeverShown(pane, 'second-try-2', screen);
      });
      expect(readFileSync(file).equals(before), 'the file changed').toBe(true);
    });

    it('adds a bcrypt entry that verify-access-key accepts when they match', async () => {
      const dir = freshDir();
      const file = await htpasswd(dir);
      const bobLine = readFileSync(file, 'utf8').split('\n')[0]!;
      const password = 'correct horse 42';
      await inPane(['set-password', 'alice', '-k', file, '--cost', '4'], { home: dir }, async (pane) => {
        await pane.waitFor('New password for alice:');
        await pane.type(password);
        await pane.waitFor('*'.repeat(password.length), { what: `${password.length} mask characters` });
        await pane.press('Enter');
        await pane.waitFor('Repeat the password:');
        await pane.type(password);
        await pane.press('Enter');
        const screen = await expectExit(pane, 0);
        expect(screen).toContain(`Added user alice in ${file}.`);
        expectNeverShown(pane, password, screen);
      });
      const lines = readFileSync(file, 'utf8').split('\n');
      expect(lines[0]).toBe(bobLine);
      expect(lines[1]).toMatch(/^alice:\$2b\$04\$[./A-Za-z0-9]{53}$/);
      const ok = await keysmith(['verify-access-key', 'alice', '-k', file], { input: `${password}\n` });
      expect(ok.exitCode, ok.stderr).toBe(0);
      const wrong = await keysmith(['verify-access-key', 'alice', '-k', file], { input: 'correct horse 43\n' });
      expect(wrong.exitCode).toBe(1);
    });
  });

  describe('login on a terminal', () => {
    it('offers the providers in a menu, then asks for the user name and a masked password', async () => {
      const server = await startServer('tiled', { providers: ['toy', { provider: 'ldap', mode: 'internal' }] });
      const home = freshDir();
      await inPane(['login', server.url], { home }, async (pane) => {
        let screen = await pane.waitFor(/Log in with which provider\?[^]*toy[^]*ldap/, { what: 'the provider menu (toy, ldap)' });
        expect(screen).toMatch(/^\S toy$/m); // the menu's cursor (❯, or > without Unicode) on the first entry
        await pane.press('Down');
        await pane.waitFor(/^\S ldap$/m, { what: 'the menu cursor on ldap' });
        await pane.press('Enter');
        await pane.waitFor('User name:');
        await pane.type('alice');
        await pane.press('Enter');
        await pane.waitFor('Password for alice:');
        await pane.type('secret1');
        await pane.waitFor('*'.repeat('secret1'.length), { what: '7 mask characters' });
        await pane.press('Enter');
        screen = await expectExit(pane, 0);
        expect(screen).toMatch(/Log in with which provider\? ldap/);
        expect(screen).toContain(`Logged in to ${server.url} as alice`);
        expectNeverShown(pane, 'secret1', screen);
      });
      // The menu's choice is what the server saw and what the profile keeps.
      const stats = await server.stats();
      expect(stats.sessions.map((s) => s.provider)).toEqual(['ldap']);
      const profiles = JSON.parse(readFileSync(join(home, '.config', 'keysmith', 'profiles.json'), 'utf8'));
      expect(JSON.stringify(profiles)).toContain('"provider":"ldap"');
      // Afterwards scripts need no terminal.
      const token = await keysmith(['token'], { env: { HOME: home } });
      expect(token.exitCode, token.stderr).toBe(0);
      expect(token.stdout).toMatch(JWT);
      expect(token.stderr).toBe('');
      await server.stop();
    });
  });

  // Ctrl-C cancels a prompt. Ctrl-D on an empty prompt makes readline close it; keysmith must take
  // that as a cancel too and never end with 0, which for verify-access-key means "the secret matched".
  describe.each([
    ['Ctrl-C', 'C-c'],
    ['Ctrl-D', 'C-d'],
  ])('%s at a prompt', (_name, key) => {
    it('at the secret prompt: exit 130, one line, no stack trace, terminal restored', async () => {
      await verifyNewKey({}, async (pane, { id }) => {
        await pane.waitFor(`Secret for ${id}:`);
        if (key === 'C-c') {
          await pane.type('abc');
          await pane.waitFor('***', { what: '3 mask characters' });
        }
        await pane.press(key);
        const screen = await expectExit(pane, 130);
        // "error: cancelled" is keysmith's own: a death by SIGINT would also read 130, but silently.
        expect(oneErrorLine(keysmithLines(screen))).toBe('error: cancelled');
        expect(screen).not.toContain(`access key ${id}: OK`);
        for (const text of [screen, pane.output()]) {
          expect(text).not.toMatch(STACK);
          expect(text).not.toMatch(/ExitPromptError|AbortPromptError|unexpected failure|KEYSMITH_DEBUG/);
        }
      });
    });

    it('at the provider menu: exit 130 and nothing saved', async () => {
      const server = await startServer('tiled', { providers: ['toy', { provider: 'ldap', mode: 'internal' }] });
      const home = freshDir();
      await inPane(['login', server.url], { home }, async (pane) => {
        await pane.waitFor(/Log in with which provider\?[^]*ldap/, { what: 'the provider menu' });
        await pane.press(key);
        const screen = await expectExit(pane, 130);
        expect(oneErrorLine(keysmithLines(screen))).toBe('error: cancelled');
        expect(screen).not.toMatch(STACK);
        expect(pane.output()).not.toMatch(STACK);
      });
      expect(existsSync(join(home, '.config', 'keysmith', 'profiles.json'))).toBe(false);
      expect(await server.count('login')).toBe(0);
      await server.stop();
    });
  });

  describe('colour on a terminal', () => {
    /** verify-access-key with a wrong secret from the environment: an error and no prompt. */
    async function failingVerify(extraEnv: Record<string, string>): Promise<{ line: string; screen: string; output: string }> {
      return verifyNewKey({ H2O_WAVE_ACCESS_KEY_SECRET: 'not-the-secret', ...extraEnv }, async (pane, { id }) => {
        await expectExit(pane, 1);
        const screen = await pane.screen({ escapes: true });
        const lines = screen.split('\n');
        const index = lines.findIndex((l) => stripSgr(l).startsWith('error:'));
        if (index < 0) throw new Error(`no error line on the screen:\n${frame(screen)}`);
        expect(stripSgr(lines[index]!)).toBe(`error: access key ${id}: verification failed`);
        // Whatever colour the error had, it ends with keysmith: the shell's next line is plain.
        const exitLine = await pane.row((await pane.cursorRow()) - 1);
        expect(exitLine, 'colour left on after keysmith exited').toBe('EXIT:1 TTY:restored');
        return { line: lines[index]!, screen, output: pane.output() };
      });
    }

    it('an error may be coloured on a terminal (only the "error:" prefix), with plain text otherwise', async () => {
      const { line } = await failingVerify({});
      // Either no colour at all, or colour on the prefix alone: the message itself stays plain.
      const message = line.slice(line.indexOf('error:') + 'error:'.length);
      expect(message.replace(/^(?:\x1b\[[0-9;:]*m)+/, ''), `colour in the message: ${JSON.stringify(line)}`).not.toMatch(SGR);
    });

    it('NO_COLOR=1: an error has no escape sequences at all', async () => {
      const { screen, output } = await failingVerify({ NO_COLOR: '1' });
      expect(screen).not.toContain('\x1b');
      expect(output).not.toContain('\x1b');
    });

    it('prompts are coloured on a terminal, and not with NO_COLOR=1', async () => {
      const dir = freshDir();
      const file = join(dir, 'keychain');
      const { id, secret } = await createKey(file);
      const outputs: Record<string, string> = {};
      for (const [label, env] of [['colour', {}], ['NO_COLOR', { NO_COLOR: '1' }]] as const) {
        outputs[label] = await inPane(['verify-access-key', id, '-k', file], { home: dir, env }, async (pane) => {
          await pane.waitFor(`Secret for ${id}:`);
          await pane.type(secret);
          await pane.waitFor('*'.repeat(secret.length), { what: 'mask characters' });
          await pane.press('Enter');
          await expectExit(pane, 0);
          if (label === 'NO_COLOR') expect(await pane.screen({ escapes: true })).not.toContain('\x1b');
          return pane.output();
        });
      }
      // Sanity: the terminal does get colour, so its absence under NO_COLOR means something.
      expect(outputs.colour).toMatch(SGR);
      // Cursor movement is how a prompt redraws; colour and style are what NO_COLOR forbids.
      expect(outputs.NO_COLOR!.match(new RegExp(SGR.source, 'g')) ?? []).toEqual([]);
    });
  });
}

if (!missing) {
  describe('keysmith on a terminal (tmux)', suite);
} else if (CI) {
  describe('keysmith on a terminal (tmux)', () => {
    it('needs tmux', () => expect.fail(`${missing}; .ci/run installs it`));
  });
} else {
  describe.skip(`keysmith on a terminal (tmux): skipped: ${missing}`, () => {
    it('prompts on a terminal', () => {});
  });
}
