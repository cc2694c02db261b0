/**
 * A real nginx for tests: one server on 127.0.0.1 (a port found free by binding port 0, retried if
 * it was taken meanwhile), a location that serves a file behind auth_basic, started in the
 * foreground and stopped by PID.
 *
 *   const server = await startNginx({ dir, htpasswd, user: 'www-data' });
 *   expect(await server.get('/', 'alice:pw')).toBe(200);
 *   await server.stop();
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { freePort } from './peers.js';

export interface NginxServer {
  readonly port: number;
  /** The master process. */
  readonly pid: number;
  /** GET `path` (with HTTP Basic `user:password`); resolves with the status code. */
  get(path: string, auth?: string): Promise<number>;
  /** nginx's error log so far. */
  errors(): string;
  /** SIGTERM, then SIGKILL after 5 s. Idempotent. */
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** nginx's own directory: config, logs, temp files, and `www/index.html` to serve. */
  dir: string;
  /** The htpasswd file for auth_basic. */
  htpasswd: string;
  /** `user` directive (only meaningful when nginx starts as root), e.g. "www-data" or "root". */
  user?: string;
}

function get(port: number, path: string, auth?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
    const req = request({ host: '127.0.0.1', port, path, headers, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('timeout', () => req.destroy(new Error('nginx did not answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

function config(options: NginxOptions, port: number): string {
  const { dir } = options;
  // Serve a file: "return 200" would answer before auth_basic runs (protocols.md section 2).
  return `${options.user ? `user ${options.user};` : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 32; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
    index index.html;
    location / {
      auth_basic "keysmith test";
      auth_basic_user_file ${options.htpasswd};
    }
  }
}
`;
}

/** Start nginx in the foreground; waits (at most 10 s per attempt) until it answers. */
export async function startNginx(nginx: string, options: NginxOptions): Promise<NginxServer> {
  const { dir } = options;
  mkdirSync(join(dir, 'www'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'www', 'index.html'), 'protected\n', { mode: 0o644 });
  const errorLog = join(dir, 'error.log');
  const errors = () => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '');
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, config(options, port));
    let output = '';
    const child: ResultPromise = execa(nginx, ['-p', dir, '-c', conf, '-e', errorLog, '-g', 'daemon off;'], { reject: false, stdin: 'ignore', all: true });
    child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let exited = false;
    void child.then(() => (exited = true));
    const stop = async () => {
      if (exited || !child.pid) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await child;
      clearTimeout(timer);
    };
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      try {
        await get(port, '/index.html');
        return { port, pid: child.pid!, get: (path, auth) => get(port, path, auth), errors, stop };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await stop();
    if (!/Address already in use/.test(output + errors())) throw new Error(`nginx did not start:\n${output}${errors()}`);
  }
  throw new Error('nginx: no free port after 5 attempts');
}
