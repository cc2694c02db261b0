#!/usr/bin/env node
// Run dist/cli.cjs. Start-up is the product for `token` and `list-access-keys`, and compiling the
// bundle is a good part of it: when the build left a V8 code cache for this exact bundle, Node and
// V8 (dist/cli.cjs.cache, see scripts/code-cache.mjs), the bundle is compiled from it with
// vm.Script and run as `require` runs it (~3.5-4.5 ms of CPU less per command). Otherwise, or when anything
// about the cache is off, it is a plain `require`. The cache is only read: the install directory
// may be read-only.
'use strict';

const BUNDLE = '../dist/cli.cjs';
// As scripts/code-cache.mjs writes it: a line of JSON; the bundle the cache was made for; V8's
// data, twice.
const FORMAT = 'keysmith-code-cache/1';
// Node's CommonJS wrapper with the bundle from the second line on (compiled with lineOffset -1,
// stack traces give the bundle's own lines and columns), plus the import() the bundle calls in
// place of its own: Node 20 cannot import() from a script compiled from a code cache.
const WRAPPER = ['(function (exports, require, module, __filename, __dirname, __keysmithLoaderImport) {\n', '\n})'];

/** The bundle's wrapper function compiled from the cache, or undefined to `require` it. Never throws. */
function compileFromCache(filename) {
  try {
    const { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } = require('node:fs');
    const path = `${filename}.cache`;
    if (!statSync(path, { throwIfNoEntry: false })) return undefined; // no cache (and no exception: cheaper)
    let copy, data, copy2;
    const fd = openSync(path, 'r');
    try {
      // The header first: a cache for another Node (one from the npm package, say) costs no more.
      const head = Buffer.alloc(4096);
      const eol = head.subarray(0, readSync(fd, head, 0, head.length, 0)).indexOf(10);
      if (eol < 0) return undefined;
      const header = JSON.parse(head.toString('latin1', 0, eol));
      if (
        header === null ||
        header.format !== FORMAT ||
        header.wrapper !== WRAPPER.join('') ||
        header.node !== process.version ||
        header.v8 !== process.versions.v8 ||
        header.arch !== process.arch ||
        header.platform !== process.platform ||
        !Number.isSafeInteger(header.source) ||
        !Number.isSafeInteger(header.data) ||
        header.source < 0 ||
        header.data <= 0
      ) {
        return undefined;
      }
      const dataStart = eol + 1 + header.source;
      const size = dataStart + 2 * header.data;
      if (fstatSync(fd).size !== size) return undefined; // truncated, or more
      const cache = Buffer.allocUnsafe(size);
      if (readSync(fd, cache, 0, size, 0) !== size) return undefined;
      copy = cache.subarray(eol + 1, dataStart);
      data = cache.subarray(dataStart, dataStart + header.data);
      copy2 = cache.subarray(dataStart + header.data);
    } finally {
      closeSync(fd);
    }
    // Made for this very bundle (V8 itself only compares the length)?
    const bundle = readFileSync(filename);
    if (!bundle.equals(copy)) return undefined;
    // Undamaged? V8 does not check, and crashes on damaged data.
    if (!data.equals(copy2)) return undefined;
    const { Script } = require('node:vm');
    const script = new Script(WRAPPER[0] + bundle.toString('utf8') + WRAPPER[1], { filename, lineOffset: -1, cachedData: data });
    // Data V8 rejects (script.cachedDataRejected: another V8 build, other V8 flags) leaves a script
    // compiled from the source: slower, just as good.
    return script.runInThisContext();
  } catch {
    return undefined;
  }
}

/** The bundle's module and its `require`, as Node's loader makes them; undefined if that fails. */
function newModule(filename) {
  let mod;
  try {
    const Module = require('node:module');
    const { dirname } = require('node:path');
    mod = new Module(filename, module); // also one of this module's children, as with require
    mod.filename = filename;
    mod.paths = Module._nodeModulePaths(dirname(filename));
    const req = function require(id) {
      return mod.require(id);
    };
    req.resolve = function resolve(request, options) {
      return Module._resolveFilename(request, mod, false, options);
    };
    req.resolve.paths = function paths(request) {
      return Module._resolveLookupPaths(request, mod);
    };
    req.main = require.main;
    req.extensions = Module._extensions;
    req.cache = Module._cache;
    return { Module, mod, req, dirname: dirname(filename) };
  } catch {
    const i = mod ? module.children.indexOf(mod) : -1;
    if (i !== -1) module.children.splice(i, 1);
    return undefined;
  }
}

function run() {
  let filename;
  try {
    filename = require.resolve(BUNDLE);
  } catch {
    return require(BUNDLE); // not built: require's own error
  }
  const wrapper = compileFromCache(filename);
  const made = wrapper && newModule(filename);
  if (!made) return require(filename);
  const { Module, mod, req, dirname } = made;
  // As Module._load: in require.cache while it runs, out of it (and of the children) if it throws.
  Module._cache[filename] = mod;
  let threw = true;
  try {
    Reflect.apply(wrapper, mod.exports, [mod.exports, req, mod, filename, dirname, (specifier) => import(specifier)]);
    threw = false;
  } finally {
    if (threw) {
      delete Module._cache[filename];
      const i = module.children.indexOf(mod);
      if (i !== -1) module.children.splice(i, 1);
    }
  }
  mod.loaded = true;
  return mod.exports;
}

run();
