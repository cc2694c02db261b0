/** Text files as keysmith reads them: strict UTF-8 decoding and lines that keep their terminators. */
import { FormatError } from './errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Decode file bytes strictly: UTF-8 without BOM and without NUL bytes. */
export function decodeText(bytes: Uint8Array, file: string): string {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw new FormatError(file, 1, 'file starts with a byte-order mark (BOM); save it as UTF-8 without BOM');
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new FormatError(file, lineOfFirstInvalidByte(bytes), 'not UTF-8 text (binary data?)');
  }
  const nul = text.indexOf('\0');
  if (nul !== -1) throw new FormatError(file, lineAt(text, nul), 'contains a NUL byte (binary data?)');
  return text;
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

function lineOfFirstInvalidByte(bytes: Uint8Array): number {
  // Find the longest valid prefix by decoding growing chunks line by line.
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        decoder.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}

/** Split text into lines, each with its own terminator ('\n', '\r\n', or '' for a last line without one). */
export function splitLines(text: string): Array<{ text: string; eol: string }> {
  const result: Array<{ text: string; eol: string }> = [];
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    if (nl === -1) {
      result.push({ text: text.slice(start), eol: '' });
      break;
    }
    const cr = nl > start && text.charCodeAt(nl - 1) === 13;
    result.push({ text: text.slice(start, cr ? nl - 1 : nl), eol: cr ? '\r\n' : '\n' });
    start = nl + 1;
  }
  return result;
}
