/**
 * The README's shell examples for keychains and secrets, run as written: every ```sh block that
 * stands directly under "## Quick start", "## Keychain commands" and "## Secret commands" (not
 * under their ### subsections, which need servers of their own), each as one bash script with
 * `set -euo pipefail`, keysmith on PATH, in a fresh directory holding the files the examples
 * name. The one path outside it, /etc/nginx/, is moved under the test directory. Sections that
 * others add elsewhere are left alone; a listed section that disappears fails the test.
 */
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, useScratch } from './helpers/keychain-cli.js';
import { keysmithOnPath, runShell, which } from './helpers/shell.js';

const CI = Boolean(process.env.CI);
const scratch = useScratch('keysmith-readme-');
const isRoot = process.getuid?.() === 0;

/** The ```sh blocks directly under the `## title` heading, before its next heading of any level. */
function shellBlocks(markdown: string, title: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === `## ${title}`);
  if (start === -1) return [];
  const blocks: string[] = [];
  let block: string[] | undefined;
  let fence = false;
  for (const line of lines.slice(start + 1)) {
    if (!fence && /^#{1,6} /.test(line)) break;
    if (/^```/.test(line)) {
      if (!fence && line.trim() === '```sh') block = [];
      else if (fence && block) {
        blocks.push(block.join('\n'));
        block = undefined;
      }
      fence = !fence;
    } else if (fence && block) block.push(line);
  }
  return blocks;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

let bin: string;
beforeAll(() => {
  bin = keysmithOnPath(scratch.fresh());
});

/** Run a README block in `dir` after `prelude`, then `checks`; all in one bash with set -euo pipefail. */
async function runBlock(block: string, dir: string, prelude: string[], checks: string[], env: Record<string, string> = {}) {
  const script = ['set -euo pipefail', ...prelude, block, ...checks].join('\n');
  const r = await runShell('bash', script, { bin, home: dir, cwd: dir, env, timeout: 60_000 });
  expect(r.exitCode, `${block}\n--- stderr:\n${r.stderr}`).toBe(0);
  expect(r.stderr).not.toMatch(/^error:/m);
  return r;
}

describe("the README's examples, as written", () => {
  it('finds the sections and their examples (a renamed section fails here)', () => {
    for (const title of ['Quick start', 'Keychain commands', 'Secret commands']) expect(shellBlocks(README, title).length, title).toBeGreaterThan(0);
    // The extractor stops at subsections: the sync and export examples need etcd and kubectl.
    expect(shellBlocks(README, 'Keychain commands').join('\n')).not.toMatch(/keysmith (sync|export-keychain)/);
  });

  it('example access key IDs have 20 characters, as keysmith and waved make them', () => {
    const ids = README.match(/\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{16,24}\b/g) ?? [];
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(id, id).toHaveLength(20);
  });

  it('Quick start: create, eval --export (a program sees the key), list', async () => {
    const dir = scratch.fresh();
    const [block] = shellBlocks(README, 'Quick start');
    const r = await runBlock(block!, dir, [], [
      'node -e \'if (!/^[A-Z0-9]{20}$/.test(process.env.H2O_WAVE_ACCESS_KEY_ID ?? "")) process.exit(3)\'',
      'echo "$H2O_WAVE_ACCESS_KEY_SECRET" | keysmith verify-access-key "$H2O_WAVE_ACCESS_KEY_ID"',
    ]);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 2).join('\n')).toMatch(/^H2O_WAVE_ACCESS_KEY_ID=[A-Z0-9]{20}\nH2O_WAVE_ACCESS_KEY_SECRET=[A-Za-z0-9]{40}$/);
    expect(lines.slice(2)).toHaveLength(2);
    for (const id of lines.slice(2)) expect(id).toMatch(/^[A-Z0-9]{20}$/);
  });

  const jqMissing = which('jq') ? undefined : 'jq not found (Debian: apt-get install jq)';
  it.skipIf(Boolean(jqMissing) && !CI)(`Keychain commands${jqMissing ? ` (skipped: ${jqMissing})` : ''}`, async () => {
    if (jqMissing) expect.fail(`${jqMissing}; .ci/run installs it`);
    const dir = scratch.fresh();
    mkdirSync(join(dir, 'etc', 'nginx'), { recursive: true });
    const [block] = shellBlocks(README, 'Keychain commands');
    // As root, as on a server; another user gives the file a group of their own.
    const group = isRoot ? 'www-data' : String(process.getgid!());
    const written = block!.replace(/\/etc\/nginx\//g, `${dir}/etc/nginx/`).replace('--group www-data', `--group ${group}`);
    const old = /remove-access-key (\S+)/.exec(block!)![1]!;
    const r = await runBlock(
      written,
      dir,
      [
        'eval "$(keysmith create-access-key --cost 4 --export 2>/dev/null)"',
        `printf 'x\\n' | keysmith set-password -k .wave-keychain ${old} --password-stdin --cost 4 2>/dev/null`,
      ],
      [`! keysmith list-access-keys | grep -qx ${old}`, `test "$(keysmith list-access-keys | wc -l)" -eq 4`],
      { NEW_PASSWORD: 'correct horse battery staple' },
    );
    expect(r.stdout.split('\n').filter((l) => /^[A-Z0-9]{20}$/.test(l))).toHaveLength(3);
    const htpasswd = join(dir, 'etc', 'nginx', '.htpasswd');
    expect(readFileSync(htpasswd, 'utf8')).toMatch(/^alice:\$2b\$10\$/);
    expect(statSync(htpasswd).mode & 0o777).toBe(0o640);
  });

  it('Secret commands', async () => {
    const dir = scratch.fresh();
    const old = 'a'.repeat(64);
    writeFileSync(join(dir, 'config.yml'), `authentication:\n  secret_keys:\n    - "${old}"\n`);
    writeFileSync(join(dir, 'tiled.yaml'), `server:\n  signing_keys: ["${old}"]\n`);
    writeFileSync(join(dir, '.env'), `TILED_SERVER_SECRET_KEYS=${old}\n`);
    writeFileSync(join(dir, 'tiled.conf'), `SECRET_KEYS=${old}\n`);
    const blocks = shellBlocks(README, 'Secret commands');
    expect(blocks).toHaveLength(1);
    await runBlock(blocks[0]!, dir, [], ['test "$(wc -l < keys.txt)" -eq 1000', 'test "$(sort -u keys.txt | wc -l)" -eq 1000']);
    expect(readFileSync(join(dir, 'config.yml'), 'utf8')).toMatch(/secret_keys:\n {4}- "[0-9a-f]{64}"\n {4}- "a{64}"\n$/);
    expect(readFileSync(join(dir, '.env'), 'utf8')).toMatch(/^TILED_SERVER_SECRET_KEYS=[0-9a-f]{64};a{64}\nTILED_SECRET_KEYS='\["[0-9a-f]{64}"\]'\n$/);
  });
});
