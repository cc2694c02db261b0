import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, type RotateSecretOptions } from '../src/commands/rotate-secret.js';
import { FormatError, KeysmithError, NotFoundError, UsageError } from '../src/io/errors.js';
import { unifiedDiff } from '../src/secrets/diff.js';
import { rotateEnv } from '../src/secrets/rotate-env.js';
import { rotateYaml } from '../src/secrets/rotate-yaml.js';
import { redactor } from '../src/secrets/rotation.js';
import { fakeCtx } from './helpers/ctx.js';

const NEW = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';
const fixture = (name: string) => readFileSync(new URL(`../fixtures/configs/${name}`, import.meta.url), 'utf8');
const diff = (before: string, after: string) => unifiedDiff(before, after, 'a', 'b');
const yaml = (text: string, keep = 2, key = 'authentication.secret_keys') => rotateYaml(text, 'config.yml', key, NEW, keep);
const env = (text: string, keep = 2, name = 'TILED_SERVER_SECRET_KEYS') => rotateEnv(text, 'app.env', name, NEW, keep);

async function thrown(promise: Promise<unknown> | (() => unknown)): Promise<KeysmithError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(err).toBeInstanceOf(KeysmithError);
    return err as KeysmithError;
  }
  throw new Error('expected an error');
}

describe('rotate-secret in YAML', () => {
  it('changes only the list lines of a realistic Tiled config', async () => {
    const before = fixture('tiled-config.yml');
    const r = await yaml(before);
    expect(diff(before, r.text)).toBe(
      ['--- a', '+++ b', '@@ -22,0 +23 @@', `+    - "${NEW}"`, '@@ -24 +24,0 @@', '-    - ${TILED_PREVIOUS_SECRET_KEY}', ''].join('\n'),
    );
    expect(r).toMatchObject({ where: 'authentication.secret_keys', kept: 1, dropped: 1, created: false });
  });

  it('keeps `${VAR}` items verbatim, never expanded', async () => {
    const before = fixture('tiled-config.yml');
    const r = await yaml(before, 3);
    expect(diff(before, r.text)).toBe(['--- a', '+++ b', '@@ -22,0 +23 @@', `+    - "${NEW}"`, ''].join('\n'));
    expect(r).toMatchObject({ kept: 2, dropped: 0 });
  });

  it('keeps a flow list on its line, single quotes, the comment and CRLF line endings', async () => {
    const before = fixture('tiled-flow.yml');
    const r = await yaml(before);
    const old = before.split('\r\n')[2]!;
    expect(r.text).toBe(before.replace(old, `  secret_keys: ['${NEW}', '0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9']  # newest first`));
    expect(r.text.match(/\r\n/g)).toHaveLength(4);
    expect(r.text.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it.each([
    ['block, plain', 'authentication:\n  secret_keys:\n  - abc\n', `authentication:\n  secret_keys:\n  - ${NEW}\n  - abc\n`],
    ['block, double quotes', 'a:\n  secret_keys:\n    - "abc"\n', `a:\n  secret_keys:\n    - "${NEW}"\n    - "abc"\n`],
    ['block, more spaces after the dash', 'x:\n  secret_keys:\n    -   abc\n', `x:\n  secret_keys:\n    -   ${NEW}\n    -   abc\n`],
    ['flow, plain, spaces inside', 'x:\n  secret_keys: [ abc , def ]\n', `x:\n  secret_keys: [ ${NEW}, abc ]\n`],
    ['flow, over lines, trailing comma', 'x:\n  secret_keys: [\n    "a",\n    "b",\n  ]\n', `x:\n  secret_keys: [\n    "${NEW}",\n    "a",\n  ]\n`],
    ['flow, empty', 'x:\n  secret_keys: []  # none\n', `x:\n  secret_keys: [${NEW}]  # none\n`],
    ['last line without newline', 'x:\n  secret_keys:\n    - a', `x:\n  secret_keys:\n    - ${NEW}\n    - a`],
  ])('%s', async (_, before, after) => {
    const key = before.startsWith('authentication') ? undefined : `${before.slice(0, before.indexOf(':'))}.secret_keys`;
    expect((await yaml(before, 2, key)).text).toBe(after);
  });

  it('quotes a new key that would not read back as a string in plain style', async () => {
    const r = await rotateYaml('k:\n  - abc\n', 'c.yml', 'k', '1234e5', 2);
    expect(r.text).toBe('k:\n  - "1234e5"\n  - abc\n');
  });

  it('drops a dropped item’s comment lines with it, and keeps comments of kept items', async () => {
    const before = 'k:\n  # signs new tokens\n  - a  # current\n  # previous, drop after 2024-06-01\n  - b\n  - c\nz: 1\n';
    expect((await yaml(before, 2, 'k')).text).toBe(`k:\n  # signs new tokens\n  - ${NEW}\n  - a  # current\nz: 1\n`);
    expect((await yaml(before, 1, 'k')).text).toBe(`k:\n  # signs new tokens\n  - ${NEW}\nz: 1\n`);
  });

  it.each([
    ['in an existing mapping', 'authentication:\n  providers: []\n  allow_anonymous_access: false  # no\nuvicorn: {}\n',
      `authentication:\n  providers: []\n  allow_anonymous_access: false  # no\n  secret_keys:\n    - ${NEW}\nuvicorn: {}\n`],
    ['with its parents', 'uvicorn:\n  port: 8000\n', `uvicorn:\n  port: 8000\nauthentication:\n  secret_keys:\n    - ${NEW}\n`],
    ['after an empty value', 'authentication:\n  secret_keys:  # to do\n  x: 1\n', `authentication:\n  secret_keys:  # to do\n    - ${NEW}\n  x: 1\n`],
    ['under an empty parent', 'authentication:\nx: 1', `authentication:\n  secret_keys:\n    - ${NEW}\nx: 1`],
    ['in a file of comments', '# nothing yet', `# nothing yet\nauthentication:\n  secret_keys:\n    - ${NEW}\n`],
    ['in an empty file', '', `authentication:\n  secret_keys:\n    - ${NEW}\n`],
    ['with CRLF line endings', 'a: 1\r\n', `a: 1\r\nauthentication:\r\n  secret_keys:\r\n    - ${NEW}\r\n`],
  ])('creates the list when it is missing: %s', async (_, before, after) => {
    const r = await yaml(before);
    expect(r.text).toBe(after);
    expect(r).toMatchObject({ created: true, kept: 0, dropped: 0 });
  });

  it.each([
    ['a string', 'authentication:\n  secret_keys: abc\n', 2, /line 2: authentication.secret_keys is a string, not a list \(column 16\)/],
    ['a mapping', 'authentication:\n  secret_keys:\n    a: b\n', 3, /authentication.secret_keys is a mapping, not a list/],
    ['a parent that is a list', 'authentication:\n  - a\n', 2, /authentication is a list, not a mapping/],
    ['a root that is a list', '- a\n', 1, /the document is a list, not a mapping/],
    ['an item that is a number', 'authentication:\n  secret_keys:\n    - abc\n    - 1234\n', 4, /item 2 of authentication.secret_keys is a number \(1234\), not a string \(column 7\)/],
    ['an item that is a mapping', 'authentication:\n  secret_keys: [a, {b: c}]\n', 2, /item 2 .* is a mapping, not a string/],
    ['an empty item', 'authentication:\n  secret_keys:\n    - a\n    -\n', 4, /item 2 .* is null, not a string/],
    ['an alias', 'x: &k abc\nauthentication:\n  secret_keys: [*k]\n', 3, /item 1 .* is an alias, not a string/],
    ['malformed YAML', 'authentication:\n  secret_keys: [a, b\nx: 1\n', 3, /line 3: .*(column 1)/],
    ['a duplicate key', 'authentication:\n  secret_keys: [a]\n  secret_keys: [b]\n', 3, /line 3: Map keys must be unique/],
    ['two documents', 'a: 1\n---\nb: 2\n', 2, /multiple documents/],
  ])('format error for %s, with line and column', async (_, text, line, message) => {
    const err = await thrown(yaml(text));
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).line).toBe(line);
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/^config\.yml line \d+: /);
    expect(err.message).toMatch(message);
  });

  it('refuses to add keys to a flow mapping, and a --key with an empty part', async () => {
    expect((await thrown(yaml('authentication: {providers: []}\n'))).message).toMatch(/authentication in config.yml is a flow mapping/);
    expect(await thrown(yaml('a: 1\n', 2, 'a..b'))).toBeInstanceOf(UsageError);
  });
});

