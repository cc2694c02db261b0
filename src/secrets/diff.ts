/** A unified diff of two texts without context lines (like `diff -U0`), for dry runs. */
import { splitLines } from '../io/text.js';

/** Above this many line pairs in the changed middle, show it as replaced rather than compute the LCS. */
const MAX_LCS_CELLS = 4_000_000;

type Op = { kind: ' ' | '-' | '+'; line: string; index: number };

/**
 * Lines of `before` and `after` that differ, in hunks with `@@ -a,n +b,m @@` headers; each line
 * is passed through `show` (to hide secrets) with its index (from 0) in `before` ('-') or `after`
 * ('+'). Empty when the texts have the same lines.
 */
export function unifiedDiff(
  before: string,
  after: string,
  fromName: string,
  toName: string,
  show: (line: string, kind: '-' | '+', index: number) => string = (line) => line,
): string {
  const a = splitLines(before).map((l) => l.text);
  const b = splitLines(after).map((l) => l.text);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const ops = middleOps(a.slice(head, a.length - tail), b.slice(head, b.length - tail), head);
  if (ops.length === 0) return '';
  let text = `--- ${fromName}\n+++ ${toName}\n`;
  let lineA = head + 1;
  let lineB = head + 1;
  for (let i = 0; i < ops.length; ) {
    if (ops[i]!.kind === ' ') {
      lineA++;
      lineB++;
      i++;
      continue;
    }
    let j = i;
    while (j < ops.length && ops[j]!.kind !== ' ') j++;
    const hunk = ops.slice(i, j);
    const removed = hunk.filter((op) => op.kind === '-').length;
    const added = hunk.length - removed;
    text += `@@ -${range(lineA, removed)} +${range(lineB, added)} @@\n`;
    for (const op of hunk) text += `${op.kind}${show(op.line, op.kind as '-' | '+', op.index)}\n`;
    lineA += removed;
    lineB += added;
    i = j;
  }
  return text;
}

/** A hunk range: start and count, the count left out when 1, the start the line before when 0. */
function range(start: number, count: number): string {
  if (count === 1) return String(start);
  return `${count === 0 ? start - 1 : start},${count}`;
}

/** Edit operations from a longest common subsequence of two short line lists, both from line `base`. */
function middleOps(x: string[], y: string[], base: number): Op[] {
  const m = x.length;
  const n = y.length;
  if (m * n > MAX_LCS_CELLS) {
    return [...x.map((line, i) => ({ kind: '-' as const, line, index: base + i })), ...y.map((line, j) => ({ kind: '+' as const, line, index: base + j }))];
  }
  // lcs[i][j]: length of the LCS of x[i..] and y[j..].
  const lcs = Array.from({ length: m + 1 }, () => new Uint32Array(n + 1));
  for (let i = m - 1; i >= 0; i--) {
    for (let j = n - 1; j >= 0; j--) lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < m || j < n) {
    if (i < m && j < n && x[i] === y[j]) {
      ops.push({ kind: ' ', line: x[i]!, index: base + i });
      i++;
      j++;
    } else if (i < m && (j === n || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ kind: '-', line: x[i]!, index: base + i });
      i++;
    } else {
      ops.push({ kind: '+', line: y[j]!, index: base + j });
      j++;
    }
  }
  return ops;
}
