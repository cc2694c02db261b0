/**
 * `keysmith exec` on a real terminal (tmux, test/helpers/tty.ts): the child gets the terminal
 * itself (a TTY stays a TTY), and a Ctrl-C, which the terminal sends to keysmith and its child
 * alike, reaches the child once, not twice.
 *
 * Without tmux the tests are skipped with the reason in their name, except under CI (`$CI` set),
 * where .ci/run installs tmux and a missing one is a failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerSession, tempRoot, writeProfile, type TempRoot } from './helpers/exec.js';
import { assertBuilt } from './helpers/keysmith.js';
import { Terminal, frame, tmuxMissing, type Pane } from './helpers/tty.js';

const CI = Boolean(process.env.CI);
const missing = tmuxMissing();

let term: Terminal;
let root: TempRoot;

/** A home with a logged-in tiled profile, for the pane. */
function home(): string {
  const dir = root.dir('home');
  writeProfile(dir, { name: 'work', url: 'http://127.0.0.1:9', dialect: 'tiled' }, bearerSession('tok-tty'));
  return dir;
}

async function inPane<T>(args: string[], body: (pane: Pane) => Promise<T>): Promise<T> {
  const dir = home();
  const pane = await term.run(args, { home: dir, env: { TMPDIR: dir } });
  try {
    return await body(pane);
  } finally {
    await pane.close();
  }
}

/** Counts SIGINTs; 700 ms after the first, prints the count and exits 5. */
const COUNT_SIGINT = `
let n = 0;
process.on('SIGINT', () => {
  if (n++ === 0) setTimeout(() => { console.log('SIGINT x' + n); process.exit(5); }, 700);
});
console.log('ready');
setInterval(() => {}, 1000);
`;

function suite(): void {
  beforeAll(() => {
    assertBuilt();
    root = tempRoot('exec-tty');
    term = new Terminal();
  });
  afterAll(async () => {
    await term?.kill();
    root?.remove();
  });

  it("the child's stdin, stdout and stderr are the terminal", async () => {
    await inPane(['exec', '--', 'sh', '-c', 'if test -t 0 && test -t 1 && test -t 2; then echo TTY:yes; else echo TTY:no; fi'], async (pane) => {
      const result = await pane.exit();
      expect(result.code, frame(result.screen)).toBe(0);
      expect(result.screen).toContain('TTY:yes');
      expect(result.ttyRestored).toBe(true);
    });
  });

  it('Ctrl-C reaches the child once (the terminal delivers it; keysmith does not send it again)', async () => {
    const script = root.file(`count-sigint-${Date.now()}.cjs`, COUNT_SIGINT);
    await inPane(['exec', '--', process.execPath, script], async (pane) => {
      await pane.waitFor('ready');
      await pane.press('C-c');
      const result = await pane.exit();
      expect(result.code, frame(result.screen)).toBe(5);
      expect(result.screen).toContain('SIGINT x1');
      expect(result.screen).not.toContain('error:');
    });
  });
}

if (!missing) {
  describe('keysmith exec on a terminal (tmux)', suite);
} else if (CI) {
  describe('keysmith exec on a terminal (tmux)', () => {
    it('needs tmux', () => expect.fail(`${missing}; .ci/run installs it`));
  });
} else {
  describe.skip(`keysmith exec on a terminal (tmux): skipped: ${missing}`, () => {
    it('runs on a terminal', () => {});
  });
}
