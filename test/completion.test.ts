/**
 * `keysmith completion bash|zsh|fish` in the real shells: bash (the script sourced, `complete -p`,
 * the completion function called as bash calls it), zsh (an interactive `zsh -f` in tmux, Tab
 * pressed and the screen read) and fish (`complete -C`). What they offer is checked against the
 * command table itself, and profile names come from the profile store when completing.
 *
 * A missing shell (or tmux, for zsh) skips its tests with the reason, except under CI (`$CI` set),
 * where .ci/run installs them and a missing one is a failure.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS, parseFlags } from '../src/commands/table.js';
import { useScratch } from './helpers/keychain-cli.js';
import { keysmith } from './helpers/keysmith.js';
import { keysmithOnPath, runShell, shellMissing } from './helpers/shell.js';
import { Terminal, tmuxMissing } from './helpers/tty.js';

const CI = Boolean(process.env.CI);
const scratch = useScratch('keysmith-completion-');
const PROFILES = ['prod', 'staging', 'localhost:8000'];

let bin: string;
let home: string;
let work: string;

beforeAll(() => {
  bin = keysmithOnPath(scratch.fresh());
  home = scratch.fresh();
  const config = join(home, '.config', 'keysmith');
  mkdirSync(config, { recursive: true, mode: 0o700 });
  const profiles = Object.fromEntries(PROFILES.map((name) => [name, { name, url: `http://127.0.0.1:9/${name}`, dialect: 'tiled' }]));
  writeFileSync(join(config, 'profiles.json'), JSON.stringify({ default: 'prod', profiles }) + '\n', { mode: 0o600 });
  work = scratch.fresh();
  writeFileSync(join(work, 'config.yml'), 'authentication: {}\n');
  writeFileSync(join(work, 'keys.htpasswd'), '');
});

/** The long options of a command, as the table has them, plus --help. */
function longOptions(name: string): string[] {
  const spec = COMMANDS.find((c) => c.name === name)!;
  return [...spec.options.map((o) => `--${parseFlags(o.flags).long}`), '--help'].sort();
}

const choices = (command: string, flag: string) => COMMANDS.find((c) => c.name === command)!.options.find((o) => o.flags.includes(flag))!.choices!;

/** describe() when `missing` is undefined; else a visible skip, or a failure under CI. */
function withShell(name: string, missing: string | undefined, body: () => void): void {
  if (!missing) describe(name, body);
  else if (CI) describe(name, () => it(`needs ${name}`, () => expect.fail(`${missing}; .ci/run installs it`)));
  else describe.skip(`${name}: skipped: ${missing}`, () => it('completes', () => {}));
}