describe('rotate-secret in env files', () => {
  it('changes only the ;-separated list, keeping export, quotes and the comment', () => {
    const before = fixture('app.env');
    const r = env(before);
    expect(diff(before, r.text)).toBe(
      [
        '--- a',
        '+++ b',
        '@@ -5 +5 @@',
        '-export TILED_SERVER_SECRET_KEYS="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08;${TILED_OLD_KEY}"  # NEW;OLD',
        `+export TILED_SERVER_SECRET_KEYS="${NEW};9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # NEW;OLD`,
        '',
      ].join('\n'),
    );
    expect(r).toMatchObject({ where: 'TILED_SERVER_SECRET_KEYS', kept: 1, dropped: 1, created: false });
  });

  it('keeps a JSON list a JSON list, with its quotes, separator and `${VAR}` items', () => {
    const before = fixture('app.env');
    const r = env(before, 3, 'TILED_SECRET_KEYS');
    expect(diff(before, r.text)).toBe(
      [
        '--- a',
        '+++ b',
        '@@ -7 +7 @@',
        '-TILED_SECRET_KEYS=\'["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "${TILED_OLD_KEY}"]\'',
        `+TILED_SECRET_KEYS='["${NEW}", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "\${TILED_OLD_KEY}"]'`,
        '',
      ].join('\n'),
    );
  });

  it.each([
    ['unquoted with a comment', 'K=a;b # keys\n', `K=${NEW};a # keys\n`],
    ['single quotes, spaces around =', "K = 'a'\n", `K = '${NEW};a'\n`],
    ['an empty value', 'K=\n', `K=${NEW}\n`],
    ['empty quotes', 'K=""\n', `K="${NEW}"\n`],
    ['empty items dropped', 'K=a;;b;\n', `K=${NEW};a\n`],
    ['JSON in double quotes', 'K="[\\"a\\",\\"b\\"]"\n', `K="[\\"${NEW}\\",\\"a\\"]"\n`],
    ['unquoted JSON', 'K=["a"]\n', `K=["${NEW}","a"]\n`],
    ['CRLF', 'A=1\r\nK=a\r\nB=2', `A=1\r\nK=${NEW};a\r\nB=2`],
    ['a missing variable', 'A=1\n', `A=1\nK=${NEW}\n`],
    ['a missing variable, no final newline', 'A=1', `A=1\nK=${NEW}\n`],
    ['a missing variable, CRLF', 'A=1\r\n', `A=1\r\nK=${NEW}\r\n`],
    ['an empty file', '', `K=${NEW}\n`],
  ])('%s', (_, before, after) => {
    expect(env(before, 2, 'K').text).toBe(after);
  });

  it('creates TILED_SECRET_KEYS as a JSON list (current Tiled reads it with pydantic)', () => {
    expect(env('A=1\n', 2, 'TILED_SECRET_KEYS').text).toBe(`A=1\nTILED_SECRET_KEYS='["${NEW}"]'\n`);
  });

  it.each([
    ['a variable set twice', 'K=a\nB=1\nexport K=b\n', 3, /K is set twice \(first on line 1\)/],
    ['a quote never closed', 'A=1\nK="a;b\nc\n', 2, /the " that opens the value of K is never closed/],
    ['a ;-list over several lines', 'A=1\nK="a;b\nc"\n', 2, /the value of K spans lines 2 to 3/],
    ['a JSON list of numbers', "K='[1, 2]'\n", 1, /K starts with "\[" but is not a JSON list of strings/],
    ['broken JSON', 'K=[a, b]\n', 1, /not a JSON list/],
  ])('format error for %s, with its line', (_, text, line, message) => {
    let err: unknown;
    try {
      env(text, 2, 'K');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).line).toBe(line);
    expect((err as FormatError).message).toMatch(message);
  });

  it('refuses a --var that is not a variable name', () => {
    expect(() => env('', 2, 'A B')).toThrow(UsageError);
  });
});

