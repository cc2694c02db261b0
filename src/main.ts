/** Executable entry (bundled to dist/cli.js): run and exit with the command's code. */
import { main } from './cli.js';

const code = await main(process.argv.slice(2));
// Exit explicitly (a lingering socket or timer must not keep a script waiting), once stdout has
// drained; stderr writes are synchronous for files, pipes and terminals.
process.stdout.write('', () => process.exit(code));
