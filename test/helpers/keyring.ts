/**
 * A real, private Secret Service for tests: Debian's `gnome-keyring` on a D-Bus session bus of
 * its own, both started by the test with HOME and the XDG directories in a temp dir, so the test's
 * keyring is never the user's.
 *
 *   const kr = await startKeyring();
 *   await keysmith(['login', ...], { env: { ...kr.env, HOME: kr.home } });
 *   await kr.lookup('p1/refresh-token')          // secret-tool lookup service keysmith username ...
 *   await kr.lock();                             // lock the login collection over D-Bus
 *   await kr.stop();                             // in afterAll: never throws, removes the temp dir
 *
 * The bus runs with a configuration of our own without service directories: nothing is
 * auto-started (no second gnome-keyring, no graphical unlock prompt), so a locked collection
 * answers at once that the unlock was dismissed. The keyring daemon runs in the foreground, a
 * child of the test, unlocked with a test password on its stdin.
 *
 * Where gnome-keyring, dbus or secret-tool is missing, describeWithKeyring() skips with the reason,
 * except under CI=true (a failure).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithPeer, executable } from './peers.js';

const TOOLS = {
  dbusDaemon: ['/usr/bin/dbus-daemon', 'dbus (dbus-daemon)'],
  dbusSend: ['/usr/bin/dbus-send', 'dbus (dbus-send)'],
  gnomeKeyring: ['/usr/bin/gnome-keyring-daemon', 'gnome-keyring'],
  secretTool: ['/usr/bin/secret-tool', 'libsecret-tools'],
} as const;

/** The password the test keyring is created and unlocked with. */
export const KEYRING_PASSWORD = 'keysmith-test-keyring';

/** Why a Secret Service cannot be started here, or undefined when it can. */
export function keyringMissing(): string | undefined {
  for (const [path, pkg] of Object.values(TOOLS)) if (!executable(path)) return `${path} not found (Debian: ${pkg})`;
  return undefined;
}

/** describe() when gnome-keyring and dbus are installed; otherwise a visible skip, or under CI a failing test. */
export function describeWithKeyring(name: string, body: () => void): void {
  describeWithPeer('a Secret Service', keyringMissing(), name, body);
}

export interface Keyring {
  /** A temp dir: HOME for keysmith and for the keyring daemon. */
  home: string;
  /** What a process needs to reach this keyring: DBUS_SESSION_BUS_ADDRESS. */
  env: { DBUS_SESSION_BUS_ADDRESS: string };
  /** The keyring daemon's PID (0 once stopped). */
  readonly daemonPid: number;
  /** secret-tool lookup service keysmith username ACCOUNT; null when there is no such entry. */
  lookup(account: string, service?: string): Promise<string | null>;
  /** secret-tool search --all service keysmith: the usernames of keysmith's entries, sorted. */
  accounts(service?: string): Promise<string[]>;
  /** Put an entry in the keyring (secret-tool store, the value on stdin). */
  store(account: string, value: string, service?: string): Promise<void>;
  /** Lock the login collection (org.freedesktop.Secret.Service.Lock). */
  lock(): Promise<void>;
  /** Unlock it again with the test password (by starting the daemon again, as a desktop login does). */
  unlock(): Promise<void>;
  /** Make the daemon stop answering (SIGSTOP) until `resume`. */
  freeze(): void;
  resume(): void;
  /** Stop the daemon and the bus (by PID) and remove the temp dir; never throws. */
  stop(): Promise<void>;
}

const BUS_CONFIG = (socket: string) => `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function run(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string, timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | null) : 0;
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(new Error(`${command} ${args.join(' ')}: ${err.message}`));
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
    // A program that exits without reading its input (keysmith failing fast) closes the pipe first.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killAndWait(pid: number, ms = 3_000): Promise<void> {
  if (!pid || !alive(pid)) return;
  try {
    process.kill(pid, 'SIGCONT');
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + ms;
  while (alive(pid) && Date.now() < until) await sleep(20);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Wait, bounded, for a line of `child`'s stdout. */
function firstLine(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buffer += d;
      const nl = buffer.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buffer.slice(0, nl).trim());
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready`));
    });
  });
}

