/**
 * Text from elsewhere (server answers, file contents, URLs) on its way to a terminal: control
 * characters and invisible direction or width changers are shown as escapes, so that a hostile
 * answer can neither move the cursor, clear the screen, hide text, nor split one error line in two;
 * and passwords written inside URLs are blanked out.
 */

/**
 * C0 and C1 controls, DEL, the line and paragraph separators, and the zero-width and bidirectional
 * formatting characters.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** One character as JSON writes an escape: `\u001b`, `\u202e`. */
export function escapeChar(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** One line of text that is safe to print: unsafe characters escaped, cut to `max` characters. */
export function printable(text: string, max = Infinity): string {
  const cut = text.length > max ? text.slice(0, max) + '…' : text;
  return cut.replace(UNSAFE, escapeChar);
}

/** True when the text has a character that `printable` would escape. */
export function hasUnsafeChars(text: string): boolean {
  UNSAFE.lastIndex = 0;
  const found = UNSAFE.test(text);
  UNSAFE.lastIndex = 0;
  return found;
}

/** `scheme://user:password@host` → `scheme://user:***@host`, wherever it stands in the text. */
export function redactUrlPasswords(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*):[^\s/?#@]*@/gi, '$1:***@');
}

/** What every message from elsewhere goes through before it reaches stderr. */
export function safeLine(text: string, max = Infinity): string {
  return printable(redactUrlPasswords(text), max);
}

/** A warning for people on stderr, made safe like an error line. */
export function warn(ctx: { stderr: { write(chunk: string): unknown } }, text: string): void {
  ctx.stderr.write(`warning: ${safeLine(text)}\n`);
}