describe('redacted diffs', () => {
  it('hide every key, whole words only, and show ${VAR} references', () => {
    const hide = redactor([NEW, 'short', '${OLD}', 'abc']);
    expect(hide(`- "${NEW}"  # abc, abcd`)).toBe('- "c0ff…"  # …, abcd');
    expect(hide('K=short;${OLD}')).toBe('K=…;${OLD}');
  });

  it('diff hunks use unified ranges', () => {
    expect(unifiedDiff('a\nb\nc\n', 'a\nB\nc\nd\n', 'x', 'y')).toBe('--- x\n+++ y\n@@ -2 +2 @@\n-b\n+B\n@@ -3,0 +4 @@\n+d\n');
    expect(unifiedDiff('a\nb\n', 'a\nb\n', 'x', 'y')).toBe('');
  });
});

describe('rotate-secret command', () => {
  function setup(name: string, text: string) {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-rotate-'));
    const path = join(dir, name);
    writeFileSync(path, text);
    return { dir, path };
  }
  async function rotate(file: string, opts: RotateSecretOptions, cwd: string) {
    const f = fakeCtx({ cwd });
    const err = await run(file, opts, f.ctx).then(
      () => undefined,
      (e: unknown) => e as KeysmithError,
    );
    return { ...f, err };
  }

  it('writes the file (keeping its mode), says what it did on stderr, prints nothing', async () => {
    const { dir, path } = setup('config.yml', fixture('tiled-config.yml'));
    chmodSync(path, 0o640);
    const r = await rotate('config.yml', {}, dir);
    expect(r.err).toBeUndefined();
    expect(r.stdout()).toBe('');
    expect(r.stderr()).toBe('Rotated authentication.secret_keys in config.yml: 1 new, kept 1, dropped 1\n');
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/secret_keys:\n {4}- "[0-9a-f]{64}"\n {4}- "3b0e7d2c/);
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });

  it('--print prints the new key only; --encoding and --bytes shape it', async () => {
    const { dir, path } = setup('.env', 'TILED_SERVER_SECRET_KEYS=old\n');
    const r = await rotate('.env', { print: true, encoding: 'base64url', bytes: '48' }, dir);
    expect(r.stdout()).toMatch(/^[A-Za-z0-9_-]{64}\n$/);
    expect(readFileSync(path, 'utf8')).toBe(`TILED_SERVER_SECRET_KEYS=${r.stdout().trim()};old\n`);
  });

  it('--dry-run prints a diff with the keys hidden and writes nothing', async () => {
    const before = fixture('app.env');
    const { dir, path } = setup('app.env', before);
    const r = await rotate('app.env', { dryRun: true, var: 'TILED_SECRET_KEYS' }, dir);
    expect(r.err).toBeUndefined();
    expect(r.stdout()).toMatch(/^--- app.env\n\+\+\+ app.env \(rotated\)\n@@ -7 \+7 @@\n-TILED_SECRET_KEYS='\["9f86…", "\$\{TILED_OLD_KEY\}"\]'\n\+TILED_SECRET_KEYS='\["[0-9a-f]{4}…", "9f86…"\]'\n$/);
    expect(r.stdout() + r.stderr()).not.toMatch(/[0-9a-f]{16}/);
    expect(r.stderr()).toBe('Dry run, nothing written: would rotate TILED_SECRET_KEYS in app.env: 1 new, kept 1, dropped 1\n');
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  it('--keep 1 warns that tokens signed with the old keys stop verifying', async () => {
    const { dir, path } = setup('c.yaml', 'authentication:\n  secret_keys: [a, b]\n');
    const r = await rotate('c.yaml', { keep: '1' }, dir);
    expect(r.stderr()).toMatch(/dropped 2\nwarning: --keep 1 drops every old key: tokens signed with them stop verifying\n$/);
    expect(readFileSync(path, 'utf8')).toMatch(/^authentication:\n {2}secret_keys: \[[0-9a-f]{64}\]\n$/);
  });

  it('--format env reads a file whatever its name; --key and --var only where they apply', async () => {
    const { dir, path } = setup('tiled.conf', 'SECRET_KEYS=a\n');
    expect((await rotate('tiled.conf', { format: 'env', var: 'SECRET_KEYS' }, dir)).err).toBeUndefined();
    expect(readFileSync(path, 'utf8')).toMatch(/^SECRET_KEYS=[0-9a-f]{64};a\n$/);
    for (const [file, opts, message] of [
      ['tiled.conf', {}, /cannot tell the format of tiled.conf/],
      ['tiled.conf', { format: 'toml' }, /--format must be yaml or env/],
      ['tiled.conf', { format: 'yaml', var: 'X' }, /--var is for env files/],
      ['tiled.conf', { format: 'env', key: 'a.b' }, /--key is for YAML files/],
      ['tiled.conf', { format: 'env', keep: '0' }, /--keep must be a whole number from 1 to 100/],
      ['tiled.conf', { format: 'env', print: true, dryRun: true }, /--print and --dry-run/],
      ['tiled.conf', { format: 'env', bytes: '8' }, /too weak/],
    ] as const) {
      const r = await rotate(file, opts, dir);
      expect(r.err).toBeInstanceOf(UsageError);
      expect(r.err!.message).toMatch(message);
    }
  });

  it('leaves the file alone on errors: exit 2 for bad files, 1 for a missing one', async () => {
    const bad = 'authentication:\n  secret_keys: abc\n';
    const { dir, path } = setup('config.yml', bad);
    const r = await rotate('config.yml', {}, dir);
    expect(r.err).toBeInstanceOf(FormatError);
    expect(r.err!.exitCode).toBe(2);
    expect(readFileSync(path, 'utf8')).toBe(bad);

    writeFileSync(join(dir, 'bom.env'), '\ufeffK=a\n');
    expect((await rotate('bom.env', {}, dir)).err!.message).toMatch(/bom.env line 1: .*byte-order mark/);

    mkdirSync(join(dir, 'dir.yml'));
    const isDir = await rotate('dir.yml', {}, dir);
    expect(isDir.err).toBeInstanceOf(UsageError);
    expect(isDir.err!.message).toMatch(/is a directory/);

    const missing = await rotate('missing.yml', {}, dir);
    expect(missing.err).toBeInstanceOf(NotFoundError);
    expect(missing.err!.exitCode).toBe(1);
    expect(missing.err!.message).toBe('missing.yml does not exist');
    expect(missing.stdout() + missing.stderr()).toBe('');
  });
});