/** Processes started by this test file that must not outlive it, whatever happens. */
const started = new Set<number>();
process.once('exit', () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

export async function startKeyring(): Promise<Keyring> {
  const home = mkdtempSync(join(tmpdir(), 'keysmith-keyring-'));
  const runtime = join(home, 'run');
  mkdirSync(runtime, { mode: 0o700 });
  const socket = join(runtime, 'bus');
  const config = join(home, 'bus.conf');
  writeFileSync(config, BUS_CONFIG(socket));
  const baseEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_RUNTIME_DIR: runtime,
    XDG_DATA_HOME: join(home, '.local', 'share'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    LANG: 'C.UTF-8',
  };
  let busPid = 0;
  let daemonPid = 0;
  const stop = async () => {
    await killAndWait(daemonPid);
    started.delete(daemonPid);
    daemonPid = 0;
    await killAndWait(busPid);
    started.delete(busPid);
    busPid = 0;
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const bus = spawn(TOOLS.dbusDaemon[0], ['--config-file', config, '--nofork', '--print-address=1'], { env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    busPid = bus.pid ?? 0;
    started.add(busPid);
    bus.stderr!.resume(); // "Failed to set fd limit" as root, and the like: not the test's output
    const address = await firstLine(bus, 'dbus-daemon', 10_000);
    const env = { ...baseEnv, DBUS_SESSION_BUS_ADDRESS: address };
    /** The keyring daemon in the foreground, its login keyring unlocked with the password on stdin. */
    const startDaemon = async () => {
      const daemon = spawn(TOOLS.gnomeKeyring[0], ['--foreground', '--unlock', '--components=secrets'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
      daemonPid = daemon.pid ?? 0;
      started.add(daemonPid);
      daemon.stderr!.resume();
      daemon.stdin!.on('error', () => {});
      daemon.stdin!.end(KEYRING_PASSWORD);
      // Ready when the Secret Service owns its name on the bus (bounded).
      const until = Date.now() + 10_000;
      for (;;) {
        const r = await run(TOOLS.dbusSend[0], ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets'], env);
        if (r.stdout.includes('boolean true')) break;
        if (Date.now() > until) throw new Error('gnome-keyring-daemon did not take org.freedesktop.secrets within 10 s');
        await sleep(50);
      }
    };
    await startDaemon();
    const secretTool = (args: string[], input?: string) => run(TOOLS.secretTool[0], args, env, input);
    const keyring: Keyring = {
      home,
      env: { DBUS_SESSION_BUS_ADDRESS: address },
      get daemonPid() {
        return daemonPid;
      },
      async lookup(account, service = 'keysmith') {
        const r = await secretTool(['lookup', 'service', service, 'username', account]);
        return r.code === 0 ? r.stdout : null;
      },
      async accounts(service = 'keysmith') {
        const r = await secretTool(['search', '--all', 'service', service]);
        // secret-tool prints the attributes on stderr and the secrets on stdout.
        const text = r.stdout + '\n' + r.stderr;
        return [...text.matchAll(/^attribute\.username = (.*)$/gm)].map((m) => m[1]!).sort();
      },
      async store(account, value, service = 'keysmith') {
        const r = await secretTool(['store', '--label', `test ${account}`, 'service', service, 'username', account], value);
        if (r.code !== 0) throw new Error(`secret-tool store failed: ${r.stderr}`);
      },
      async lock() {
        const r = await run(TOOLS.dbusSend[0], ['--session', '--print-reply', '--dest=org.freedesktop.secrets', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.Lock', 'array:objpath:/org/freedesktop/secrets/collection/login'], env);
        if (r.code !== 0) throw new Error(`locking the keyring failed: ${r.stderr}`);
      },
      async unlock() {
        // A running gnome-keyring unlocks only through a prompt (none here): start it again, as
        // a desktop login does, with the password on stdin. The keyring files stay.
        await killAndWait(daemonPid);
        started.delete(daemonPid);
        daemonPid = 0;
        await startDaemon();
      },
      freeze() {
        if (daemonPid) process.kill(daemonPid, 'SIGSTOP');
      },
      resume() {
        if (daemonPid) process.kill(daemonPid, 'SIGCONT');
      },
      stop: () => stop().catch(() => {}),
    };
    return keyring;
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

/** Every regular file under `dir` whose bytes contain `secret` (paths relative to `dir`). */
export function filesContaining(dir: string, secret: string): string[] {
  const needle = Buffer.from(secret, 'utf8');
  const found: string[] = [];
  const walk = (sub: string) => {
    let names: string[];
    try {
      names = readdirSync(join(dir, sub));
    } catch {
      return;
    }
    for (const name of names) {
      const rel = join(sub, name);
      const st = statSync(join(dir, rel), { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(rel);
      else if (st.isFile() && readFileSync(join(dir, rel)).includes(needle)) found.push(rel);
    }
  };
  walk('');
  return found;
}
