/**
 * Flask-HTTPAuth for `keysmith api` tests: fixtures/flask/app.py run by Debian's /usr/bin/python3
 * (python3-flask, python3-flask-httpauth; not a pyenv python3 that may come first on PATH), on
 * 127.0.0.1 with a free port (werkzeug's make_server on port 0). It prints one line {"url","pid"}
 * once it accepts connections; `stop()` (never throws) sends SIGTERM by PID, then SIGKILL after a
 * bounded wait. Where Python or the packages are missing, `describeWithFlask` skips with the
 * reason, except under CI=true (a failure).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describeWithPeer } from './peers.js';

export const PYTHON = '/usr/bin/python3';
const APP = fileURLToPath(new URL('../../fixtures/flask/app.py', import.meta.url));
const READY_TIMEOUT_MS = 15_000;
const TERM_GRACE_MS = 3_000;

/** Why the Flask tests cannot run here, or undefined when they can. */
export function flaskMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import flask, flask_httpauth'], { encoding: 'utf8', timeout: 15_000 });
  if (r.error) return `${PYTHON} not found (Debian: python3)`;
  if (r.status !== 0) return `${PYTHON} cannot import flask and flask_httpauth (Debian: python3-flask python3-flask-httpauth)`;
  return undefined;
}

/** describe() when Flask-HTTPAuth is installed; otherwise a visible skip, or under CI a failing test. */
export function describeWithFlask(name: string, body: () => void): void {
  describeWithPeer('Flask-HTTPAuth', flaskMissing(), name, body);
}

export interface FlaskOptions {
  /** user -> password, for /basic and /digest. */
  users: Record<string, string>;
  /** token -> user, for /bearer (scheme Bearer) and /token (scheme Token). */
  tokens?: Record<string, string>;
}

export interface FlaskServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startFlask(options: FlaskOptions): Promise<FlaskServer> {
  const child = spawn(PYTHON, [APP], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', PYTHONDONTWRITEBYTECODE: '1', KEYSMITH_FLASK_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 16_384) stderr += d.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    for (const [signal, wait] of [['SIGTERM', TERM_GRACE_MS], ['SIGKILL', 2_000]] as const) {
      try {
        process.kill(child.pid!, signal);
      } catch {
        return;
      }
      if (await Promise.race([exited.then(() => true), sleep(wait).then(() => false)])) return;
    }
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => reject(new Error(`the Flask fixture did not start within ${READY_TIMEOUT_MS} ms: ${stderr}`)), READY_TIMEOUT_MS);
      child.once('exit', (code) => reject(new Error(`the Flask fixture exited (code ${code}): ${stderr}`)));
      lines.once('line', (line) => {
        clearTimeout(timer);
        lines.on('line', () => {});
        try {
          resolve((JSON.parse(line) as { url: string }).url);
        } catch {
          reject(new Error(`the Flask fixture printed ${line}`));
        }
      });
    });
    return { url, pid: child.pid!, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
