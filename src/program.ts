/**
 * The commander program built from the command table: help, `help <command>`, suggestions for
 * near misses and usage errors. Loaded only when the fast parser (src/argv.ts) declines.
 */
import type { Command } from 'commander';
import { COMMANDS, type CommandSpec } from './commands/table.js';
import type { Ctx } from './io/context.js';

export type Runner = (spec: CommandSpec, positionals: unknown[], options: Record<string, unknown>) => Promise<void>;

export async function buildProgram(ctx: Ctx, version: string, runCommand: Runner): Promise<Command> {
  const { Command, Option } = await import('commander');
  const program = new Command('keysmith')
    .description('Keychains, signing secrets and tokens for small web services.')
    .version(version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
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
