/**
 * Issue 10, item 8: rotation never keeps a hidden copy. YAML lists reached through an alias or a
 * merge key are refused, env values over several lines are read as one value, and dry runs and
 * errors never show more than 4 characters of a key, however it is written.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, type RotateSecretOptions } from '../src/commands/rotate-secret.js';
import { FormatError, type KeysmithError } from '../src/io/errors.js';
import { readSigningKeys } from '../src/secrets/keys-file.js';
import { fakeCtx } from './helpers/ctx.js';

const A = 'ZEBRAKEYAAAAAAAAAAAAAAAAA';
const B = 'QUOKKAKEYBBBBBBBBBBBBBBBB';
const C = 'OCELOTKEYCCCCCCCCCCCCCCCC';

async function rotate(name: string, text: string, opts: RotateSecretOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-trust-rotate-'));
  const path = join(dir, name);
  writeFileSync(path, text);
  const f = fakeCtx({ cwd: dir });
  const err = await run(name, opts, f.ctx).then(
    () => undefined,
    (e: unknown) => e as KeysmithError,
  );
  return { err, stdout: f.stdout(), stderr: f.stderr(), after: readFileSync(path, 'utf8'), path };
}

/** Every run of 5 characters of each key (as read and as written) that `output` shows. */
function leaks(output: string, keys: string[]): string[] {
  const found = new Set<string>();
  for (const key of keys) for (let i = 0; i + 5 <= key.length; i++) if (output.includes(key.slice(i, i + 5))) found.add(key.slice(i, i + 5));
  return [...found];
}

describe('YAML: no list reached through an alias or a merge key', () => {
  it.each([
    ['an alias to a mapping', `base: &auth\n  secret_keys: [${A}]\nauthentication: *auth\n`, 3, 17, /authentication is an alias, \*auth \(a mapping on line 2\)/],
    ['a flow mapping that merges it', `base: &auth\n  secret_keys: [${A}]\nauthentication: {<<: *auth}\n`, 3, 18, /authentication.secret_keys comes from the merge key \(<<: \*auth\)/],
    [
      'a block mapping that merges it',
      `defaults: &defaults\n  secret_keys:\n    - ${A}\nauthentication:\n  <<: *defaults\n  allow_anonymous_access: false\n`,
      5,
      3,
      /authentication.secret_keys comes from the merge key \(<<: \*defaults\)/,
    ],
    ['a list of merges', `a: &a {x: 1}\nb: &b {secret_keys: [${A}]}\nauthentication:\n  <<: [*a, *b]\n`, 4, 3, /comes from the merge key \(<<: \[\*a, \*b\]\)/],
    ['a merge of a merge', `a: &a {secret_keys: [${A}]}\nb: &b {<<: *a}\nauthentication:\n  <<: *b\n`, 4, 3, /comes from the merge key \(<<: \*b\)/],
    ['a parent that comes from a merge', `s: &s\n  authentication:\n    secret_keys: [${A}]\n<<: *s\n`, 4, 1, /^config.yml line 4: authentication comes from the merge key/],
    ['a list that is an alias', `keys: &keys [${A}]\nauthentication:\n  secret_keys: *keys\n`, 3, 16, /authentication.secret_keys is an alias, \*keys \(a list on line 1\)/],
    ['an anchored list used elsewhere', `authentication:\n  secret_keys: &keys [${A}, ${B}]\nlegacy:\n  keys: *keys\n`, 2, 22, /authentication.secret_keys is anchored \(&keys\) and used again as \*keys on line 4/],
    ['an anchored parent used elsewhere', `authentication: &auth\n  secret_keys: [${A}]\nbackup: *auth\n`, 2, 3, /authentication is anchored \(&auth\) and used again as \*auth on line 3/],
    ['an anchored key used elsewhere', `authentication:\n  secret_keys:\n    - &k ${A}\nother: *k\n`, 3, 10, /item 1 of authentication.secret_keys is anchored \(&k\) and used again as \*k on line 4/],
  ])('refuses %s: exit 2, file, line and column, file unchanged', async (_, text, line, column, message) => {
    for (const opts of [{}, { dryRun: true }]) {
      const r = await rotate('config.yml', text, opts);
      expect(r.err).toBeInstanceOf(FormatError);
      expect(r.err!.exitCode).toBe(2);
      expect((r.err as FormatError).line).toBe(line);
      expect(r.err!.message).toMatch(new RegExp(`^config\\.yml line ${line}: .* \\(column ${column}\\)$`));
      expect(r.err!.message).toMatch(message);
      expect(r.err!.message).not.toContain('\n');
      expect(leaks(r.err!.message + r.stdout + r.stderr, [A, B])).toEqual([]);
      expect(r.after).toBe(text);
    }
  });

  it.each([
    ['anchors and aliases elsewhere', `x: &a {port: 1}\ny: *a\nz:\n  <<: *a\nauthentication:\n  secret_keys: [${A}]\n`, `  secret_keys: [NEW, ${A}]\n`],
    ['an anchored list used nowhere else', `authentication:\n  secret_keys: &keys [${A}]\n`, `  secret_keys: &keys [NEW, ${A}]\n`],
    ['a merge that does not give the list', `d: &d {x: 1}\nauthentication:\n  <<: *d\n`, `authentication:\n  <<: *d\n  secret_keys:\n    - NEW\n`],
    ['a list written out next to a merge', `d: &d {secret_keys: [${B}]}\nauthentication:\n  <<: *d\n  secret_keys: [${A}]\n`, `  secret_keys: [NEW, ${A}]\n`],
  ])('still rotates a file with %s', async (_, text, expected) => {
    const r = await rotate('config.yml', text, { print: true });
    expect(r.err).toBeUndefined();
    expect(r.after.replace(r.stdout.trim(), 'NEW')).toContain(expected);
  });
});

