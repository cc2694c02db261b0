/** Executable entry (bundled to dist/cli.cjs): run and exit with the command's code. */
import { main } from './cli.js';

const argv = process.argv.slice(2);

// bcrypt hashes on libuv's thread pool, which has 4 threads unless UV_THREADPOOL_SIZE says
// otherwise, so `create-access-key --count` would use at most 4 cores. The pool reads the variable
// when it starts, on first use; nothing has used it yet (the bundle is CommonJS and loads
// synchronously; an ES module entry would already have started it). node:os costs ~1 ms to load,
// so only the command that hashes in parallel asks it.
if (!process.env.UV_THREADPOOL_SIZE && argv.includes('create-access-key')) {
  const { availableParallelism } = process.getBuiltinModule('node:os') as typeof import('node:os');
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, availableParallelism()));
}

// Output was written synchronously; exit at once, so a lingering socket or timer never keeps a
// script waiting. (No top-level await: the bundle is CommonJS, see scripts/build.mjs.)
void main(argv).then((code) => process.exit(code));
