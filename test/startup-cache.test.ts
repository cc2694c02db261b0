/**
 * bin/keysmith.js runs dist/cli.cjs from the V8 code cache the build leaves beside it
 * (dist/cli.cjs.cache, scripts/code-cache.mjs), and falls back to a plain `require` without one,
 * or with one that is damaged, truncated, for another bundle or another Node: same output, same
 * exit codes, never a crash, never a file written.
 *
 * Each case runs a copy of bin/ and dist/ (node_modules linked), so that the cache can be damaged
 * without touching the dist/ other tests run; the copy's bundle is the one stored in the cache file,
 * so a rebuild running meanwhile cannot pair a bundle with another bundle's cache. A preload (-r)
 * reports every vm.Script the binary makes: with cached data or without, and whether V8 rejected it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST, ROOT, assertBuilt, cleanEnv, oneErrorLine } from './helpers/keysmith.js';

const CACHE = `${DIST}.cache`;
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

interface Header {
  format: string;
  node: string;
  v8: string;
  source: number;
  data: number;
}

/** The cache file's parts: header, the bundle it was made for, V8's data (stored twice). */
function parse(cache: Buffer): { header: Header; eol: number; bundle: Buffer; dataStart: number } {
  const eol = cache.indexOf(10);
  const header = JSON.parse(cache.toString('latin1', 0, eol)) as Header;
  return { header, eol, bundle: cache.subarray(eol + 1, eol + 1 + header.source), dataStart: eol + 1 + header.source };
}

/** Reports each vm.Script to the file in $PROBE_OUT: one line `cachedData=… rejected=…`. */
const PROBE = `
const vm = require('node:vm');
const { appendFileSync } = require('node:fs');
const Script = vm.Script;
vm.Script = class extends Script {
  constructor(code, options) {
    super(code, options);
    if (process.env.PROBE_OUT) appendFileSync(process.env.PROBE_OUT, 'cachedData=' + Boolean(options && options.cachedData) + ' rejected=' + this.cachedDataRejected + '\\n');
  }
};
`;

let scratch: string;
let built: Buffer; // the cache file the build made
let count = 0;

/** A copy of the install: bin/, package.json, node_modules (linked), dist/cli.cjs and, unless null, dist/cli.cjs.cache. */
function install(bundle: Buffer, cache: Buffer | null): string {
  const dir = join(scratch, `install-${count++}`);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'dist'));
  for (const f of ['bin/keysmith.js', 'bin/package.json', 'package.json']) copyFileSync(join(ROOT, f), join(dir, f));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'dist', 'cli.cjs'), bundle);
  if (cache) writeFileSync(join(dir, 'dist', 'cli.cjs.cache'), cache);
  return dir;
}

interface Run {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** One line per vm.Script the binary made. */
  scripts: string[];
}

async function run(dir: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const probeOut = join(scratch, `probe-${count++}`);
  const r = await execa(process.execPath, ['-r', join(scratch, 'probe.cjs'), join(dir, 'bin', 'keysmith.js'), ...args], {
    env: cleanEnv({ HOME: join(scratch, 'home'), PROBE_OUT: probeOut, ...env }),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 30_000,
  });
  const scripts = existsSync(probeOut) ? readFileSync(probeOut, 'utf8').trim().split('\n') : [];
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, scripts };
}

/** The files in the install's bin/ and dist/, with size and mtime: to see that running writes nothing. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['.', 'bin', 'dist']) {
    for (const name of readdirSync(join(dir, sub))) {
      const st = statSync(join(dir, sub, name));
      out.push(`${sub}/${name} ${st.size} ${st.mtimeMs}`);
    }
  }
  return out.sort();
}

let session: Record<string, string> = {};
let keychain: string;
/** The invocations compared with and without the cache: [label, args, env]. */
let invocations: Array<[string, string[], Record<string, string>]>;
/** Their results with a plain `require` (no cache file). */
const expected = new Map<string, Run>();
let plain: string;
let cached: string;

