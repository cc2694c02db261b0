// Bundle src/ into one CommonJS file, dist/cli.cjs, with esbuild. Start-up is the product for
// `token` and `list-access-keys`:
// - one file of our own code loads faster than a graph of modules (each costs a resolve and a
//   compile), and its functions are only compiled when called;
// - CommonJS, because an ES module entry starts Node's ESM loader first (~5 ms, 6-8 % of
//   `node -e 0` here), while `require` of one file needs nothing more. The source stays ESM;
//   bin/ holds a package.json of type commonjs, so bin/keysmith.js is CommonJS too.
// - a V8 code cache of the bundle, dist/cli.cjs.cache, warmed by running the hot commands once:
//   bin/keysmith.js compiles the bundle from it (~3.5-4.5 ms of CPU less per command), and falls back
//   to `require` without it (scripts/code-cache.mjs).
// npm packages stay external and are loaded with import() when a command needs them (commander
// only for help and usage errors, bcrypt only to hash, chalk only to colour); esbuild keeps those
// import() calls, so ESM-only packages load as they are (through bin/keysmith.js when the bundle
// runs from the code cache, see scripts/code-cache.mjs).
//
// Others may run the bundle while this rebuilds it: every file in dist/ is replaced atomically
// (written beside it, then renamed), never deleted first, so a reader sees the old file or the new
// one, never a missing or half-written one. A cache beside a bundle it was not made for is
// ignored by bin/keysmith.js (it compares the bundle byte for byte).
import { build } from 'esbuild';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheFile, makeCodeCache, markDynamicImports, rewriteDynamicImports } from './code-cache.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const BUNDLE = join(DIST, 'cli.cjs');
const CACHE = `${BUNDLE}.cache`;
/** Temporary files of a build that died are removed by a later build after this long. */
const STALE_TEMP_MS = 60 * 60 * 1000;

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/** Write `path` so that no reader ever sees it missing or half written, even after a crash. */
function writeAtomically(path, data) {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    const fd = openSync(temp, 'w');
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
  }
}

const result = await build({
  absWorkingDir: ROOT,
  entryPoints: ['src/main.ts'],
  outfile: 'dist/cli.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  define: { __KEYSMITH_VERSION__: JSON.stringify(pkg.version) },
  legalComments: 'none',
  logLevel: 'warning',
  write: false,
  plugins: [markDynamicImports],
});

// All in dist/ (by name: esbuild's absolute paths may spell a symlinked ROOT another way).
const outputs = new Map(result.outputFiles.map((f) => [join(DIST, basename(f.path)), Buffer.from(f.contents)]));
const main = outputs.get(BUNDLE);
if (!main) throw new Error(`esbuild wrote no ${BUNDLE}`);
const { text, cacheable } = rewriteDynamicImports(main.toString('utf8'));
const bundle = Buffer.from(text, 'utf8');
outputs.set(BUNDLE, bundle);

// The cache is made before anything is replaced, so that the new bundle and its cache land
// moments apart. Without one (an import() the rewrite does not cover, or no warm-up run worked),
// bin/keysmith.js just requires the bundle.
let cache;
if (cacheable) {
  const data = await makeCodeCache(bundle, BUNDLE);
  if (data) cache = cacheFile(bundle, data);
} else {
  console.warn('keysmith build: dist/cli.cjs has an import() of a computed name (or the text "import(" in a string); no code cache');
}

mkdirSync(DIST, { recursive: true });
for (const [path, contents] of outputs) writeAtomically(path, contents);
// Another build may have replaced the bundle meanwhile: then its own cache belongs there, not ours.
if (readFileSync(BUNDLE).equals(bundle)) {
  if (cache) writeAtomically(CACHE, cache);
  else rmSync(CACHE, { force: true });
}

// What an earlier build left that this one did not make (the build used to empty dist/ first).
const keep = new Set([...outputs.keys(), CACHE].map((p) => basename(p)));
for (const name of readdirSync(DIST)) {
  const path = join(DIST, name);
  if (keep.has(name)) continue;
  if (name.startsWith('.') && name.endsWith('.tmp')) {
    // another build's file in progress, unless it is old
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || Date.now() - st.mtimeMs < STALE_TEMP_MS) continue;
  }
  rmSync(path, { recursive: true, force: true });
}
