/**
 * Concurrency and crashes: many keysmith processes on one keychain at once lose nothing, and
 * writers killed with SIGKILL at random moments never leave a reader an empty or torn file.
 * Bounded loops and generous timeouts only: this must hold on a loaded 2-core machine.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { decodeText, entries, parseKeychain } from '../src/keychain/format.js';
import { BIN, cleanEnv, keysmith, useScratch } from './helpers/keychain-cli.js';

const scratch = useScratch('keysmith-concurrency-');
const freshKeychain = () => join(scratch.fresh(), 'keychain');

function idsInFile(path: string): string[] {
  return entries(parseKeychain(decodeText(readFileSync(path), path), path)).map((e) => e.id);
}

async function createKeys(keychain: string, count: number): Promise<string[]> {
  const r = await keysmith(['create-access-key', '-k', keychain, '--cost', '4', '--count', String(count), '--json'], { timeout: 60_000 });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { id: string }).id);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('concurrent writers', () => {
  it('50 concurrent create-access-key processes keep all 50 keys', async () => {
    const keychain = freshKeychain();
    // A key that is there before the race must survive it too (htpasswd loses it every time).
    const [first] = await createKeys(keychain, 1);
    const runs = await Promise.all(
      Array.from({ length: 50 }, () => keysmith(['create-access-key', '-k', keychain, '--cost', '4', '--json'], { timeout: 120_000 })),
    );
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);
    const created = runs.map((r) => (JSON.parse(r.stdout) as { id: string }).id);
    expect(new Set(created).size).toBe(50);

    const list = await keysmith(['list-access-keys', '-k', keychain]);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toBe([first!, ...created].sort().join('\n') + '\n');
    expect(idsInFile(keychain).sort()).toEqual([first!, ...created].sort());
    expect(readdirSync(join(keychain, '..'))).toEqual(['keychain']);
  }, 180_000);

  it('removes racing creates: every remove and every create lands', async () => {
    const keychain = freshKeychain();
    const seeded = await createKeys(keychain, 25);
    const jobs: Array<Promise<{ kind: 'create' | 'remove'; r: Awaited<ReturnType<typeof keysmith>> }>> = [];
    for (let i = 0; i < 25; i++) {
      jobs.push(keysmith(['remove-access-key', '-k', keychain, seeded[i]!], { timeout: 120_000 }).then((r) => ({ kind: 'remove' as const, r })));
      jobs.push(keysmith(['create-access-key', '-k', keychain, '--cost', '4', '--json'], { timeout: 120_000 }).then((r) => ({ kind: 'create' as const, r })));
    }
    const done = await Promise.all(jobs);
    for (const { r } of done) expect(r.exitCode, r.stderr).toBe(0);
    const created = done.filter((d) => d.kind === 'create').map((d) => (JSON.parse(d.r.stdout) as { id: string }).id);
    expect(idsInFile(keychain).sort()).toEqual(created.sort());
    expect(readdirSync(join(keychain, '..'))).toEqual(['keychain']);
  }, 180_000);
});

describe('SIGKILL at random moments', () => {
  it('never leaves a reader an empty or torn file, and the next write still succeeds', async () => {
    const keychain = freshKeychain();
    const dir = join(keychain, '..');
    // Protected keys are never removed or rotated: every read must contain all of them.
    const protectedIds = await createKeys(keychain, 5);
    await createKeys(keychain, 20);
    const maxEntries = 25 + 3 * 200; // seed + at most 3 keys per create, far more creates than we start

    // The reader: in this process, reading and parsing as fast as timers allow while writers die.
    let reads = 0;
    let minSeen = Infinity;
    let maxSeen = 0;
    const problems: string[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        try {
          const ids = new Set(idsInFile(keychain));
          reads++;
          minSeen = Math.min(minSeen, ids.size);
          maxSeen = Math.max(maxSeen, ids.size);
          const lost = protectedIds.filter((id) => !ids.has(id));
          if (lost.length > 0) problems.push(`read ${reads}: protected keys missing: ${lost.join(', ')}`);
          if (ids.size > maxEntries) problems.push(`read ${reads}: implausible ${ids.size} entries`);
        } catch (err) {
          problems.push(`read ${reads}: ${(err as Error).message}`);
        }
        if (problems.length > 20) break;
        await sleep(1);
      }
    })();

    const started = Date.now();
    let kills = 0;
    let completed = 0;
    let rounds = 0;
    let locksCleared = 0;
    const lockDir = `${keychain}.lock`;
    // Rounds of 1-3 writers, each SIGKILLed at a random moment (or finishing first), bounded by
    // kill count and wall time.
    while (kills < 60 && Date.now() - started < 20_000) {
      rounds++;
      const current = idsInFile(keychain).filter((id) => !protectedIds.includes(id));
      const writers = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => {
        const op = Math.floor(Math.random() * 3);
        const victim = current[Math.floor(Math.random() * current.length)];
        const args =
          op === 0 || !victim
            ? ['create-access-key', '--cost', '4', '--count', String(1 + Math.floor(Math.random() * 3))]
            : op === 1
              ? ['remove-access-key', victim]
              : ['rotate-access-key', victim, '--cost', '4'];
        const child = execa(process.execPath, [BIN, ...args, '-k', keychain], {
          env: cleanEnv(),
          extendEnv: false,
          stdin: 'ignore',
          reject: false,
          timeout: 60_000,
        });
        const delay = 20 + Math.random() * 400;
        const timer = setTimeout(() => {
          if (child.exitCode === null && child.kill('SIGKILL')) kills++;
        }, delay);
        return child.then((r) => {
          clearTimeout(timer);
          if (r.exitCode === 0) completed++;
          return r;
        });
      });
      await Promise.all(writers);
      // Every writer of this round is dead. A lock left by one killed inside its critical section
      // would block writers for the 10 s stale window; clear it between rounds to keep the loop
      // busy (nobody holds it). The last round's lock, if any, is left for the final write below.
      if (kills < 60 && Date.now() - started < 20_000 && existsSync(lockDir)) {
        rmSync(lockDir, { recursive: true, force: true });
        locksCleared++;
      }
    }
    reading = false;
    await reader;

    const leftoverTemps = readdirSync(dir).filter((f) => f.endsWith('.tmp'));
    // What happened, for people tuning this test: KEYSMITH_TEST_VERBOSE=1 (npm test prints no stray lines).
    if (process.env.KEYSMITH_TEST_VERBOSE) console.log(
      `SIGKILL test: ${rounds} rounds, ${kills} kills, ${completed} writers finished, ${reads} reads ` +
        `(entries ${minSeen}..${maxSeen}), ${locksCleared} stale locks cleared between rounds, ` +
        `${leftoverTemps.length} temp files left by killed writers, lock left at the end: ${existsSync(lockDir)}`,
    );
    expect(problems).toEqual([]);
    expect(reads).toBeGreaterThan(100);
    expect(kills).toBeGreaterThan(0);
    expect(minSeen).toBeGreaterThanOrEqual(protectedIds.length);

    // The file as the writers left it parses and has every protected key.
    const after = idsInFile(keychain);
    for (const id of protectedIds) expect(after).toContain(id);

    // Leave a lock as a writer killed inside its critical section does, if the loop did not: the
    // next write must wait out the stale window (10 s) and then succeed.
    if (!existsSync(lockDir)) mkdirSync(lockDir);
    const next = await keysmith(['create-access-key', '-k', keychain, '--cost', '4'], { timeout: 45_000 });
    expect(next.exitCode, next.stderr).toBe(0);
    const id = /H2O_WAVE_ACCESS_KEY_ID=([A-Z0-9]{20})/.exec(next.stdout)![1]!;
    expect(idsInFile(keychain)).toEqual([...after, id]);
    expect(existsSync(lockDir)).toBe(false);
    // Temp files of killed writers are cleaned up by the next write.
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 120_000);
});
