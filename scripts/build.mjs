// Bundle src/ into one file, dist/cli.js, with esbuild. Start-up is the product for `token` and
// `list-access-keys`: one file of our own code loads faster than a graph of chunks (each ESM module
// costs a resolve and a compile), and its functions are only compiled when called. npm packages
// stay external and load from node_modules when a command needs them (commander only for help and
// usage errors, bcrypt only to hash).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

/**
 * In ESM, `import { readFileSync } from 'node:fs'` builds a namespace from every export of the
 * builtin, which runs lazy getters such as fs.promises and fs.ReadStream and loads Node's whole
 * stream stack (~20 internal modules) before keysmith does anything. process.getBuiltinModule()
 * (Node >= 20.16) returns the plain module object instead, so builtins are served through it.
 */
const builtinsViaGetBuiltinModule = {
  name: 'builtins-via-getBuiltinModule',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'node-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

await build({
  entryPoints: { cli: 'src/main.ts' },
  outdir: 'dist',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  define: { __KEYSMITH_VERSION__: JSON.stringify(pkg.version) },
  plugins: [builtinsViaGetBuiltinModule],
  legalComments: 'none',
  logLevel: 'warning',
});
