/**
 * keysmith as a shell finds it: a `keysmith` command on PATH (a small sh script that runs the built
 * binary with this node), and real shells (bash, zsh, fish) run with it. For the tests of what
 * users type into shells: hints, README examples, completion.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { BIN, cleanEnv } from './keysmith.js';

/** Make `DIR/bin/keysmith`; returns that bin directory (put it first on PATH). */
export function keysmithOnPath(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const shim = join(bin, 'keysmith');
  writeFileSync(shim, `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
  chmodSync(shim, 0o755);
  return bin;
}

/** Where `command` is on PATH, or undefined. */
export function which(command: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Why a shell cannot be used here (missing), or undefined when it can. */
export function shellMissing(shell: 'bash' | 'zsh' | 'fish'): string | undefined {
  return which(shell) ? undefined : `${shell} not found (Debian: apt-get install ${shell})`;
}

export interface ShellRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `script` in `shell` without any user or system start-up files, with `bin` (from
 * keysmithOnPath) first on PATH, HOME and the cwd given; bounded by a timeout.
 */
export async function runShell(
  shell: 'bash' | 'zsh' | 'fish',
  script: string,
  options: { bin: string; home: string; cwd?: string; env?: Record<string, string>; input?: string; timeout?: number },
): Promise<ShellRun> {
  const noConfig = { bash: ['--norc', '--noprofile', '-c'], zsh: ['-f', '-c'], fish: ['--no-config', '-c'] }[shell];
  const r = await execa(shell, [...noConfig, script], {
    env: cleanEnv({ PATH: `${options.bin}${delimiter}${process.env.PATH ?? ''}`, HOME: options.home, ...options.env }),
    extendEnv: false,
    cwd: options.cwd ?? options.home,
    reject: false,
    timeout: options.timeout ?? 30_000,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  });
  if (r.timedOut) throw new Error(`${shell} -c ${JSON.stringify(script.slice(0, 200))} timed out`);
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}
