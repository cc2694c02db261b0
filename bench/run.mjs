#!/usr/bin/env node
/**
 * Benchmark runner for `npm run bench` (which builds first). Loads every bench/cases/*.mjs; each
 * default-exports `async (b) => cases`, where `b = { tmp, keysmith, runs }`:
 *   tmp       a fresh temporary directory for that file's cases (removed afterwards)
 *   keysmith  the absolute path of bin/keysmith.js
 *   runs      how many times each timed case runs (warm-up included), for cases that prepare files
 *
 * A timed case: `{ name, argv, env?, cwd?, input?, limit?, setup?, prepare?, peer? }`
 *   argv      keysmith's arguments (run as `node bin/keysmith.js ...argv`)
 *   limit     the largest allowed ratio of its median wall time to the median of `node -e 0`,
 *             measured in the same run, interleaved; without a limit the case is informational
 *   setup     `async () => void`, once before the case is measured
 *   prepare   `async (run) => void`, before each run, not timed (e.g. a fresh copy of a file)
 *   peer      `{ name, command, args, input?, env?, prepare? }`: the same operation by another
 *             tool (htpasswd), measured interleaved too; its ratio is shown, never judged
 *   baseline  'node+peer': judge `limit` against the median of `node -e 0` plus the peer's
 *             (a request by curl), not `node -e 0` alone
 * A throughput case: `{ name, kind: 'throughput', run: async () => ({ value, unit, target, note }) }`
 *   passes when value >= target; a latency returns `max` instead of `target` and passes when value <= max;
 *   with neither `target` nor `max` it is shown for information, never judged.
 * `b.onCleanup(fn)` registers `async () => void` to run after the file's cases (stop servers).
 *
 * Usage: node bench/run.mjs [substring of case names...]
 * Environment: BENCH_RUNS (default 30), BENCH_WARMUP (default 5).
 * Exit code 1 when a case misses its limit or target, or fails to run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEYSMITH = join(ROOT, 'bin', 'keysmith.js');
const CASES_DIR = join(ROOT, 'bench', 'cases');
const RUNS = positiveInt(process.env.BENCH_RUNS, 30);
const WARMUP = positiveInt(process.env.BENCH_WARMUP, 5, true);
const filters = process.argv.slice(2);

function positiveInt(value, fallback, zeroOk = false) {
  const n = Number(value);
  return value !== undefined && Number.isInteger(n) && (n > 0 || (zeroOk && n === 0)) ? n : fallback;
}

/** Environment for every run: the caller's, minus what would change keysmith's behaviour. */
function baseEnv(extra = {}) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (/^(KEYSMITH_|H2O_WAVE_ACCESS_KEY_)/.test(name)) delete env[name];
  return { ...env, NO_COLOR: '1', ...extra };
}

/** Run a command once; resolves with its wall time in ms; rejects on a non-zero exit. */
function timeOnce(command, args, { env, cwd, input } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      env: baseEnv(env),
      cwd,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    if (input !== undefined) child.stdin.end(input);
    child.on('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${[command, ...args].join(' ')} exited ${code ?? signal}: ${stderr.trim().split('\n')[0] ?? ''}`));
    });
  });
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const NODE_BASELINE = { command: process.execPath, args: ['-e', '0'] };

/**
 * Measure a case, `node -e 0` and the case's peer in interleaved rounds (the order rotates each
 * round, so none of them always runs right after another), after warm-up rounds.
 */
