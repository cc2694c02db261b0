// The V8 code cache of dist/cli.cjs, dist/cli.cjs.cache: made by scripts/build.mjs, read by
// bin/keysmith.js, which compiles the bundle from it instead of from scratch (~3.5-4.5 ms of CPU
// less per command, of ~29; start-up is the product for `token` and `list-access-keys`).
//
// Warmed: the data is V8's after running the hot commands once (`--version`, `token` with a
// cached token, `exec` with it, `list-access-keys`), so it also holds the functions they compile lazily, not only
// the top level (measured: ~0.3-1 ms of CPU less than a cache of the compiled script alone). Each run
// is a child process (`node scripts/code-cache.mjs --child ...`) that compiles the bundle as
// bin/keysmith.js does, from the previous run's data, and writes V8's data when it exits.
//
// import(): Node 20's V8 drops a script's host-defined options when it compiles the script from a
// code cache, so an import() in it fails ("A dynamic import callback was not specified"; fixed in
// V8 12, Node 22), and vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER prints an ExperimentalWarning.
// So the build rewrites the bundle's import("x") calls (all of external packages and node:
// builtins) into __keysmithImport("x"), declared at the end of the bundle: it calls the import()
// that bin/keysmith.js passes in as a sixth wrapper argument when it runs the bundle from the
// cache, and the bundle's own import() otherwise (a plain `require` of the bundle).
//
// File layout: one line of JSON (format, wrapper, Node and V8 versions, arch and platform, byte
// lengths); a copy of the bundle it was made for (bin/keysmith.js compares it byte for byte: V8
// itself only checks the length); V8's data, twice. Node 20's V8 does not checksum a code cache
// (only debug builds do) and crashes on a damaged one, so bin/keysmith.js compares the two copies:
// a memcmp, far cheaper than a checksum in JavaScript or loading node:crypto or node:zlib (~2 ms).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';

/** Also in bin/keysmith.js, which uses a cache only when its header says the same. */
export const FORMAT = 'keysmith-code-cache/1';
export const LOADER_IMPORT = '__keysmithLoaderImport';
export const WRAPPER = [`(function (exports, require, module, __filename, __dirname, ${LOADER_IMPORT}) {\n`, '\n})'];

const HELPER = '__keysmithImport';
const MARKER = 'keysmith-dynamic-import:';
const SELF = fileURLToPath(import.meta.url);

/**
 * esbuild plugin: an import("x") of a package or builtin stays external, with x marked, so that
 * rewriteDynamicImports() finds exactly those calls in the output.
 */
export const markDynamicImports = {
  name: 'keysmith-mark-dynamic-imports',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.kind !== 'dynamic-import' || args.path.startsWith(MARKER)) return undefined;
      return { path: MARKER + args.path, external: true };
    });
  },
};

/**
 * The bundle as written to dist/cli.cjs: marked import() calls go through __keysmithImport.
 * `cacheable` is false when some `import(` is left (an import() of a computed name or a relative
 * path, or just the text in a string): such a bundle must not run from a code cache.
 */
export function rewriteDynamicImports(text) {
  if (text.includes(HELPER) || text.includes(LOADER_IMPORT)) throw new Error(`the bundle already has the name ${HELPER} or ${LOADER_IMPORT}`);
  const marked = new RegExp(`\\bimport\\("${MARKER}((?:[^"\\\\]|\\\\.)*)"\\)`, 'g');
  let out = text.replace(marked, `${HELPER}("$1")`);
  const left = out.indexOf(MARKER);
  if (left !== -1) throw new Error(`esbuild printed an import() in an unexpected form: ${out.slice(left - 40, left + 60)}`);
  const cacheable = !/\bimport\s*\(/.test(out);
  out +=
    `\n// import() through bin/keysmith.js when it runs this bundle from its V8 code cache, where Node 20\n` +
    `// cannot import() for it (scripts/code-cache.mjs).\n` +
    `function ${HELPER}(specifier) {\n` +
    `  return typeof ${LOADER_IMPORT} === "function" ? ${LOADER_IMPORT}(specifier) : import(specifier);\n` +
    `}\n`;
  return { text: out, cacheable };
}

/**
 * Child: compile the bundle in `sourceFile` as `filename`, from the V8 data in `input` ('-': none).
 * `--cold`: write V8's data for the compiled script to `output` at once. Otherwise run the bundle
 * with `args` as its command line, as `require` would, and write V8's data when the process exits.
 */
function child([sourceFile, filename, input, output, ...args]) {
  const source = readFileSync(sourceFile, 'utf8');
  const script = new vm.Script(WRAPPER[0] + source + WRAPPER[1], {
    filename,
    lineOffset: -1,
    cachedData: input === '-' ? undefined : readFileSync(input),
  });
  if (script.cachedDataRejected) process.stderr.write("V8 rejected the previous run's code cache\n");
  if (args[0] === '--cold') {
    writeFileSync(output, script.createCachedData());
    return;
  }
  process.on('exit', () => writeFileSync(output, script.createCachedData()));
  process.argv = [process.argv[0], filename, ...args];
  const module = { exports: {}, id: filename, filename, loaded: false, children: [], paths: [] };
  const wrapper = script.runInThisContext();
  wrapper.call(module.exports, module.exports, createRequire(filename), module, filename, dirname(filename), (specifier) => import(specifier));
}

/** Environment for the warm-up runs: nothing of the caller's (no keysmith settings, no NODE_OPTIONS: V8 flags change the data). */
function warmUpEnv(dir, extra = {}) {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), TMPDIR: process.env.TMPDIR ?? tmpdir() };
  for (const name of ['XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_DATA_HOME', 'XDG_CACHE_HOME']) env[name] = join(dir, name.toLowerCase());
  return { ...env, ...extra };
}