beforeAll(async () => {
  assertBuilt();
  if (!existsSync(CACHE)) throw new Error(`${CACHE} is missing: scripts/build.mjs makes it (npm test builds first)`);
  scratch = mkdtempSync(join(tmpdir(), 'keysmith-startup-cache-'));
  mkdirSync(join(scratch, 'home'));
  writeFileSync(join(scratch, 'probe.cjs'), PROBE);
  built = readFileSync(CACHE);
  const { bundle } = parse(built);
  plain = install(bundle, null);
  cached = install(bundle, built);

  // A logged-in profile as the benchmark makes it (a cached token: no server needed).
  const sessionLib = pathToFileURL(join(ROOT, 'bench', 'lib', 'session.mjs')).href;
  const { writeLoggedInProfile } = (await import(sessionLib)) as { writeLoggedInProfile: (dir: string, profile: object) => Record<string, string> };
  session = writeLoggedInProfile(join(scratch, 'session'), { name: 'cache-test', url: 'http://127.0.0.1:9', dialect: 'tiled', provider: 'toy', username: 'alice' });
  keychain = join(scratch, 'keys.keychain');
  const made = await run(plain, ['create-access-key', '-k', keychain, '--count', '3', '--cost', '4']);
  expect(made.exitCode, made.stderr).toBe(0);

  invocations = [
    ['--version', ['--version'], {}],
    ['version', ['version'], {}],
    ['token', ['token'], session],
    ['list-access-keys', ['list-access-keys', '-k', keychain], {}],
    ['list-access-keys --json', ['list-access-keys', '-k', keychain, '--json'], {}],
    ['unknown command (usage error)', ['no-such-command'], {}],
    ['unknown option (usage error)', ['list-access-keys', '--no-such-option'], {}],
    ['missing keychain', ['list-access-keys', '-k', join(scratch, 'missing.keychain')], {}],
  ];
  for (const [label, args, env] of invocations) expected.set(label, await run(plain, args, env));
}, 120_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the code cache the build makes', () => {
  it('is for this Node and V8, holds the bundle it was made for, and its data twice', () => {
    const { header, bundle, dataStart } = parse(built);
    expect(header).toMatchObject({ format: 'keysmith-code-cache/1', node: process.version, v8: process.versions.v8 });
    expect(bundle.length).toBe(header.source);
    expect(built.length).toBe(dataStart + 2 * header.data);
    expect(built.subarray(dataStart, dataStart + header.data).equals(built.subarray(dataStart + header.data))).toBe(true);
    // The bundle's import() calls go through the loader (Node 20 cannot import() from cached code).
    expect(bundle.toString('utf8')).toMatch(/__keysmithImport\("commander"\)/);
  });
});

describe('with the cache', () => {
  it('V8 accepts it, and every command prints and exits as with a plain require', async () => {
    for (const [label, args, env] of invocations) {
      const r = await run(cached, args, env);
      expect(r.scripts, label).toEqual(['cachedData=true rejected=false']);
      const want = expected.get(label)!;
      expect(want.scripts, `${label} without the cache`).toEqual([]);
      expect({ exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr }, label).toEqual({ exitCode: want.exitCode, stdout: want.stdout, stderr: want.stderr });
    }
  });

  it('exit codes and messages are the usual ones', async () => {
    const v = await run(cached, ['--version']);
    expect(v).toMatchObject({ exitCode: 0, stdout: `keysmith ${version}`, stderr: '' });
    const usage = await run(cached, ['no-such-command']);
    expect(usage.exitCode).toBe(2);
    expect(oneErrorLine(usage.stderr)).toMatch(/^error: /);
    const token = await run(cached, ['token'], session);
    expect(token).toMatchObject({ exitCode: 0, stdout: 'bench-access-token-0123456789abcdefghijklmnopqrstuvwxyz' });
  });

  it('commands that import npm packages work (bcrypt, through the loader)', async () => {
    const file = join(scratch, 'created.keychain');
    const r = await run(cached, ['create-access-key', '-k', file, '--cost', '4']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.scripts).toEqual(['cachedData=true rejected=false']);
    expect(readFileSync(file, 'utf8')).toMatch(/^[A-Z0-9]{20}:\$2[aby]\$04\$.{53}\n$/);
  });

  it('writes nothing next to the binary', async () => {
    const before = snapshot(cached);
    await run(cached, ['--version']);
    await run(cached, ['token'], session);
    await run(cached, ['no-such-command']);
    expect(snapshot(cached)).toEqual(before);
  });
});

