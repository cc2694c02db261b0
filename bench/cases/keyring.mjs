// Benchmarks of the OS keyring (issue 13), inside a private headless Secret Service: Debian's
// gnome-keyring on a D-Bus session bus of its own (like test/helpers/keyring.ts).
// - `token` with a cached access token of a profile whose refresh token is in the keyring: the
//   keyring is not asked, so the same <= 1.25x `node -e 0` as a file-stored profile.
// - the keyring read cost, for information: `token` of an API-key profile whose key is in the
//   keyring (one read, in a child process bounded by a timeout) next to the same profile in a file.
// Skipped (with a line on stderr) where gnome-keyring, dbus or secret-tool is missing.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validSession, writeLoggedInProfile } from '../lib/session.mjs';

const TOOLS = ['/usr/bin/dbus-daemon', '/usr/bin/dbus-send', '/usr/bin/gnome-keyring-daemon', '/usr/bin/secret-tool'];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function missingTool() {
  for (const tool of TOOLS) {
    try {
      accessSync(tool, constants.X_OK);
    } catch {
      return tool;
    }
  }
  return undefined;
}

function run(command, args, env, input = '') {
  return new Promise((resolve) => {
    const child = execFile(command, args, { env, timeout: 10_000, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => resolve({ ok: !err, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Processes of this file, stopped by PID after its cases (b.onCleanup) or, at the latest, when the runner exits. */
const pids = [];
function stopAll() {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
process.once('exit', stopAll);

/**
 * A private bus (no service activation) listening on `dir`/run/bus, and an unlocked gnome-keyring
 * on it; returns the environment that reaches them.
 */
async function startSecretService(dir) {
  const runtime = join(dir, 'run');
  mkdirSync(runtime, { recursive: true, mode: 0o700 });
  const config = join(dir, 'bus.conf');
  writeFileSync(
    config,
    `<busconfig><type>session</type><listen>unix:path=${join(runtime, 'bus')}</listen><auth>EXTERNAL</auth>` +
      '<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>\n',
  );
  const env = { PATH: process.env.PATH, HOME: dir, XDG_RUNTIME_DIR: runtime, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'xdg-config') };
  const bus = spawn('/usr/bin/dbus-daemon', ['--config-file', config, '--nofork', '--print-address=1'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  pids.push(bus.pid);
  const address = await new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('dbus-daemon did not start within 10 s')), 10_000);
    bus.stdout.setEncoding('utf8').on('data', (d) => {
      text += d;
      if (text.includes('\n')) {
        clearTimeout(timer);
        resolve(text.trim());
      }
    });
  });
  const busEnv = { ...env, DBUS_SESSION_BUS_ADDRESS: address };
  const daemon = spawn('/usr/bin/gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env: busEnv, stdio: ['pipe', 'ignore', 'ignore'] });
  pids.push(daemon.pid);
  daemon.stdin.end('keysmith-bench-keyring');
  const until = Date.now() + 10_000;
  for (;;) {
    const r = await run('/usr/bin/dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets'], busEnv);
    if (r.stdout.includes('boolean true')) break;
    if (Date.now() > until) throw new Error('gnome-keyring-daemon did not start within 10 s');
    await sleep(50);
  }
  return busEnv;
}

export default async function keyring(b) {
  // The daemons' pipes would otherwise keep the runner alive after its table.
  b.onCleanup?.(stopAll);
  const missing = missingTool();
  if (missing) {
    process.stderr.write(`skipping the keyring benchmarks: ${missing} not found (Debian: dbus, gnome-keyring, libsecret-tools)\n`);
    return [];
  }
  // Started by the first case that runs (a filtered run that selects none starts nothing), at an
  // address known in advance.
  const dir = join(b.tmp, 'keyring');
  const bus = { DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'run', 'bus')}` };
  const marker = (name, fields) => ({ keyring: { service: 'keysmith', account: name, fields } });

  // A token profile whose refresh token is in the keyring; the access token is valid for a day.
  const { refreshToken, ...tokenSession } = validSession();
  const tokenEnv = writeLoggedInProfile(join(b.tmp, 'token'), { name: 'bench-kr', url: 'https://tiled.example.com', dialect: 'tiled', username: 'alice' }, { ...tokenSession, ...marker('bench-kr', ['refreshToken']) });

  // The same API key, once in the keyring and once in the session file.
  const key = 'bench-api-key-0123456789abcdefghijklmnopqrstuvwxyz';
  const keySession = { tokenType: 'apikey', obtainedAt: Date.now() };
  const keyringKeyEnv = writeLoggedInProfile(join(b.tmp, 'key-keyring'), { name: 'bench-key', url: 'https://api.example.com', dialect: 'apikey' }, { ...keySession, ...marker('bench-key', ['accessToken']) });
  const fileKeyEnv = writeLoggedInProfile(join(b.tmp, 'key-file'), { name: 'bench-key', url: 'https://api.example.com', dialect: 'apikey' }, { ...keySession, accessToken: key });

  let ready;
  const setup = () =>
    (ready ??= (async () => {
      const env = await startSecretService(dir);
      for (const [account, value] of [['bench-kr/refresh-token', refreshToken], ['bench-key/credential', key]]) {
        const r = await run('/usr/bin/secret-tool', ['store', '--label', account, 'service', 'keysmith', 'username', account], env, value);
        if (!r.ok) throw new Error(`secret-tool store: ${r.stderr.trim()}`);
      }
    })());

  return [
    { name: 'token (cached; refresh token in the OS keyring)', argv: ['token'], env: { ...tokenEnv, ...bus }, setup, limit: 1.25 },
    { name: 'token (API key read from the OS keyring: the keyring read cost)', argv: ['token'], env: { ...keyringKeyEnv, ...bus }, setup },
    { name: 'token (the same API key in the session file)', argv: ['token'], env: { ...fileKeyEnv, ...bus } },
  ];
}
