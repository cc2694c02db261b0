/**
 * Apache httpd (Debian's `apache2`) for `keysmith api` tests: its own minimal config in a temp dir
 * (ServerRoot, PidFile, ErrorLog, runtime dir), only the modules it needs loaded from
 * /usr/lib/apache2/modules, listening on 127.0.0.1 on a free port, in the foreground.
 *
 *   /digest/data.json   mod_auth_digest (qop="auth", algorithm MD5: Apache 2.4 refuses MD5-sess
 *                       as "Unsupported algorithm"), users from an htdigest file made with
 *                       /usr/bin/htdigest
 *   /basic/data.json    mod_auth_basic, users from an htpasswd file the test provides (keysmith
 *                       set-password writes one)
 *   /public.json        no authentication
 *
 * As root, the workers run as www-data, so the server's directory (in the system temp dir, see
 * baseDir) and its files are made readable to them.
 * `stop()` (call it in afterAll; it never throws) sends SIGTERM to the parent by PID, then SIGKILL
 * after a bounded wait, and removes the temp dir. Where apache2 or htdigest are missing,
 * `describeWithApache` skips with the reason, except under CI=true (a failure).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describeWithPeer, freePort } from './peers.js';

export const APACHE = '/usr/sbin/apache2';
export const HTDIGEST = '/usr/bin/htdigest';
const MODULES = '/usr/lib/apache2/modules';
const NEEDED = ['mod_mpm_event', 'mod_authn_core', 'mod_authn_file', 'mod_authz_core', 'mod_authz_user', 'mod_auth_basic', 'mod_auth_digest'];
const READY_TIMEOUT_MS = 10_000;
const TERM_GRACE_MS = 5_000;

function readable(path: string, mode = constants.R_OK): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** Why Apache tests cannot run here, or undefined when they can. */
export function apacheMissing(): string | undefined {
  if (!readable(APACHE, constants.X_OK)) return `${APACHE} not found (Debian: apache2)`;
  if (!readable(HTDIGEST, constants.X_OK)) return `${HTDIGEST} not found (Debian: apache2-utils)`;
  const missing = NEEDED.filter((m) => !readable(join(MODULES, `${m}.so`)));
  if (missing.length) return `Apache modules missing in ${MODULES}: ${missing.join(', ')}`;
  return undefined;
}

/** describe() when Apache is installed; otherwise a visible skip, or under CI a failing test. */
export function describeWithApache(name: string, body: () => void): void {
  describeWithPeer('Apache httpd', apacheMissing(), name, body);
}

export interface ApacheOptions {
  /** Digest realm (AuthName) of /digest/. */
  realm?: string;
  /** user -> password, written to the htdigest file with htdigest. */
  digestUsers: Record<string, string>;
  /** An htpasswd file for /basic/ (copied into the server's dir). */
  htpasswd?: string;
}

export interface ApacheServer {
  url: string;
  pid: number;
  /** The error log so far (for failure messages). */
  errorLog(): string;
  stop(): Promise<void>;
}

