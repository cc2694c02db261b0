/**
 * Rotating a list of signing keys in an env file (`KEY=VALUE` lines, as docker compose,
 * python-dotenv and systemd read them): the `;`-separated list of older Tiled servers
 * (`TILED_SERVER_SECRET_KEYS=NEW;OLD`) or the JSON list of current ones
 * (`TILED_SECRET_KEYS='["NEW","OLD"]'`). Only that variable's value changes: its quotes, an
 * `export ` prefix, a trailing comment, `${VAR}` items and every other line stay as they were.
 *
 * The file is read statement by statement, as python-dotenv and docker compose read it: a quoted
 * value runs to its closing quote, over several lines if need be, so a line inside another
 * variable's value is never taken for an assignment.
 */
import { FormatError, UsageError } from '../io/errors.js';
import { splitLines } from '../io/text.js';
import { hideKey, replaceSpans, rotateList, type Rotation } from './rotation.js';

export const DEFAULT_VAR = 'TILED_SERVER_SECRET_KEYS';
/** Variables that servers read as JSON lists (pydantic settings); a new one is written in that form. */
const JSON_LIST_VARS = new Set(['TILED_SECRET_KEYS']);

/** One `NAME=value` statement of an env file; offsets are into the whole text. */
interface Statement {
  name: string;
  /** The line (from 1) where the statement starts. */
  line: number;
  /** The line where its value ends (the same line unless a quoted value spans lines). */
  lastLine: number;
  /** The value as written: from its opening quote (or first character) to after its closing quote. */
  valueStart: number;
  valueEnd: number;
  quote: '' | '"' | "'";
  /** The value inside its quotes, as written (escapes not decoded). */
  raw: string;
  /** What follows the value on its last line: spaces and a comment. */
  tail: string;
}

/** `export NAME=` or `NAME = ` at the start of a line (python-dotenv's grammar; `'NAME'` too). */
const ASSIGNMENT = /^[ \t]*(?:export[ \t]+)?('[^'\r\n]+'|[^=#\s]+)[ \t]*=[ \t]*/;

/**
 * Every statement of an env file. A quote closes at the next same quote that does not follow a
 * backslash (both readers agree on that); a quote that never closes is an error on the line where it
 * opened, since readers disagree on where such a value ends.
 */
