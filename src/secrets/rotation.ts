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