describe('env files: a value over several lines is one value', () => {
  const fake = `TILED_SERVER_SECRET_KEYS=${C}`;
  it.each([
    ['double quotes', `NOTES="rotated by hand:\n${fake}\nsee the wiki"\nTILED_SERVER_SECRET_KEYS=${A}\n`],
    ['single quotes', `NOTES='rotated by hand:\n${fake}\n'\nexport TILED_SERVER_SECRET_KEYS="${A};${B}"\n`],
    ['an escaped quote inside', `NOTES="say \\"hi\\"\n${fake}\n"\nTILED_SERVER_SECRET_KEYS=${A}\n`],
    ["single quotes with \\'", `NOTES='it\\'s\n${fake}\n'\nTILED_SERVER_SECRET_KEYS=${A}\n`],
    ['the variable after the value, a comment after the quote', `NOTES="\n${fake}" # old\nTILED_SERVER_SECRET_KEYS=${A}\n`],
  ])('%s: the line inside another value stays untouched, the real variable rotates', async (_, text) => {
    const r = await rotate('.env', text, { print: true });
    expect(r.err).toBeUndefined();
    const key = r.stdout.trim();
    expect(r.after).toContain(`\n${fake}`);
    expect(r.after).toMatch(new RegExp(`^(export )?TILED_SERVER_SECRET_KEYS="?${key};${A}"?$`, 'm'));
    expect(r.after.split(key)).toHaveLength(2);
  });

  it('a variable only set inside another value is missing: it is appended, nothing inside is edited', async () => {
    const text = `NOTES="\n${fake}\n"\n`;
    const r = await rotate('.env', text, { print: true });
    expect(r.err).toBeUndefined();
    expect(r.after).toBe(`${text}TILED_SERVER_SECRET_KEYS=${r.stdout.trim()}\n`);
  });

  it('a JSON list over several lines rotates and is read', async () => {
    const text = `TILED_SECRET_KEYS='[\n  "${A}",\n  "${B}"\n]'\nX=1\n`;
    const r = await rotate('.env', text, { print: true, var: 'TILED_SECRET_KEYS' });
    expect(r.err).toBeUndefined();
    expect(r.after).toBe(`TILED_SECRET_KEYS='["${r.stdout.trim()}", "${A}"]'\nX=1\n`);
    writeFileSync(r.path, text);
    expect(await readSigningKeys(r.path)).toEqual([A, B]);
  });

  it.each([
    ['in another variable', `A=1\nNOTES="never closed\nTILED_SERVER_SECRET_KEYS=${A}\n`, 2, /the " that opens the value of NOTES is never closed/],
    ['in the variable', `A=1\nTILED_SERVER_SECRET_KEYS='${A}\nB=2\n`, 2, /the ' that opens the value of TILED_SERVER_SECRET_KEYS is never closed/],
  ])('a quote never closed %s is an error on the line where it opened', async (_, text, line, message) => {
    const r = await rotate('.env', text);
    expect(r.err).toBeInstanceOf(FormatError);
    expect(r.err!.exitCode).toBe(2);
    expect((r.err as FormatError).line).toBe(line);
    expect(r.err!.message).toMatch(message);
    expect(leaks(r.err!.message, [A])).toEqual([]);
    expect(r.after).toBe(text);
  });
});

describe('dry runs and errors show at most 4 characters of a key', () => {
  it.each([
    ['env: JSON escapes', '.env', `TILED_SECRET_KEYS='["\\u005AEBRAKEYAAAAAAAAAAAAAAAAA", "${B}"]'\n`, { var: 'TILED_SECRET_KEYS' }],
    ['env: JSON in double quotes', '.env', `TILED_SECRET_KEYS="[\\"${A}\\", \\"\\u0051UOKKAKEYBBBBBBBBBBBBBBBB\\"]"\n`, { var: 'TILED_SECRET_KEYS' }],
    ['env: JSON over lines', '.env', `TILED_SECRET_KEYS='[\n "${A}",\n "${B}"\n]'\n`, { var: 'TILED_SECRET_KEYS' }],
    ['env: ; list with escapes', '.env', `TILED_SERVER_SECRET_KEYS="\\${A};\\"${B}"  # was ${B}\n`, {}],
    ['YAML: block literal and folded', 'c.yml', `authentication:\n  secret_keys:\n    - |\n      ${A}\n    - >-\n      ${B}\n      ${C}\n`, {}],
    ['YAML: folded plain and quoted scalars', 'c.yml', `authentication:\n  secret_keys:\n    - ${A}\n      ${B}\n    - "${C}\n      x"\n`, {}],
    ['YAML: escapes and quotes', 'c.yml', `authentication:\n  secret_keys: ["\\x5AEBRAKEYAAAAAAAAAAAAAAAAA", 'Q''UOKKAKEYBBBBBBBBBBBBBBBB', "\\"${C}"]\n`, {}],
    ['YAML: a flow list over lines', 'c.yml', `authentication:\n  secret_keys: [\n    ${A},  # ${C} before\n    "${C}"]\n`, {}],
  ])('%s', async (_, name, text, opts: RotateSecretOptions) => {
    const r = await rotate(name, text, { ...opts, dryRun: true, keep: '1' });
    expect(r.err).toBeUndefined();
    expect(r.stdout).toMatch(/^--- /);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('-') && !l.startsWith('---')).length).toBeGreaterThan(0);
    expect(leaks(r.stdout + r.stderr, [A, B, C])).toEqual([]);
    expect(leaks(r.stdout + r.stderr, ['ZEBRA', 'QUOKK', 'OCELO', 'EBRAK', 'UOKKA', 'CELOT', 'AAAAA', 'BBBBB', 'CCCCC'])).toEqual([]);
    expect(r.after).toBe(text);
  });

  it('shows the first 4 characters of keys it can cut, in their quotes', async () => {
    const r = await rotate('c.yml', `authentication:\n  secret_keys:\n    - "${A}"\n    - '${B}'\n    - ${C}\n`, { dryRun: true, keep: '1' });
    expect(r.stdout).toContain(`-    - "ZEBR…"\n-    - 'QUOK…'\n-    - OCEL…\n`);
    const e = await rotate('.env', `TILED_SECRET_KEYS='["\\u005AEBRAKEYAAAAAAAAAAAAAAAAA"]'\n`, { dryRun: true, var: 'TILED_SECRET_KEYS' });
    expect(e.stdout).toContain(`-TILED_SECRET_KEYS='<1 key hidden>'\n`);
  });

  it.each([
    ['an unquoted key of digits', `authentication:\n  secret_keys:\n    - 123456789012345678901234\n`, /item 1 of authentication.secret_keys is a number \(1234…\), not a string/, ['56789']],
    ['a key that is a mapping', `authentication:\n  secret_keys:\n    - {${A}: ${B}}\n`, /item 1 .* is a mapping, not a string/, [A, B]],
    ['a bad escape', `authentication:\n  secret_keys: ["\\U${A}"]\n`, /./, [A]],
    ['a block scalar header with text', `authentication:\n  secret_keys:\n    - |${A}\n      x\n`, /./, [A]],
  ])('the error for %s does not show the key', async (_, text, message, keys) => {
    for (const opts of [{}, { dryRun: true }]) {
      const r = await rotate('c.yml', text, opts);
      expect(r.err).toBeInstanceOf(FormatError);
      expect(r.err!.message).toMatch(message);
      expect(leaks(r.err!.message + r.stdout + r.stderr, keys)).toEqual([]);
      expect(r.after).toBe(text);
    }
  });
});