function statements(text: string, file: string): Statement[] {
  const found: Statement[] = [];
  let line = 1;
  let at = 0;
  while (at < text.length) {
    let eol = text.indexOf('\n', at);
    if (eol === -1) eol = text.length;
    const match = ASSIGNMENT.exec(text.slice(at, eol));
    if (!match) {
      at = eol + 1;
      line++;
      continue;
    }
    const name = match[1]!.replace(/^'(.*)'$/, '$1');
    const valueStart = at + match[0].length;
    const quote = text[valueStart];
    if (quote === '"' || quote === "'") {
      let close = valueStart + 1;
      while (close < text.length && !(text[close] === quote && text[close - 1] !== '\\')) close++;
      if (close >= text.length) throw new FormatError(file, line, `the ${quote} that opens the value of ${name} is never closed`);
      const raw = text.slice(valueStart + 1, close);
      const lastLine = line + countLines(raw);
      let end = text.indexOf('\n', close);
      if (end === -1) end = text.length;
      const tail = text.slice(close + 1, end).replace(/\r$/, '');
      found.push({ name, line, lastLine, valueStart, valueEnd: close + 1, quote, raw, tail });
      at = end + 1;
      line = lastLine + 1;
    } else {
      // Unquoted, the value ends where a ` #` comment starts; the spaces before it stay with the comment.
      const rest = text.slice(valueStart, eol).replace(/\r$/, '');
      const comment = rest.search(/\s#/);
      const raw = (comment === -1 ? rest : rest.slice(0, comment)).trimEnd();
      found.push({ name, line, lastLine: line, valueStart, valueEnd: valueStart + raw.length, quote: '', raw, tail: rest.slice(raw.length) });
      at = eol + 1;
      line++;
    }
  }
  return found;
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Where a variable is assigned, and its list parsed. */
interface EnvList {
  statement: Statement;
  old: string[];
  /** The value for a new list, written in the same form (JSON or `;`) and quoting. */
  value: (list: string[]) => string;
  json: boolean;
}

function findEnvList(text: string, file: string, name: string): EnvList | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`--var must be a variable name such as ${DEFAULT_VAR}, got ${JSON.stringify(name)}`);
  const all = statements(text, file).filter((s) => s.name === name);
  if (all.length === 0) return undefined;
  const [statement, twice] = all;
  if (twice) throw new FormatError(file, twice.line, `${name} is set twice (first on line ${statement!.line})`);
  const { quote, raw, tail, line } = statement!;
  if (quote !== '' && !/^\s*(#.*)?$/.test(tail)) throw new FormatError(file, statement!.lastLine, `unexpected text after the closing ${quote} of ${name}`);
  if (raw.trimStart().startsWith('[')) {
    const json = unquoted(statement!);
    const old = parseJsonList(json, () => new FormatError(file, line, `${name} starts with "[" but is not a JSON list of strings`));
    const comma = /",\s+"/.test(json) ? ', ' : ',';
    const value = (list: string[]) => {
      const text = `[${list.map((s) => JSON.stringify(s)).join(comma)}]`;
      return quote === '"' ? text.replace(/["\\]/g, '\\$&') : text;
    };
    return { statement: statement!, old, value, json: true };
  }
  if (/[\r\n]/.test(raw)) {
    throw new FormatError(file, line, `the value of ${name} spans lines ${line} to ${statement!.lastLine}: a ";"-separated key list must be on one line`);
  }
  // Items are kept exactly as written; empty ones (from `;;` or a trailing `;`) are dropped.
  const old = raw.split(';').filter((item) => item !== '');
  return { statement: statement!, old, value: (list) => list.join(';'), json: false };
}

/** A value inside double quotes as the readers see it: `\"` and `\\` undone; other values as written. */
function unquoted({ quote, raw }: Statement): string {
  return quote === '"' ? raw.replace(/\\(["\\])/g, '$1') : raw;
}

/** The keys of the list in variable `name`, or undefined when the file does not set it. */
export function readEnvList(text: string, file: string, name: string): string[] | undefined {
  return findEnvList(text, file, name)?.old;
}

export function rotateEnv(text: string, file: string, name: string, secret: string, keep: number): Rotation {
  const hide = (t: string) => hideKeys(t, file, name);
  const found = findEnvList(text, file, name);
  if (!found) {
    const eol = splitLines(text).find((l) => l.eol !== '')?.eol ?? '\n';
    const value = JSON_LIST_VARS.has(name) ? `'${JSON.stringify([secret])}'` : secret;
    const gap = text !== '' && !text.endsWith('\n') ? eol : '';
    return { text: `${text}${gap}${name}=${value}${eol}`, where: name, kept: 0, dropped: 0, created: true, secrets: [secret], hide };
  }
  const { statement: s, old } = found;
  const { list, kept, dropped } = rotateList(secret, old, keep);
  const after = text.slice(0, s.valueStart) + s.quote + found.value(list) + s.quote + text.slice(s.valueEnd);
  return { text: after, where: name, kept, dropped, created: false, secrets: [secret, ...old, ...writtenKeys(found)], hide };
}

/** The keys as written in a JSON list (with their escapes), to hide them in diffs whatever their form. */
function writtenKeys({ statement: s, json }: EnvList): string[] {
  if (!json) return [];
  const text = unquoted(s);
  return [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
}

/**
 * The lines of `text` with the keys of variable `name` cut to their first 4 characters; a JSON list
 * written in any other way than keysmith writes it (escapes, spacing, lines) is hidden whole:
 * `<2 keys hidden>`.
 */
function hideKeys(text: string, file: string, name: string): string[] {
  let found: EnvList | undefined;
  try {
    found = findEnvList(text, file, name);
  } catch {
    return splitLines(text).map(() => '<line hidden>');
  }
  const spans = [];
  if (found) {
    const { statement: s, old } = found;
    let shown: string;
    if (!found.json) shown = s.raw.split(';').map((item) => (item === '' ? '' : hideKey(item))).join(';');
    else if (found.value(old) === s.raw) shown = found.value(old.map((key) => hideKey(key)));
    else shown = `<${old.length} ${old.length === 1 ? 'key' : 'keys'} hidden>`;
    spans.push({ start: s.valueStart + s.quote.length, end: s.valueEnd - s.quote.length, shown });
  }
  return splitLines(replaceSpans(text, spans)).map((line) => line.text);
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