async function measure(c) {
  await c.setup?.();
  const subjects = [
    { key: 'node', run: () => timeOnce(NODE_BASELINE.command, NODE_BASELINE.args) },
    {
      key: 'case',
      run: async (i) => {
        await c.prepare?.(i);
        return timeOnce(process.execPath, [KEYSMITH, ...c.argv], { env: c.env, cwd: c.cwd, input: c.input });
      },
    },
  ];
  if (c.peer) {
    subjects.push({
      key: 'peer',
      run: async (i) => {
        await c.peer.prepare?.(i);
        return timeOnce(c.peer.command, c.peer.args, { env: c.peer.env, input: c.peer.input });
      },
    });
  }
  const times = Object.fromEntries(subjects.map((s) => [s.key, []]));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (let k = 0; k < subjects.length; k++) {
      const s = subjects[(i + k) % subjects.length];
      const ms = await s.run(i);
      if (i >= WARMUP) times[s.key].push(ms);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

const rows = [];
const notes = [];
/** Cleanups the current case file registered with b.onCleanup. */
const cleanups = [];
let failed = false;

function pad(text, width, right = false) {
  text = String(text);
  return right ? text.padStart(width) : text.padEnd(width);
}

async function runCase(c) {
  if (c.kind === 'throughput') {
    const r = await c.run();
    const lower = r.max !== undefined;
    // Neither `target` nor `max`: shown for information (e.g. the same work on another store).
    const info = !lower && r.target === undefined;
    const pass = info || (lower ? r.value <= r.max : r.value >= r.target);
    const limit = info ? '' : lower ? `≤ ${r.max.toFixed(1)}` : `≥ ${r.target.toFixed(1)}`;
    rows.push({ name: c.name, median: `${r.value.toFixed(1)} ${r.unit}`, node: '', ratio: '', limit, result: info ? 'info' : pass ? 'PASS' : 'FAIL' });
    if (r.note) notes.push(`${c.name}: ${r.note}`);
    return pass;
  }
  const m = await measure(c);
  // `baseline: 'node+peer'`: the limit is against `node -e 0` plus the peer (api vs node + curl).
  const both = c.baseline === 'node+peer' && c.peer;
  const ratio = m.case / (both ? m.node + m.peer : m.node);
  const judged = typeof c.limit === 'number';
  const pass = !judged || ratio <= c.limit;
  rows.push({
    name: c.name,
    median: m.case.toFixed(1),
    node: both ? `${m.node.toFixed(1)} + ${m.peer.toFixed(1)}` : m.node.toFixed(1),
    ratio: `${ratio.toFixed(2)}×`,
    limit: judged ? `${c.limit.toFixed(2)}×` : '',
    result: judged ? (pass ? 'PASS' : 'FAIL') : 'info',
  });
  if (c.peer) {
    rows.push({
      name: `  vs ${c.peer.name}`,
      median: m.peer.toFixed(1),
      node: '',
      ratio: `${(m.case / m.peer).toFixed(2)}×`,
      limit: '',
      result: 'info',
    });
  }
  return pass;
}

function printTable() {
  const header = { name: 'case', median: 'median ms', node: 'node -e 0', ratio: 'ratio', limit: 'limit', result: 'result' };
  const all = [header, ...rows];
  const w = Object.fromEntries(Object.keys(header).map((k) => [k, Math.max(...all.map((r) => String(r[k]).length))]));
  for (const r of all) {
    console.log(
      [pad(r.name, w.name), pad(r.median, w.median, true), pad(r.node, w.node, true), pad(r.ratio, w.ratio, true), pad(r.limit, w.limit, true), pad(r.result, w.result)].join('  '),
    );
  }
  for (const n of notes) console.log(`note: ${n}`);
}

const files = readdirSync(CASES_DIR).filter((f) => f.endsWith('.mjs')).sort();
console.log(
  `keysmith benchmarks: node ${process.version}, ${availableParallelism()} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), ` +
    `${RUNS} runs + ${WARMUP} warm-up per case, ratios against \`node -e 0\` measured interleaved\n`,
);
for (const file of files) {
  const tmp = mkdtempSync(join(tmpdir(), `keysmith-bench-${file.replace(/\.mjs$/, '')}-`));
  try {
    const mod = await import(pathToFileURL(join(CASES_DIR, file)).href);
    const cases = await mod.default({ tmp, keysmith: KEYSMITH, runs: WARMUP + RUNS, onCleanup: (fn) => cleanups.push(fn) });
    for (const c of cases) {
      if (filters.length > 0 && !filters.some((f) => c.name.includes(f))) continue;
      process.stderr.write(`running ${file}: ${c.name}...\n`);
      try {
        if (!(await runCase(c))) failed = true;
      } catch (err) {
        failed = true;
        rows.push({ name: c.name, median: '', node: '', ratio: '', limit: '', result: 'ERROR' });
        notes.push(`${c.name}: ${err.message}`);
      }
    }
  } catch (err) {
    failed = true;
    notes.push(`${file}: ${err.stack ?? err}`);
  } finally {
    for (const fn of cleanups.splice(0).reverse()) await Promise.resolve().then(fn).catch((err) => notes.push(`${file}: cleanup: ${err.message ?? err}`));
    rmSync(tmp, { recursive: true, force: true });
  }
}
console.log('');
printTable();
process.exitCode = failed ? 1 : 0;