describe('a cache that does not fit or is damaged', () => {
  const damaged: Array<[string, (cache: Buffer) => Buffer, 'fallback' | 'rejected']> = [
    ['empty', () => Buffer.alloc(0), 'fallback'],
    ['garbage', (c) => Buffer.alloc(c.length, 0x41), 'fallback'],
    ['truncated to half', (c) => c.subarray(0, c.length >> 1), 'fallback'],
    ['truncated by one byte', (c) => c.subarray(0, c.length - 1), 'fallback'],
    ['one more byte', (c) => Buffer.concat([c, Buffer.from([0])]), 'fallback'],
    ['header cut', (c) => c.subarray(0, 20), 'fallback'],
    [
      'for another Node',
      (c) => {
        const { header, eol } = parse(c);
        return Buffer.concat([Buffer.from(JSON.stringify({ ...header, node: 'v0.0.0' }) + '\n', 'latin1'), c.subarray(eol + 1)]);
      },
      'fallback',
    ],
    [
      // V8 would crash on this: it does not checksum code caches.
      'data damaged in one copy',
      (c) => {
        const { header, dataStart } = parse(c);
        const d = Buffer.from(c);
        for (let i = 0; i < 64; i++) d[dataStart + (header.data >> 1) + i] ^= 0x5a;
        return d;
      },
      'fallback',
    ],
    [
      'bundle copy differs (a cache for another bundle of the same length)',
      (c) => {
        const { eol } = parse(c);
        const d = Buffer.from(c);
        d[eol + 1 + 100] ^= 0x01;
        return d;
      },
      'fallback',
    ],
    [
      // Both copies alike but not V8's format (magic number): V8 rejects it and compiles the source.
      'data V8 rejects',
      (c) => {
        const { header, dataStart } = parse(c);
        const d = Buffer.from(c);
        for (const start of [dataStart, dataStart + header.data]) for (let i = 0; i < 4; i++) d[start + i] ^= 0xff;
        return d;
      },
      'rejected',
    ],
  ];

  it.each(damaged)('%s: falls back, same output and exit codes', async (_label, damage, how) => {
    const dir = install(parse(built).bundle, damage(built));
    for (const label of ['--version', 'token', 'list-access-keys', 'unknown command (usage error)']) {
      const [, args, env] = invocations.find(([l]) => l === label)!;
      const r = await run(dir, args, env);
      expect(r.scripts, label).toEqual(how === 'rejected' ? ['cachedData=true rejected=true'] : []);
      const want = expected.get(label)!;
      expect({ exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr }, label).toEqual({ exitCode: want.exitCode, stdout: want.stdout, stderr: want.stderr });
    }
  });

  it('a bundle changed after the build (the cache is for the old one): plain require of the new one', async () => {
    const bundle = Buffer.concat([parse(built).bundle, Buffer.from('\n;process.stderr.write("changed\\n");\n')]);
    const dir = install(bundle, built);
    const r = await run(dir, ['--version']);
    expect(r).toMatchObject({ exitCode: 0, stdout: `keysmith ${version}`, stderr: 'changed', scripts: [] });
  });

  it('without the cache file: plain require', async () => {
    const r = await run(plain, ['--version']);
    expect(r).toMatchObject({ exitCode: 0, stdout: `keysmith ${version}`, stderr: '', scripts: [] });
    const usage = await run(plain, ['no-such-command']);
    expect(usage.exitCode).toBe(2);
    expect(oneErrorLine(usage.stderr)).toMatch(/^error: /);
  });
});

describe('the bundle runs from the cache as require runs it', () => {
  // A stand-in bundle that prints what a CommonJS module sees.
  const BUNDLE = `"use strict";
function where() {
  return new Error("here").stack.split("\\n").slice(1, 3).map((l) => l.trim()).join(" | ");
}
const out = {
  filename: __filename,
  dirname: __dirname,
  id: module.id,
  moduleFilename: module.filename,
  loaded: module.loaded,
  inCache: require.cache[__filename] === module,
  thisIsExports: this === module.exports,
  strict: (function () { return this; })() === undefined,
  main: require.main && require.main.filename,
  parentChildren: module.parent ? module.parent.children.includes(module) : null,
  resolved: require.resolve("commander"),
  paths: require.resolve.paths("x").slice(0, 2),
  builtin: typeof require("node:path").join,
  stack: where(),
  argv: process.argv.slice(2),
};
(typeof __keysmithLoaderImport === "function" ? __keysmithLoaderImport : (s) => import(s))("commander").then((m) => {
  out.imported = typeof m.Command;
  process.stdout.write(JSON.stringify(out, null, 1) + "\\n");
  process.exitCode = 3;
});
`;

  it('module, exports, require, __filename, __dirname, stack traces and exit code', async () => {
    // Its own cache, made as the build makes one (not warmed: it has no commands).
    const dir = install(Buffer.from(BUNDLE), null);
    const filename = join(dir, 'dist', 'cli.cjs');
    const make = `
      import { cacheFile, makeCodeCache } from ${JSON.stringify(pathToFileURL(join(ROOT, 'scripts', 'code-cache.mjs')).href)};
      import { readFileSync, writeFileSync } from 'node:fs';
      const bundle = readFileSync(${JSON.stringify(filename)});
      writeFileSync(${JSON.stringify(`${filename}.cache`)}, cacheFile(bundle, await makeCodeCache(bundle, ${JSON.stringify(filename)}, { warm: false })));
    `;
    const made = spawnSync(process.execPath, ['--input-type=module', '-e', make], { encoding: 'utf8', env: cleanEnv() });
    expect(made.status, made.stderr).toBe(0);
    const withCache = await run(dir, ['a', 'b']);
    expect(withCache.scripts).toEqual(['cachedData=true rejected=false']);
    rmSync(`${filename}.cache`);
    const withRequire = await run(dir, ['a', 'b']);
    expect(withRequire.scripts).toEqual([]);
    expect(withCache).toMatchObject({ exitCode: 3, stderr: '' });
    expect(withCache.stdout).toBe(withRequire.stdout);
    expect(withCache.exitCode).toBe(withRequire.exitCode);
    const out = JSON.parse(withCache.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      filename,
      dirname: join(dir, 'dist'),
      id: filename,
      inCache: true,
      thisIsExports: true,
      strict: true,
      main: join(dir, 'bin', 'keysmith.js'),
      parentChildren: true,
      imported: 'function',
      argv: ['a', 'b'],
    });
    expect(out.stack).toBe(`at where (${filename}:3:10) | at Object.<anonymous> (${filename}:19:10)`);
  });
});
