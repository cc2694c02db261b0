/**
 * The commander program built from the command table: help, `help <command>` and usage errors.
 * Loaded only when the fast parser (src/argv.ts) declines. Before commander parses, the command
 * line is checked for habits of other tools (src/habits.ts) and for unknown commands; commander's
 * own errors are turned into keysmith's (one `error:` line, and a `hint:` line with the command
 * that was probably meant), printed by src/cli.ts like every other error.
 */
import type { Command } from 'commander';
import { COMMANDS, type CommandSpec } from './commands/table.js';
import type { Ctx } from './io/context.js';
import { UsageError } from './io/errors.js';
import { closest, commandLine } from './io/words.js';

export type Runner = (spec: CommandSpec, positionals: unknown[], options: Record<string, unknown>) => Promise<void>;

/** Commander's outcomes that are not errors (help shown, version printed), or that it printed itself. */
const PASS_THROUGH = new Set(['commander.helpDisplayed', 'commander.version', 'commander.help']);

export async function buildProgram(ctx: Ctx, version: string, runCommand: Runner): Promise<Command> {
  const { Command, Option } = await import('commander');

  class Program extends Command {
    override async parseAsync(argv?: readonly string[], parseOptions?: { from: 'user' | 'node' | 'electron' }): Promise<this> {
      const args = argv ?? [];
      const problem = await precheck(args);
      if (problem) throw problem;
      try {
        return await super.parseAsync(args, parseOptions);
      } catch (err) {
        throw fromCommander(err, args) ?? err;
      }
    }
  }

  const program = new Program('keysmith')
    .description('Keychains, signing secrets and tokens for small web services.')
    .version(`keysmith ${version}`, '-V, --version', 'print the version (also: -v, keysmith version)')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
      // Errors are thrown on (exitOverride) and printed by src/cli.ts with their hint.
      outputError: () => {},
    })
    .exitOverride();
  program.helpCommand('help [command]', 'show help for a command');
  for (const spec of COMMANDS) {
    const command = program.command(spec.name).description(spec.description);
    for (const arg of spec.args ?? []) command.argument(arg.name, arg.description);
    for (const o of spec.options) {
      const option = new Option(o.flags, o.description);
      if (o.choices) option.choices(o.choices);
      if (o.default !== undefined) option.default(o.default);
      if (o.multiple) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
      command.addOption(option);
    }
    command.action(async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      await runCommand(spec, args.slice(0, -2), cmd.opts());
    });
  }
  return program;
}

const NAMES = COMMANDS.map((c) => c.name);

/** `keysmith NAME` for the closest command to `typed`, or where to look. */
function commandHint(typed: string, toLine: (name: string) => string[]): string {
  const near = closest(typed, NAMES);
  return near ? commandLine(toLine(near)) : 'keysmith --help lists the commands';
}

/** Habits of other tools, `help TYPO` and `TYPO ...`: a UsageError with a hint, before commander sees them. */
async function precheck(argv: readonly string[]): Promise<UsageError | undefined> {
  const { habit } = await import('./habits.js');
  const found = habit(argv);
  if (found) return found;
  const [first, second] = argv;
  if (first === 'help' && second !== undefined && !NAMES.includes(second)) {
    return new UsageError(`unknown command '${second}'`, commandHint(second, (name) => ['help', name]));
  }
  if (first !== undefined && first !== 'help' && !first.startsWith('-') && !NAMES.includes(first)) {
    return new UsageError(`unknown command '${first}'`, commandHint(first, (name) => [name, ...argv.slice(1)]));
  }
  return undefined;
}

/** A commander error as keysmith's UsageError: its message, and the corrected command line as the hint. */
function fromCommander(err: unknown, argv: readonly string[]): UsageError | undefined {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !code.startsWith('commander.') || PASS_THROUGH.has(code) || typeof message !== 'string') return undefined;
  const [first = '', ...rest] = message.split('\n');
  const text = first.replace(/^error: /, '');
  const replace = (from: string, to: string) =>
    commandLine(argv.map((a) => (a === from ? to : a.startsWith(`${from}=`) ? `${to}${a.slice(from.length)}` : a)));
  // "unknown option '--jsn'" and commander's "(Did you mean --json?)" or "(Did you mean one of --count, --cost?)"
  const unknown = /^unknown option '([^']+)'/.exec(text)?.[1]?.split('=')[0];
  const offered = /\(Did you mean (?:one of )?(.+?)\?\)/.exec(rest.join(' '))?.[1]?.split(', ');
  if (unknown && offered) return new UsageError(text, `${replace(unknown, offered[0]!)}${offered.length > 1 ? ` (or ${offered.slice(1).join(', ')})` : ''}`);
  // "option '--dialect <dialect>' argument 'tiledd' is invalid. Allowed choices are auto, tiled, ..."
  const invalid = /argument '([^']*)' is invalid\. Allowed choices are (.*)\.$/.exec(text);
  if (invalid) {
    const near = closest(invalid[1]!, invalid[2]!.split(', '));
    if (near) return new UsageError(text, replace(invalid[1]!, near));
  }
  const name = NAMES.find((n) => n === argv[0]);
  return new UsageError(text, name ? `${commandLine([name, '--help'])} shows its arguments and options` : 'keysmith --help lists the commands');
}
