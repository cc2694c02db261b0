// Bundle src/ into dist/ with esbuild: one small entry chunk (commander and the program
// definition) plus one lazily imported chunk per command. bcrypt stays external (native addon).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

await build({
  entryPoints: { cli: 'src/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['bcrypt'],
  chunkNames: 'chunks/[name]-[hash]',
  define: { __KEYSMITH_VERSION__: JSON.stringify(pkg.version) },
  // CommonJS dependencies (commander, proper-lockfile) call require(); give ESM chunks one.
  banner: { js: "import { createRequire as __ksCreateRequire } from 'node:module'; const require = __ksCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
