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
import { printable } from '../io/escape.js';
import { splitLines } from '../io/text.js';
import { hideKey, replaceSpans, rotateList, type Rotation } from './rotation.js';

export const DEFAULT_KEY_PATH = 'authentication.secret_keys';

type Yaml = typeof import('yaml');
type Where = { at: number; indent: number };

/** Why keysmith refuses a list reached through an alias or a merge key, or one that is shared. */
const SHARED = 'keysmith rotates only a list written out in place, never one that is shared or merged in';

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
  if (error) throw fail(error.pos[0], libraryMessage(error.message));

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
    return { text: newText, where: keyPath, kept, dropped: old.length - kept, created, secrets: [secret, ...old, ...sources], hide: (t) => hideKeys(yaml, t, keys) };
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
  // An alias or a merge key on the way would make keysmith edit a list that is shared, or add one
  // that hides the keys still in use behind it: refuse both (see sharedBy and mergedFrom).
  const sharedBy = aliasesByTarget(yaml, doc);
  const notShared = (node: unknown, name: string) => {
    const alias = sharedBy.get(node);
    if (!alias) return;
    const anchor = (node as { anchor?: string }).anchor ?? alias.source;
    const { line } = lineCounter.linePos(rangeOf(alias) ?? 0);
    throw fail(rangeOf(node), `${name} is anchored (&${anchor}) and used again as *${alias.source} on line ${line}; ${SHARED}`);
  };
  const notAlias = (node: unknown, name: string) => {
    if (!yaml.isAlias(node)) return;
    const target = node.resolve(doc);
    const where = target ? ` (${kindOf(yaml, target)} on line ${lineCounter.linePos(rangeOf(target) ?? 0).line})` : '';
    throw fail(rangeOf(node), `${name} is an alias, *${node.source}${where}; ${SHARED}`);
  };
  let node: unknown = doc.contents;
  if (isBlank(yaml, node)) return create(keys, { at: text.length, indent: 0 });
  for (let i = 0; i < keys.length; i++) {
    const name = keys.slice(0, i).join('.') || 'the document';
    notAlias(node, name);
    if (!yaml.isMap(node)) throw fail(rangeOf(node), `${name} is ${kindOf(yaml, node)}, not a mapping`);
    notShared(node, name);
    const map: YAMLMap = node;
    const aliasKey = map.items.find((p) => yaml.isAlias(p.key) && yaml.isScalar(p.key.resolve(doc)) && String((p.key.resolve(doc) as Scalar).value) === keys[i]);
    if (aliasKey) throw fail(rangeOf(aliasKey.key), `the key ${keys.slice(0, i + 1).join('.')} is written as an alias (*${(aliasKey.key as { source: string }).source}); ${SHARED}`);
    const pair = map.items.find((p) => yaml.isScalar(p.key) && String(p.key.value) === keys[i]);
    if (pair && !isBlank(yaml, pair.value)) {
      node = pair.value;
      continue;
    }
    if (!pair) {
      // A key given by a merge (`<<: *defaults`) would be hidden by the one keysmith would add.
      const merge = mergedFrom(yaml, doc, map, keys[i]!);
      if (merge) {
        const what = keys.slice(0, i + 1).join('.');
        throw fail(rangeOf(merge.key), `${what} comes from the merge key ${merge.shown}; ${SHARED}`);
      }
    }
    if (map.srcToken?.type !== 'block-map') {
      throw new UsageError(`${name} in ${file} is a flow mapping ({...}); keysmith adds keys to block mappings only`, `add "${keys[i]}: []" to it by hand`);
    }
    if (!pair) return create(keys.slice(i), { at: lineStart(text, map.range![1]), indent: map.srcToken.indent });
    const [keyStart, keyEnd] = (pair.key as Scalar).range!;
    const column = keyStart - (text.lastIndexOf('\n', keyStart - 1) + 1);
    return create(keys.slice(i + 1), { at: lineStart(text, keyEnd), indent: column + 2 });
  }

  notAlias(node, keyPath);
  if (!yaml.isSeq(node)) throw fail(rangeOf(node), `${keyPath} is ${kindOf(yaml, node)}, not a list`);
  const seq = node;
  notShared(seq, keyPath);
  const old = seq.items.map((item, n) => {
    if (!yaml.isScalar(item) || typeof item.value !== 'string') throw fail(rangeOf(item) ?? rangeOf(seq), `item ${n + 1} of ${keyPath} is ${kindOf(yaml, item)}, not a string`);
    notShared(item, `item ${n + 1} of ${keyPath}`);
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

/**
 * The lines of `text` with each item of the list at `keys` cut to its first 4 characters, in its
 * quotes (`"3b0e…"`); an item over several lines (`|`, `>`, a folded scalar) becomes `<key hidden>`.
 */
function hideKeys(yaml: Yaml, text: string, keys: string[]): string[] {
  const doc = yaml.parseDocument(text);
  if (doc.errors.length > 0) return splitLines(text).map(() => '<line hidden>');
  const list = doc.getIn(keys, true);
  const spans = [];
  if (yaml.isSeq(list)) {
    for (const item of list.items) {
      const range = rangeOf(item) === undefined ? undefined : (item as Scalar).range!;
      if (!range) continue;
      const written = text.slice(range[0], range[1]);
      const value = yaml.isScalar(item) ? String(item.value) : '';
      const quote = yaml.isScalar(item) && (item.type === 'QUOTE_DOUBLE' || item.type === 'QUOTE_SINGLE') ? written[0]! : '';
      const oneLine = !/[\r\n]/.test(written.trimEnd()) && (yaml.isScalar(item) && (item.type === 'PLAIN' || quote !== ''));
      const shown = oneLine ? quote + hideKey(quote ? written.slice(1, -1) : written, value) + quote : '<key hidden>';
      spans.push({ start: range[0], end: oneLine ? range[0] + written.length : range[1], shown });
    }
  }
  return splitLines(replaceSpans(text, spans)).map((line) => line.text);
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
    if (typeof value === 'string') return 'a string';
    // Never more than 4 characters of what is written: an unquoted key of digits reads as a number.
    return `a ${typeof value === 'bigint' ? 'number' : typeof value} (${printable(String(node.source || value), 4)})`;
  }
  return 'not a value';
}

/**
 * A message of the yaml package without the file content it may quote (a tag, a plain scalar, an
 * escape sequence, a block scalar header): what follows its fixed words is cut to 4 characters.
 */
export function libraryMessage(message: string): string {
  const quoted = /^(Plain value cannot start with |Could not resolve tag: |Not a valid tag: |Unresolved tag: |Unresolved plain scalar |Block scalar header includes extra characters: |Invalid escape sequence |Ordered maps must not include duplicate keys: |Verbatim tags aren't resolved, so )(.*)$/s.exec(message);
  const line = quoted ? quoted[1]! + printable(quoted[2]!, 4) : message;
  return line.split(/\r?\n/)[0]!;
}

/** The node each alias of the document points to, and the first alias that does. */
function aliasesByTarget(yaml: Yaml, doc: import('yaml').Document.Parsed): Map<unknown, import('yaml').Alias> {
  const targets = new Map<unknown, import('yaml').Alias>();
  yaml.visit(doc, {
    Alias(_, alias) {
      const target = alias.resolve(doc);
      if (target && !targets.has(target)) targets.set(target, alias);
    },
  });
  return targets;
}

/** `<<` as a key: YAML 1.1's merge key, which Tiled's PyYAML follows (the yaml package does not, by default). */
function isMergeKey(yaml: Yaml, key: unknown): boolean {
  return yaml.isScalar(key) && key.value === '<<';
}

/**
 * The merge key of `map` (`<<: *defaults`, `<<: [*a, *b]`, `<<: {...}`) through which `key` could
 * come into it, followed through merges of merges; undefined when none can give that key.
 */
function mergedFrom(yaml: Yaml, doc: import('yaml').Document.Parsed, map: YAMLMap, key: string, seen = new Set<unknown>()): { key: unknown; shown: string } | undefined {
  for (const pair of map.items) {
    if (!isMergeKey(yaml, pair.key)) continue;
    const value = pair.value;
    const named = (node: unknown) => (yaml.isAlias(node) ? `*${node.source}` : yaml.isMap(node) ? '{…}' : '…');
    const shown = `(<<: ${yaml.isSeq(value) ? `[${value.items.map(named).join(', ')}]` : named(value)})`;
    for (const source of yaml.isSeq(value) ? value.items : [value]) {
      const target = yaml.isAlias(source) ? source.resolve(doc) : source;
      if (!yaml.isMap(target)) return { key: pair.key, shown }; // one keysmith cannot follow: it might
      if (seen.has(target)) continue;
      seen.add(target);
      if (target.items.some((p) => (yaml.isScalar(p.key) || yaml.isAlias(p.key)) && String(yaml.isAlias(p.key) ? (p.key.resolve(doc) as Scalar | undefined)?.value : p.key.value) === key)) {
        return { key: pair.key, shown };
      }
      if (mergedFrom(yaml, doc, target, key, seen)) return { key: pair.key, shown };
    }
  }
  return undefined;
}
