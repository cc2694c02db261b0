// Bundle src/ into one CommonJS file, dist/cli.cjs, with esbuild. Start-up is the product for
// `token` and `list-access-keys`:
// - one file of our own code loads faster than a graph of modules (each costs a resolve and a
//   compile), and its functions are only compiled when called;
// - CommonJS, because an ES module entry starts Node's ESM loader first (~5 ms, 6-8 % of
//   `node -e 0` here), while `require` of one file needs nothing more. The source stays ESM;
//   bin/ holds a package.json of type commonjs, so bin/keysmith.js is a plain `require`.
// npm packages stay external and are loaded with import() when a command needs them (commander
// only for help and usage errors, bcrypt only to hash, chalk only to colour); esbuild keeps those
// import() calls, so ESM-only packages load as they are.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

await build({
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
});
