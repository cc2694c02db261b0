/**
 * The fast argument parser: ordinary invocations are parsed with node:util's parseArgs from the
 * command table, so start-up does not pay for loading commander. Anything it does not accept
 * exactly (help, unknown options, missing arguments, bad choices) returns undefined, and
 * src/program.ts (commander) handles it with proper help and error messages.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { COMMANDS, parseFlags, type CommandSpec } from './commands/table.js';

export type FastParse =
  | { kind: 'version' }
  | { kind: 'command'; spec: CommandSpec; positionals: Array<string | string[] | undefined>; options: Record<string, unknown> };

export function parseFast(argv: string[]): FastParse | undefined {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V' || argv[0] === '-v' || argv[0] === 'version')) return { kind: 'version' };
  const spec = COMMANDS.find((c) => c.name === argv[0]);
  if (!spec) return undefined;
  const config: NonNullable<ParseArgsConfig['options']> = {};
  const flags = spec.options.map((o) => ({ spec: o, ...parseFlags(o.flags) }));
  for (const f of flags) config[f.long] = { type: f.takesValue ? 'string' : 'boolean', ...(f.short && { short: f.short }), ...(f.spec.multiple && { multiple: true }) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv.slice(1), options: config, strict: true, allowPositionals: true });
  } catch {
    return undefined;
  }
  const options: Record<string, unknown> = {};
  for (const f of flags) {
    const value = parsed.values[f.long];
    if (f.negate) options[f.key] = value === undefined ? true : !value;
    else if (value !== undefined) {
      if (f.spec.choices && ![value].flat().every((v) => f.spec.choices!.includes(v as string))) return undefined;
      options[f.key] = value;
    } else if (f.spec.default !== undefined) options[f.key] = f.spec.default;
  }
  const positionals = fitPositionals(spec, parsed.positionals);
  return positionals && { kind: 'command', spec, positionals, options };
}

/** Arrange positionals as commander hands them to actions, or undefined when they do not fit. */
function fitPositionals(spec: CommandSpec, given: string[]): Array<string | string[] | undefined> | undefined {
  const args = spec.args ?? [];
  const result: Array<string | string[] | undefined> = [];
  let i = 0;
  for (const arg of args) {
    const required = arg.name.startsWith('<');
    if (arg.name.endsWith('...>') || arg.name.endsWith('...]')) {
      const rest = given.slice(i);
      if (required && rest.length === 0) return undefined;
      result.push(rest);
      i = given.length;
    } else {
      if (i >= given.length && required) return undefined;
      result.push(given[i++]);
    }
  }
  return i < given.length ? undefined : result;
}
