/** Executable entry (bundled to dist/cli.js): run and exit with the command's code. */
import { main } from './cli.js';

const code = await main(process.argv.slice(2));
// Let stdout and stderr drain before exiting (pipes to slow readers may still hold data).
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