it('completion without a known shell: one error line and a hint; the script for each shell on stdout only', async () => {
  const r = await keysmith(['completion', 'bsh']);
  expect(r).toMatchObject({ exitCode: 2, stdout: '', stderr: 'error: keysmith has completion for bash, zsh, fish, not "bsh"\nhint: keysmith completion bash' });
  for (const shell of ['bash', 'zsh', 'fish']) {
    const ok = await keysmith(['completion', shell]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain(`${shell} completion for keysmith`);
  }
});

withShell('bash', shellMissing('bash'), () => {
  /** Complete each line in one bash: the script sourced, `_keysmith` called with COMP_LINE/COMP_POINT as bash sets them. */
  async function complete(lines: string[], cwd = work): Promise<{ registration: string; replies: string[][] }> {
    const script = [
      'source <(keysmith completion bash) || exit 9',
      'complete -p keysmith',
      'for COMP_LINE in "$@"; do',
      '  COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"; COMP_CWORD=${#COMP_WORDS[@]}',
      '  COMPREPLY=(); _keysmith keysmith',
      '  printf "%s\\n" "--" "${COMPREPLY[@]}"',
      'done',
    ].join('\n');
    const r = await runShell('bash', `${script.replace('"$@"', lines.map((l) => `'${l}'`).join(' '))}`, { bin, home, cwd });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const [registration, ...rest] = r.stdout.split('\n');
    const replies = rest.join('\n').split(/^--$/m).slice(1).map((block) => block.split('\n').filter(Boolean).sort());
    return { registration: registration!, replies };
  }

  it('registers _keysmith, and completes commands, every command\'s options, and option values from the table', async () => {
    const names = COMMANDS.map((c) => c.name);
    const lines = ['keysmith ', 'keysmith gen', 'keysmith -', ...names.map((n) => `keysmith ${n} --`)];
    const { registration, replies } = await complete(lines);
    expect(registration).toBe('complete -F _keysmith keysmith');
    expect(replies[0]).toEqual([...names, 'help'].sort());
    expect(replies[1]).toEqual(['generate-secret']);
    expect(replies[2]).toEqual(['--help', '--version', '-V', '-h']);
    names.forEach((name, i) => expect(replies[3 + i], name).toEqual(longOptions(name)));
  });

  it('offers choices, files, groups, commands and shells', async () => {
    const { replies } = await complete([
      'keysmith login --dialect ',
      'keysmith login --dialect=ti',
      'keysmith login --flow ',
      'keysmith generate-secret --encoding base',
      'keysmith rotate-secret con',
      'keysmith list-access-keys -k keys',
      'keysmith set-password --group www-',
      'keysmith help log',
      'keysmith completion ',
      'keysmith generate-secret --bytes ',
    ]);
    expect(replies[0]).toEqual([...choices('login', '--dialect')].sort());
    expect(replies[1]).toEqual(['tiled']);
    expect(replies[2]).toEqual([...choices('login', '--flow')].sort());
    expect(replies[3]).toEqual(['base64', 'base64url']);
    expect(replies[4]).toEqual(['config.yml']);
    expect(replies[5]).toEqual(['keys.htpasswd']);
    expect(replies[6]).toEqual(['www-data']);
    expect(replies[7]).toEqual(['login', 'logout']);
    expect(replies[8]).toEqual(['bash', 'fish', 'zsh']);
    expect(replies[9]).toEqual([]);
  });

  it('asks the profile store for profile names when completing (host:port names too)', async () => {
    const { replies } = await complete(['keysmith token -p ', 'keysmith whoami --profile st', 'keysmith token --profile=lo', 'keysmith token --profile localhost:', 'keysmith profiles --delete ']);
    expect(replies[0]).toEqual([...PROFILES].sort());
    expect(replies[1]).toEqual(['staging']);
    // bash replaces only the part after the last ":" or "=", so that is what comes back.
    expect(replies[2]).toEqual(['localhost:8000']);
    expect(replies[3]).toEqual(['8000']);
    expect(replies[4]).toEqual([...PROFILES].sort());
  });
});

withShell('fish', shellMissing('fish'), () => {
  async function complete(line: string): Promise<string[]> {
    const r = await runShell('fish', `keysmith completion fish | source; complete -C '${line}'`, { bin, home, cwd: work });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!).sort();
  }

  it('completes commands with their descriptions, options, choices, profiles and files', async () => {
    const r = await runShell('fish', "keysmith completion fish | source; complete -C 'keysmith gen'", { bin, home });
    expect(r.stdout).toBe(`generate-secret\t${COMMANDS.find((c) => c.name === 'generate-secret')!.description}`);
    expect(await complete('keysmith list-access-keys --')).toEqual(longOptions('list-access-keys'));
    expect(await complete('keysmith login --dialect ')).toEqual([...choices('login', '--dialect')].sort());
    expect(await complete('keysmith token --profile ')).toEqual([...PROFILES].sort());
    expect(await complete('keysmith token -p lo')).toEqual(['localhost:8000']);
    expect(await complete('keysmith rotate-secret con')).toEqual(['config.yml']);
    expect(await complete('keysmith completion ')).toEqual(['bash', 'fish', 'zsh']);
  });
});

withShell('zsh', shellMissing('zsh') ?? tmuxMissing(), () => {
  let term: Terminal;
  beforeAll(() => {
    term = new Terminal();
  });
  afterAll(() => term?.kill());

  it('completes commands, options with descriptions, choices and profile names in an interactive zsh', async () => {
    const pane = await term.run([], { home, cwd: work, program: ['zsh', '-f', '-i'], env: { PATH: `${bin}:${process.env.PATH}` } });
    try {
      await pane.type("PS1='zsh> '; autoload -U compinit && compinit -u -D && source <(keysmith completion zsh) && echo COMPLETION-READY");
      await pane.press('Enter');
      await pane.waitFor(/^COMPLETION-READY$/m);
      /** Type `text`, press Tab, wait for `expected` on the screen, then drop the line and wait for a fresh prompt. */
      const tab = async (text: string, expected: RegExp) => {
        await pane.type(text);
        await pane.press('Tab');
        const screen = await pane.waitFor(expected);
        // Ctrl-C arrives as a signal, typing as input: type on only once the new prompt is there.
        await pane.press('C-c');
        await pane.waitFor((s) => s.split('\n').at(-1) === 'zsh>', { what: 'a fresh prompt' });
        return screen;
      };
      await tab('keysmith gen', /^zsh> keysmith generate-secret$/m);
      const options = await tab('keysmith list-access-keys --', /--json\s+-- print a JSON array/);
      for (const option of longOptions('list-access-keys')) expect(options).toContain(option);
      const dialects = await tab('keysmith login --dialect ', /basic-login/);
      for (const dialect of choices('login', '--dialect')) expect(dialects).toMatch(new RegExp(`(^|\\s)${dialect}(\\s|$)`, 'm'));
      const profiles = await tab('keysmith token --profile ', /localhost:8000/);
      for (const name of PROFILES) expect(profiles).toMatch(new RegExp(`(^|\\s)${name}(\\s|$)`, 'm'));
      await tab('keysmith rotate-secret con', /^zsh> keysmith rotate-secret config\.yml$/m);
    } finally {
      await pane.close();
    }
  });
});