/** The warm-up runs: the hot commands, on temporary files. */
async function warmUps(dir) {
  mkdirSync(join(dir, 'home'), { recursive: true });
  const runs = [{ args: ['--version'], env: warmUpEnv(dir) }];
  try {
    // The benchmark's logged-in profile (bench/lib/session.mjs), which follows the session format.
    // Valid for a day: `token` prints it without asking any server.
    const { writeLoggedInProfile } = await import(pathToFileURL(join(dirname(SELF), '..', 'bench', 'lib', 'session.mjs')).href);
    const profile = { name: 'warm-up', url: 'http://127.0.0.1:9', dialect: 'tiled', provider: 'toy', username: 'warm-up' };
    const session = warmUpEnv(dir, writeLoggedInProfile(join(dir, 'session'), profile));
    runs.push({ args: ['token'], env: session });
    // And `exec` with that token: Node itself as the child, which is sure to be there.
    runs.push({ args: ['exec', '--', process.execPath, '-e', '0'], env: session });
  } catch {
    // no bench/ here: no `token` run
  }
  // Ten entries of the benchmark's shape: `ID:bcrypt hash` (list never verifies them).
  const keychain = join(dir, 'warm-up.keychain');
  const hash = `$2b$10$${'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQ'}`;
  writeFileSync(keychain, Array.from({ length: 10 }, (_, i) => `WARMUP${String(i).padStart(14, '0')}:${hash}\n`).join(''), { mode: 0o600 });
  runs.push({ args: ['list-access-keys', '-k', keychain], env: warmUpEnv(dir) });
  return runs;
}

/**
 * V8's code cache data for `bundle` (the bytes of dist/cli.cjs, which will be at `filename`),
 * warmed by the hot commands unless `warm` is false; undefined when none could be made. A warm-up
 * run that fails is reported to `log` and skipped.
 */
export async function makeCodeCache(bundle, filename, { warm = true, log = (message) => console.warn(message) } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-code-cache-'));
  try {
    const source = join(dir, 'cli.cjs');
    writeFileSync(source, bundle);
    let data;
    const cold = { args: ['--cold'], env: warmUpEnv(dir) };
    for (const run of warm ? [...(await warmUps(dir)), cold] : [cold]) {
      if (run === cold && data !== undefined) break; // the cold one only when no warm-up worked
      const output = join(dir, `data-${Math.random().toString(36).slice(2)}`);
      const r = spawnSync(process.execPath, [SELF, '--child', source, filename, data ?? '-', output, ...run.args], {
        env: run.env,
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 30_000,
        encoding: 'utf8',
      });
      const size = statSync(output, { throwIfNoEntry: false })?.size ?? 0;
      if (r.status !== 0 || size === 0 || r.stderr) {
        const why = r.error ? r.error.message : `exited ${r.status ?? r.signal}`;
        log(`keysmith code cache: the warm-up run \`keysmith ${run.args.join(' ')}\` ${why}${r.stderr ? `: ${r.stderr.trim().split('\n')[0]}` : ''}`);
      }
      if (size > 0) data = output;
    }
    return data === undefined ? undefined : readFileSync(data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The cache file's bytes: header, the bundle, V8's data twice. */
export function cacheFile(bundle, data) {
  const header = {
    format: FORMAT,
    wrapper: WRAPPER.join(''),
    node: process.version,
    v8: process.versions.v8,
    arch: process.arch,
    platform: process.platform,
    source: bundle.length,
    data: data.length,
  };
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`, 'latin1'), bundle, data, data]);
}

if (process.argv[2] === '--child' && process.argv[1] && realpathSync(process.argv[1]) === SELF) child(process.argv.slice(3));
