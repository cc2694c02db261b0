/**
 * Putting keysmith on PATH from a clone, as the README says: `npm install -g --prefix ~/.local .`
 * run in a copy of the working tree (so that its `prepare` build never touches the dist/ other
 * tests run), with its node_modules linked to ours and npm offline: nothing is downloaded. The
 * installed `keysmith` must run from that prefix's bin directory.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ROOT, useScratch } from './helpers/keychain-cli.js';
import { cleanEnv } from './helpers/keysmith.js';

const scratch = useScratch('keysmith-install-');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** The README's command that installs from the clone without root. */
function readmeInstallLine(): string {
  const line = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').find((l) => /^npm install -g --prefix ~\/\.local \./.test(l));
  expect(line, 'README: npm install -g --prefix ~/.local .').toBeDefined();
  return line!.replace(/\s+#.*$/, '');
}

/** A copy of the working tree (tracked and new files, as a clone with local changes has them) without dist/. */
function copyOfTree(dest: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)));
  mkdirSync(dest, { recursive: true });
  const tar = execFileSync('tar', ['-c', '--null', '-T', '-', '-f', '-'], { cwd: ROOT, input: files.join('\0'), maxBuffer: 256 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-f', '-'], { cwd: dest, input: tar });
  symlinkSync(join(ROOT, 'node_modules'), join(dest, 'node_modules'));
}

describe('install from a clone', () => {
  it("the README's `npm install -g --prefix ~/.local .` puts a working keysmith in ~/.local/bin, offline", async () => {
    const home = scratch.fresh();
    const clone = join(scratch.fresh(), 'keysmith');
    copyOfTree(clone);
    expect(existsSync(join(clone, 'dist'))).toBe(false);
    const line = readmeInstallLine();
    const env = cleanEnv({ HOME: home, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' });
    const install = await execa('sh', ['-c', line], { cwd: clone, env, extendEnv: false, reject: false, timeout: 120_000, stdin: 'ignore' });
    expect(install.exitCode, `${install.stdout}\n${install.stderr}`).toBe(0);
    const bin = join(home, '.local', 'bin', 'keysmith');
    expect(existsSync(bin)).toBe(true);
    expect(realpathSync(bin)).toBe(join(realpathSync(clone), 'bin', 'keysmith.js'));
    for (const args of [['--version'], ['version']]) {
      const r = await execa(bin, args, { env, extendEnv: false, reject: false, stdin: 'ignore', timeout: 30_000 });
      expect(r).toMatchObject({ exitCode: 0, stdout: `keysmith ${version}`, stderr: '' });
    }
    // On PATH, as a shell finds it.
    const r = await execa('sh', ['-c', 'keysmith generate-secret --bytes 16'], { env: { ...env, PATH: `${join(home, '.local', 'bin')}:${process.env.PATH}` }, extendEnv: false, reject: false, stdin: 'ignore' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^[0-9a-f]{32}$/);
  }, 180_000);

  it('the README no longer suggests npx keysmith, which looks for a registry package instead of the clone', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const blocks = readme.match(/^```sh\n[\s\S]*?^```$/gm) ?? [];
    for (const block of blocks) expect(block).not.toMatch(/^\s*npx keysmith/m);
  });
});