function run(command: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 10_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`${command} ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve()));
    child.stdin!.on('error', () => {}); // it may exit before reading
    child.stdin!.end(input);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Where the server's directory goes. Apache's workers (www-data) must walk to it, and the test
 * run's temp dir (test/helpers/global-setup.ts) is private to root; other tests open and close
 * its mode for their own servers, so Apache's files go next to it, in the system's temp dir, and
 * are removed by stop() or, at the latest, when the test process exits.
 */
function baseDir(): string {
  const run = tmpdir();
  return /^keysmith-test-run-/.test(basename(run)) ? dirname(run) : run;
}

const leftovers = new Set<string>();
let exitHook = false;

export async function startApache(options: ApacheOptions): Promise<ApacheServer> {
  const dir = mkdtempSync(join(baseDir(), 'keysmith-apache-'));
  leftovers.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const left of leftovers) rmSync(left, { recursive: true, force: true });
    });
  }
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      try {
        process.kill(child.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
      const timer = sleep(TERM_GRACE_MS).then(() => 'late' as const);
      if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'late') {
        try {
          process.kill(child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
        await Promise.race([exited, sleep(2_000)]);
      }
    }
    rmSync(dir, { recursive: true, force: true });
    leftovers.delete(dir);
  };
  try {
    const realm = options.realm ?? 'keysmith-digest';
    const docs = join(dir, 'htdocs');
    for (const sub of ['', 'digest', 'basic']) mkdirSync(join(docs, sub), { recursive: true });
    writeFileSync(join(docs, 'public.json'), '{"public":true}\n');
    writeFileSync(join(docs, 'digest', 'data.json'), '{"data":"digest"}\n');
    writeFileSync(join(docs, 'basic', 'data.json'), '{"data":"basic"}\n');
    const htdigest = join(dir, 'htdigest');
    let first = true;
    for (const [user, password] of Object.entries(options.digestUsers)) {
      await run(HTDIGEST, [...(first ? ['-c'] : []), htdigest, realm, user], `${password}\n${password}\n`);
      first = false;
    }
    const htpasswd = join(dir, 'htpasswd');
    writeFileSync(htpasswd, options.htpasswd ?? '');
    const port = await freePort();
    const root = process.getuid?.() === 0;
    const conf = join(dir, 'httpd.conf');
    writeFileSync(
      conf,
      [
        `ServerRoot "${dir}"`,
        `DefaultRuntimeDir "${dir}"`,
        `PidFile "${join(dir, 'httpd.pid')}"`,
        `ErrorLog "${join(dir, 'error.log')}"`,
        'LogLevel warn',
        `Listen 127.0.0.1:${port}`,
        'ServerName 127.0.0.1',
        ...NEEDED.map((m) => `LoadModule ${m.replace(/^mod_/, '')}_module ${join(MODULES, `${m}.so`)}`),
        ...(root ? ['User www-data', 'Group www-data'] : []),
        'StartServers 1',
        'ServerLimit 1',
        'ThreadsPerChild 8',
        'MaxRequestWorkers 8',
        '<Directory "/">',
        '  AllowOverride None',
        '  Require all denied',
        '</Directory>',
        `DocumentRoot "${docs}"`,
        `<Directory "${docs}">`,
        '  Require all granted',
        '</Directory>',
        '<Location "/digest/">',
        '  AuthType Digest',
        `  AuthName "${realm}"`,
        '  AuthDigestProvider file',
        `  AuthUserFile "${htdigest}"`,
        '  AuthDigestAlgorithm MD5',
        '  AuthDigestQop auth',
        '  Require valid-user',
        '</Location>',
        '<Location "/basic/">',
        '  AuthType Basic',
        '  AuthName "keysmith-basic"',
        '  AuthBasicProvider file',
        `  AuthUserFile "${htpasswd}"`,
        '  Require valid-user',
        '</Location>',
        '',
      ].join('\n'),
    );
    // The workers (www-data when started as root) read the docs and the user files.
    chmodSync(dir, 0o755);
    for (const path of [docs, join(docs, 'digest'), join(docs, 'basic')]) chmodSync(path, 0o755);
    for (const path of [htdigest, htpasswd, conf, join(docs, 'public.json'), join(docs, 'digest', 'data.json'), join(docs, 'basic', 'data.json')]) chmodSync(path, 0o644);

    let output = '';
    child = spawn(APACHE, ['-f', conf, '-DFOREGROUND'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' } });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    const url = `http://127.0.0.1:${port}`;
    const errorLog = () => {
      try {
        return readFileSync(join(dir, 'error.log'), 'utf8');
      } catch {
        return '';
      }
    };
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`apache2 exited before it was ready (code ${child.exitCode}): ${output}${errorLog()}`);
      try {
        const res = await fetch(`${url}/public.json`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`apache2 did not answer within ${READY_TIMEOUT_MS} ms: ${output}${errorLog()}`);
      await sleep(100);
    }
    return { url, pid: child.pid!, errorLog, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
