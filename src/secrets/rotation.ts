/** What a rotation of a signing-key list did, whatever the file format. */
export interface Rotation {
  /** The whole file after the rotation. */
  text: string;
  /** The list that was rotated: a YAML key path or an env variable name. */
  where: string;
  /** Old keys kept after the new one, and old keys dropped. */
  kept: number;
  dropped: number;
  /** The list did not exist and was created. */
  created: boolean;
  /** Every key of the list before and after, as values and as written: hidden in diffs. */
  secrets: string[];
  /**
   * The lines of `text` (the file before or after this rotation) as a dry run may show them: every
   * key of the list cut to its first 4 characters (`"3b0e…"`), or the value hidden whole where a
   * key cannot be cut safely. One entry per line of `text`.
   */
  hide(text: string): string[];
}

/** The new list: the new key first, then the old ones, `keep` keys in all. */
export function rotateList<T>(newKey: T, old: readonly T[], keep: number): { list: T[]; kept: number; dropped: number } {
  const kept = Math.min(old.length, keep - 1);
  return { list: [newKey, ...old.slice(0, kept)], kept, dropped: old.length - kept };
}

/** `${VAR}` references are not secrets: tools expand them from the environment. */
export function isReference(value: string): boolean {
  return /^\$\{[^}]*\}$/.test(value);
}

/** The characters of a key that a dry run may show: those of hex, base64 and alnum keys. */
const SHOWABLE = /^[A-Za-z0-9+/=_.-]{4}/;

/**
 * A key as a dry run shows it: `${VAR}` references whole; a key of 16 characters or more as its first
 * 4 characters and '…', when those are plain key characters (no escape, quote or space: then they are
 * the key's first 4 characters both as written and as read); anything else as '…' alone.
 * `written` is the key as it stands in the file (inside its quotes), `value` the key as read.
 */
export function hideKey(written: string, value: string = written): string {
  if (isReference(value) && written === value) return written;
  return value.length >= 16 && SHOWABLE.test(written) && written.slice(0, 4) === value.slice(0, 4) ? `${written.slice(0, 4)}…` : '…';
}

/**
 * Text with some spans replaced, keeping its line breaks: a span over several lines becomes its
 * replacement on its first line and '…' on the others (at their indentation), so line N of the result
 * still stands for line N of `text`.
 */
export function replaceSpans(text: string, spans: ReadonlyArray<{ start: number; end: number; shown: string }>): string {
  let result = '';
  let at = 0;
  for (const { start, end, shown } of [...spans].sort((a, b) => a.start - b.start)) {
    if (start < at) continue; // overlapping spans: the first one already hid this text
    const parts = text.slice(start, end).split(/(\r?\n)/);
    result += text.slice(at, start) + shown;
    for (let i = 1; i < parts.length; i += 2) {
      const part = parts[i + 1]!;
      result += parts[i]! + (part.trim() === '' ? part : `${/^\s*/.exec(part)![0]}…`);
    }
    at = end;
  }
  return result + text.slice(at);
}

/**
 * The last line of defence for what a dry run prints: a line that still holds 5 characters in a row
 * of any of `secrets` (as read or as written, spaces aside) is replaced by its indentation and
 * `<line hidden: it would show a key>`.
 */
export function leakGuard(secrets: readonly string[]): (line: string) => string {
  const grams = new Set<string>();
  // Runs without spaces only: a key written over several lines is also its indentation.
  for (const s of secrets) {
    if (isReference(s)) continue;
    for (const run of s.split(/\s+/)) for (let i = 0; i + 5 <= run.length; i++) grams.add(run.slice(i, i + 5));
  }
  return (line) => {
    for (let i = 0; i + 5 <= line.length; i++) {
      if (grams.has(line.slice(i, i + 5))) return `${/^\s*/.exec(line)![0]}<line hidden: it would show a key>`;
    }
    return line;
  };
}

/**
 * A function that hides each of `secrets` where it stands as a whole word in a line: long ones
 * keep their first 4 characters, then '…'; short ones become '…'.
 */
export function redactor(secrets: readonly string[]): (line: string) => string {
  const hidden = [...new Set(secrets)].filter((s) => s !== '' && !isReference(s)).sort((a, b) => b.length - a.length);
  if (hidden.length === 0) return (line) => line;
  // Characters of hex, base64 and alnum keys; `=` only ends one (padding), and starts env values.
  const alternatives = hidden.map((s) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|');
  const pattern = new RegExp(`(?<![A-Za-z0-9+/_-])(?:${alternatives})(?![A-Za-z0-9+/=_-])`, 'g');
  return (line) => line.replace(pattern, (s) => (s.length >= 16 ? `${s.slice(0, 4)}…` : '…'));
}
