/** Executable entry (bundled to dist/cli.cjs): run and exit with the command's code. */
import { main } from './cli.js';

// Output was written synchronously; exit at once, so a lingering socket or timer never keeps a
// script waiting. (No top-level await: the bundle is CommonJS, see scripts/build.mjs.)
void main(process.argv.slice(2)).then((code) => process.exit(code));
