// Benchmark cases for the keychain commands (issue 3). The runner (bench/run.mjs) times each argv
// against `node -e 0`; `limit` is the largest ratio allowed. Where htpasswd does the same job, its
// time is shown next to keysmith's (information, not judged).
import { spawn } from 'node:child_process';
import { accessSync, constants, copyFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { delimiter, join } from 'node:path';
import bcrypt from 'bcrypt';

const BCRYPT64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function which(command) {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {
      // not here
    }
  }
  return undefined;
}

function randomFrom(alphabet, length) {
  // Benchmark data only: modulo bias does not matter here.
  const bytes = randomBytes(length);
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[bytes[i] % alphabet.length];
  return s;
}

/**
 * A keychain of `n` entries with valid-looking bcrypt cost-10 hashes. Real hashes would take
 * n × 50 ms to make; list and remove never verify, so synthesized ones measure the same work.
 */
function synthesizeKeychain(path, n) {
  const ids = new Set();
  while (ids.size < n) ids.add(randomFrom(ID_ALPHABET, 20));
  const lines = [...ids].map((id) => `${id}:$2b$10$${randomFrom(BCRYPT64, 53)}\n`);
  writeFileSync(path, lines.join(''), { mode: 0o600 });
  return [...ids];
}

function run(command, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    if (input !== undefined) child.stdin.end(input);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${command} ${args.join(' ')}: exit ${code}: ${stderr}`))));
  });
}

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

export default async function keychain(b) {
  const htpasswd = which('htpasswd');
  const node = process.execPath;

  // 10 real keys (cost 10), made by keysmith itself.
  const small = join(b.tmp, 'small.keychain');
  let known;
  const makeSmall = async () => {
    if (known) return;
    const out = await run(node, [b.keysmith, 'create-access-key', '-k', small, '--count', '10', '--json']);
    known = JSON.parse(out.trimEnd().split('\n')[4]);
  };

  // 100,000 keys; each remove run gets a fresh copy (made before the run, not timed).
  const big = join(b.tmp, 'big.keychain');
  let bigIds;
  const makeBig = () => {
    bigIds ??= synthesizeKeychain(big, 100_000);
  };
  const removeTarget = () => bigIds[50_000];
  const removeCopy = join(b.tmp, 'big-remove.keychain');
  const removeCopyPeer = join(b.tmp, 'big-remove-htpasswd');

  const createFile = join(b.tmp, 'create.keychain');
  const createFilePeer = join(b.tmp, 'create.htpasswd');

  const cases = [
    { name: 'keysmith --version', argv: ['--version'], limit: 1.25 },
    { name: 'list-access-keys (10 keys)', argv: ['list-access-keys', '-k', small], setup: makeSmall, limit: 1.25 },
    { name: 'list-access-keys (100,000 keys)', argv: ['list-access-keys', '-k', big], setup: makeBig, limit: 2 },
    {
      name: 'remove-access-key (100,000 keys)',
      get argv() {
        return ['remove-access-key', '-k', removeCopy, removeTarget()];
      },
      setup: makeBig,
      prepare: () => copyFileSync(big, removeCopy),
      limit: 3,
      peer: htpasswd && {
        name: 'htpasswd -D',
        command: htpasswd,
        get args() {
          return ['-D', removeCopyPeer, removeTarget()];
        },
        prepare: () => copyFileSync(big, removeCopyPeer),
      },
    },
    {
      name: 'verify-access-key (cost 10)',
      get argv() {
        return ['verify-access-key', '-k', small, known.id];
      },
      get input() {
        return known.secret;
      },
      setup: makeSmall,
      peer: htpasswd && {
        name: 'htpasswd -vb',
        command: htpasswd,
        get args() {
          return ['-vb', small, known.id, known.secret];
        },
      },
    },
    {
      name: 'create-access-key (cost 10)',
      argv: ['create-access-key', '-k', createFile],
      setup: () => writeFileSync(createFilePeer, ''),
      peer: htpasswd && { name: 'htpasswd -bB -C 10', command: htpasswd, args: ['-bB', '-C', '10', createFilePeer, 'alice', 'correct horse battery'] },
    },
    {
      name: 'create-access-key --count 64 (cost 10)',
      kind: 'throughput',
      run: async () => {
        const cores = availableParallelism();
        // Both sides as the best of several tries, interleaved: the target assumes idle cores, and
        // another process busy on one core halves a parallel run but barely slows a single hash.
        const hashMs = [];
        const runs = [];
        await bcrypt.hash('warm-up', 10);
        for (let i = 0; i < 5; i++) {
          for (let k = 0; k < 3; k++) {
            const t = performance.now();
            await bcrypt.hash('x'.repeat(40), 10);
            hashMs.push(performance.now() - t);
          }
          const file = join(b.tmp, `count64-${i}.keychain`);
          const t = performance.now();
          await run(node, [b.keysmith, 'create-access-key', '-k', file, '--count', '64', '--cost', '10']);
          runs.push(performance.now() - t);
        }
        const oneHash = Math.min(...hashMs);
        const wall = Math.min(...runs);
        const value = 64 / (wall / 1000);
        const ideal = cores / (oneHash / 1000);
        return {
          value,
          unit: 'keys/s',
          target: 0.8 * ideal,
          note: `one cost-10 hash ${oneHash.toFixed(1)} ms (best of 15) × ${cores} core(s) → ideal ${ideal.toFixed(1)} keys/s; ` +
            `--count 64 took ${wall.toFixed(0)} ms (whole process; best of 5, median ${median(runs).toFixed(0)} ms) = ${((100 * value) / ideal).toFixed(0)} % of ideal`,
        };
      },
    },
  ];
  // Without htpasswd, the comparison rows are left out.
  for (const c of cases) if (!c.peer) delete c.peer;
  return cases;
}
