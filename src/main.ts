/** Executable entry (bundled to dist/cli.js): run and exit with the command's code. */
import { main } from './cli.js';

const code = await main(process.argv.slice(2));
// Output was written synchronously; exit now, so a lingering socket or timer never keeps a
// script waiting.
process.exit(code);
