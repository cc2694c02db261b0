/**
 * Rotating a list of signing keys in an env file (`KEY=VALUE` lines, as docker compose,
 * python-dotenv and systemd read them): the `;`-separated list of older Tiled servers
 * (`TILED_SERVER_SECRET_KEYS=NEW;OLD`) or the JSON list of current ones
 * (`TILED_SECRET_KEYS='["NEW","OLD"]'`). Only that variable's value changes: its quotes, an
 * `export ` prefix, a trailing comment, `${VAR}` items and every other line stay as they were.
 */
import { FormatError, UsageError } from '../io/errors.js';
import { splitLines } from '../io/text.js';
import { rotateList, type Rotation } from './rotation.js';

export const DEFAULT_VAR = 'TILED_SERVER_SECRET_KEYS';
/** Variables that servers read as JSON lists (pydantic settings); a new one is written in that form. */
const JSON_LIST_VARS = new Set(['TILED_SECRET_KEYS']);

/** Where a variable is assigned, and its list parsed; undefined when the file does not set it. */
interface EnvList {
  lines: Array<{ text: string; eol: string }>;
  index: number;
  head: string;
  quote: string;
  tail: string;
  old: string[];
  /** The value for a new list, written in the same form (JSON or `;`) and quoting. */
  value: (list: string[]) => string;
}

function findEnvList(text: string, file: string, name: string): EnvList | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`--var must be a variable name such as ${DEFAULT_VAR}, got ${JSON.stringify(name)}`);
  const lines = splitLines(text);
  const assignment = new RegExp(`^(\\s*(?:export\\s+)?${name}\\s*=\\s*)(.*)$`);
  let found: { index: number; head: string; rest: string } | undefined;
  lines.forEach((line, index) => {
    const match = assignment.exec(line.text);
    if (!match) return;
    if (found) throw new FormatError(file, index + 1, `${name} is set twice (first on line ${found.index + 1})`);
    found = { index, head: match[1]!, rest: match[2]! };
  });
  if (!found) return undefined;
  const lineNo = found.index + 1;
  const { quote, raw, tail } = splitValue(found.rest, file, lineNo);
  if (raw.trimStart().startsWith('[')) {
    const json = quote === '"' ? raw.replace(/\\(["\\])/g, '$1') : raw;
    const old = parseJsonList(json, () => new FormatError(file, lineNo, `${name} starts with "[" but is not a JSON list of strings`));
    const comma = /",\s+"/.test(json) ? ', ' : ',';
    const value = (list: string[]) => {
      const text = `[${list.map((s) => JSON.stringify(s)).join(comma)}]`;
      return quote === '"' ? text.replace(/["\\]/g, '\\$&') : text;
    };
    return { lines, index: found.index, head: found.head, quote, tail, old, value };
  }
  // Items are kept exactly as written; empty ones (from `;;` or a trailing `;`) are dropped.
  const old = raw.split(';').filter((item) => item !== '');
  return { lines, index: found.index, head: found.head, quote, tail, old, value: (list) => list.join(';') };
}

/** The keys of the list in variable `name`, or undefined when the file does not set it. */
export function readEnvList(text: string, file: string, name: string): string[] | undefined {
  return findEnvList(text, file, name)?.old;
}

export function rotateEnv(text: string, file: string, name: string, secret: string, keep: number): Rotation {
  const found = findEnvList(text, file, name);
  if (!found) {
    const eol = splitLines(text).find((l) => l.eol !== '')?.eol ?? '\n';
    const value = JSON_LIST_VARS.has(name) ? `'${JSON.stringify([secret])}'` : secret;
    const gap = text !== '' && !text.endsWith('\n') ? eol : '';
    return { text: `${text}${gap}${name}=${value}${eol}`, where: name, kept: 0, dropped: 0, created: true, secrets: [secret] };
  }
  const { lines, old } = found;
  const { list, kept, dropped } = rotateList(secret, old, keep);
  lines[found.index]!.text = found.head + found.quote + found.value(list) + found.quote + found.tail;
  return { text: lines.map((l) => l.text + l.eol).join(''), where: name, kept, dropped, created: false, secrets: [secret, ...old] };
}

function parseJsonList(json: string, error: () => FormatError): string[] {
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch {
    throw error();
  }
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) throw error();
  return list;
}

/** A value's quote ('"', "'" or none), its text inside the quotes, and what follows (a comment). */
function splitValue(rest: string, file: string, lineNo: number): { quote: string; raw: string; tail: string } {
  const quote = rest[0];
  if (quote === '"' || quote === "'") {
    let i = 1;
    while (i < rest.length && rest[i] !== quote) i += quote === '"' && rest[i] === '\\' ? 2 : 1;
    if (i >= rest.length) throw new FormatError(file, lineNo, `no closing ${quote} (values over several lines are not supported)`);
    return { quote, raw: rest.slice(1, i), tail: rest.slice(i + 1) };
  }
  // Unquoted, the value ends where a ` #` comment starts; the spaces before it stay with the comment.
  const comment = rest.search(/\s#/);
  const raw = (comment === -1 ? rest : rest.slice(0, comment)).trimEnd();
  return { quote: '', raw, tail: rest.slice(raw.length) };
}
