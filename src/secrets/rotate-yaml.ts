/**
 * Rotating a list of signing keys in a YAML file, such as Tiled's `authentication.secret_keys`.
 * The document API finds and checks the list; the edit is made on the list's own CST tokens and
 * spliced back into the text, so every other byte (comments, key order, quoting, flow or block
 * style, `${VAR}` items) stays as it was. The result is parsed again and must differ from the
 * original in that list only. `yaml` is imported when a YAML file is rotated, never at start-up.
 */
import { isDeepStrictEqual } from 'node:util';
import type { CST, Scalar, YAMLMap } from 'yaml';
import { FormatError, KeysmithError, UsageError } from '../io/errors.js';
import { rotateList, type Rotation } from './rotation.js';

export const DEFAULT_KEY_PATH = 'authentication.secret_keys';

type Yaml = typeof import('yaml');
type Where = { at: number; indent: number };

export async function rotateYaml(text: string, file: string, keyPath: string, secret: string, keep: number): Promise<Rotation> {
  const yaml = await import('yaml');
  const keys = keyPath.split('.');
  if (keys.includes('')) throw new UsageError(`--key must be a dotted path such as ${DEFAULT_KEY_PATH}, got ${JSON.stringify(keyPath)}`);
  const lineCounter = new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { keepSourceTokens: true, lineCounter, prettyErrors: false });
  const fail = (offset: number | undefined, message: string) => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    return new FormatError(file, line, `${message} (column ${col})`);
  };
  const error = doc.errors[0];
  if (error) throw fail(error.pos[0], error.message);

  /** The rotation, once the new text is checked to differ from the old in the list only. */
  const result = (newText: string, old: string[], kept: number, sources: string[], created = false): Rotation => {
    const list = [secret, ...old.slice(0, kept)];
    const expected = (doc.toJS() ?? {}) as Record<string, unknown>;
    let target = expected;
    for (const key of keys.slice(0, -1)) target = (target[key] ??= {}) as Record<string, unknown>;
    target[keys[keys.length - 1]!] = list;
    const after = yaml.parseDocument(newText);
    if (after.errors.length > 0 || !isDeepStrictEqual(after.toJS(), expected)) {
      throw new KeysmithError(`could not edit ${keyPath} in ${file} safely; the file was left unchanged`, 1, 'please report this with the layout of that part of the file');
    }
    return { text: newText, where: keyPath, kept, dropped: old.length - kept, created, secrets: [secret, ...old, ...sources] };
  };

  // Walk the path. Where it ends early, write the missing keys and a one-item list as new lines.
  const create = (missing: string[], where: Where): Rotation => {
    const eol = eolOf(text);
    let block = '';
    missing.forEach((key, depth) => (block += `${' '.repeat(where.indent + 2 * depth)}${keySource(key)}:${eol}`));
    block += `${' '.repeat(where.indent + 2 * missing.length)}- ${yaml.CST.createScalarToken(secret, { indent: 0, type: scalarType(yaml, undefined, secret), end: [] }).source}${eol}`;
    const at = where.at;
    const gap = at > 0 && text[at - 1] !== '\n' ? eol : '';
    return result(text.slice(0, at) + gap + block + text.slice(at), [], 0, [], true);
  };
  let node: unknown = doc.contents;
  if (isBlank(yaml, node)) return create(keys, { at: text.length, indent: 0 });
  for (let i = 0; i < keys.length; i++) {
    const name = keys.slice(0, i).join('.') || 'the document';
    if (!yaml.isMap(node)) throw fail(rangeOf(node), `${name} is ${kindOf(yaml, node)}, not a mapping`);
    const map: YAMLMap = node;
    const pair = map.items.find((p) => yaml.isScalar(p.key) && String(p.key.value) === keys[i]);
    if (pair && !isBlank(yaml, pair.value)) {
      node = pair.value;
      continue;
    }
    if (map.srcToken?.type !== 'block-map') {
      throw new UsageError(`${name} in ${file} is a flow mapping ({...}); keysmith adds keys to block mappings only`, `add "${keys[i]}: []" to it by hand`);
    }
    if (!pair) return create(keys.slice(i), { at: lineStart(text, map.range![1]), indent: map.srcToken.indent });
    const [keyStart, keyEnd] = (pair.key as Scalar).range!;
    const column = keyStart - (text.lastIndexOf('\n', keyStart - 1) + 1);
    return create(keys.slice(i + 1), { at: lineStart(text, keyEnd), indent: column + 2 });
  }

  if (!yaml.isSeq(node)) throw fail(rangeOf(node), `${keyPath} is ${kindOf(yaml, node)}, not a list`);
  const seq = node;
  const old = seq.items.map((item, n) => {
    if (!yaml.isScalar(item) || typeof item.value !== 'string') throw fail(rangeOf(item) ?? rangeOf(seq), `item ${n + 1} of ${keyPath} is ${kindOf(yaml, item)}, not a string`);
    return item.value;
  });
  const token = seq.srcToken as CST.BlockSequence | CST.FlowCollection;
  const start = token.offset;
  const end = start + yaml.CST.stringify(token).length;
  // The items as written (without quotes), to hide them in diffs even when written with escapes.
  const sources = token.items.flatMap((item) => (item.value ? [(item.value as CST.FlowScalar).source.replace(/^(["'])(.*)\1$/s, '$2')] : []));
  const { kept } = rotateList(secret, old, keep);
  prependItem(yaml, token, secret, scalarType(yaml, seq.items[0] as Scalar | undefined, secret), kept, eolOf(text));
  return result(text.slice(0, start) + yaml.CST.stringify(token) + text.slice(end), old, kept, sources);
}

/** Edit a list's CST tokens: the new key first, then the first `kept` old items; layout as it was. */
function prependItem(yaml: Yaml, token: CST.BlockSequence | CST.FlowCollection, secret: string, type: Scalar.Type, kept: number, eol: string): void {
  const items: CST.CollectionItem[] = token.items.filter((item) => item.value);
  const trailing = token.items.filter((item) => !item.value); // a flow list's trailing comma
  const first = items[0];
  let added: CST.CollectionItem;
  if (token.type === 'block-seq') {
    // The new item takes the first item's place (its indentation belongs to the line before).
    const dash = first!.start.findIndex((t) => t.type === 'seq-item-ind');
    const space = first!.start[dash + 1]?.type === 'space' ? first!.start[dash + 1]!.source : ' ';
    const newline = sourceToken('newline', newlineIn(first!.value) ?? eol, token.indent);
    added = {
      start: [first!.start[dash]!, sourceToken('space', space, token.indent + 1)],
      value: yaml.CST.createScalarToken(secret, { indent: token.indent + 2, type, end: [newline] }),
    };
    first!.start = [sourceToken('space', ' '.repeat(token.indent), 0), ...first!.start];
  } else {
    added = { start: first ? first.start : [], value: yaml.CST.createScalarToken(secret, { indent: token.indent, inFlow: true, type, end: [] }) };
    if (first) first.start = separator(items[1]?.start, token.indent);
    // What followed the old last item (the space before `]`) now follows the new last one.
    const last = [added, ...items][kept]!.value as CST.FlowScalar;
    if (kept < items.length) last.end = (items[items.length - 1]!.value as CST.FlowScalar).end;
  }
  token.items = [added, ...items.slice(0, kept), ...trailing];
}

function eolOf(text: string): string {
  return text.includes('\r\n') ? '\r\n' : '\n';
}

function sourceToken(type: 'space' | 'newline' | 'comma', source: string, indent: number): CST.SourceToken {
  return { type, offset: -1, indent, source };
}

/** Between flow items: the same separator as between the first two, unless it holds a comment. */
function separator(tokens: CST.SourceToken[] | undefined, indent: number): CST.SourceToken[] {
  if (tokens?.every((t) => t.type === 'comma' || t.type === 'space' || t.type === 'newline')) return tokens;
  return [sourceToken('comma', ',', indent), sourceToken('space', ' ', indent)];
}

function newlineIn(token: CST.Token | undefined): string | undefined {
  const end = token && 'end' in token ? token.end : undefined;
  return end?.find((t) => t.type === 'newline')?.source;
}

/** The new key is quoted like the list's first item; plain only when it reads back as the same string. */
function scalarType(yaml: Yaml, neighbour: Scalar | undefined, secret: string): Scalar.Type {
  if (neighbour?.type === 'QUOTE_DOUBLE' || neighbour?.type === 'QUOTE_SINGLE') return neighbour.type;
  const plain = yaml.parseDocument(secret);
  return plain.errors.length === 0 && plain.contents instanceof yaml.Scalar && plain.contents.value === secret ? 'PLAIN' : 'QUOTE_DOUBLE';
}

function keySource(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
}

/** A missing value: no node at all, or `key:` with nothing after it. */
function isBlank(yaml: Yaml, node: unknown): boolean {
  return node == null || (yaml.isScalar(node) && node.value === null && node.source === '');
}

function rangeOf(node: unknown): number | undefined {
  return (node as { range?: [number, number, number] } | null)?.range?.[0];
}

/** The start of the line after offset `at`, unless `at` already starts a line. */
function lineStart(text: string, at: number): number {
  if (at === 0 || text[at - 1] === '\n') return at;
  const nl = text.indexOf('\n', at);
  return nl === -1 ? text.length : nl + 1;
}

function kindOf(yaml: Yaml, node: unknown): string {
  if (yaml.isMap(node)) return 'a mapping';
  if (yaml.isSeq(node)) return 'a list';
  if (yaml.isAlias(node)) return 'an alias';
  if (yaml.isScalar(node)) {
    const value = node.value;
    if (value === null) return 'null';
    return typeof value === 'string' ? 'a string' : `a ${typeof value === 'bigint' ? 'number' : typeof value} (${node.source || String(value)})`;
  }
  return 'not a value';
}
