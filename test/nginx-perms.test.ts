/**
 * The README's nginx example against a real nginx whose workers run unprivileged: nginx is started
 * as root with `user www-data;` (as Debian's /etc/nginx/nginx.conf has it), so its workers drop to
 * www-data, as on a server. A new htpasswd file must be readable by them (`--group www-data`:
 * 0640 root:www-data) and by no one else; without --group it is 0600 and nginx answers 500,
 * which the note on stderr explains.
 *
 * Needs root (only root can start nginx so that its workers change user; CI runs as root) and a
 * www-data user: otherwise the tests are skipped and say why. A missing nginx is a skip too,
 * except under CI (`$CI` set), where .ci/run installs it and a missing one is a failure.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, useScratch } from './helpers/keychain-cli.js';
import { keysmith } from './helpers/keysmith.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { keysmithOnPath, runShell, which } from './helpers/shell.js';

const CI = Boolean(process.env.CI);
const isRoot = process.getuid?.() === 0;
const nginx = which('nginx') ?? (statSync('/usr/sbin/nginx', { throwIfNoEntry: false }) ? '/usr/sbin/nginx' : undefined);

/** uid and gid of a user, from getent. */
function account(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const f = r.status === 0 ? r.stdout.split(':') : [];
  return f.length > 3 ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}
const wwwData = account('www-data');
const nobody = account('nobody');

const cannot = !isRoot ? 'needs root: only nginx started as root hands its workers to another user (CI runs as root)'
  : !wwwData || !nobody ? 'needs the users www-data and nobody (Debian has both)'
  : undefined;
const missing = nginx ? undefined : 'nginx not found (Debian: nginx-light)';

/** The README's nginx example: the one line that writes /etc/nginx/.htpasswd. */
function readmeNginxLine(): string {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').filter((l) => l.includes('/etc/nginx/.htpasswd') && l.includes('keysmith set-password'));
  expect(lines, 'README: one example writes /etc/nginx/.htpasswd').toHaveLength(1);
  return lines[0]!;
}

/** The uids of the processes whose parent is `pid` (nginx's workers). */
function childUids(pid: number): number[] {
  const uids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) === pid) uids.push(Number(/^Uid:\s+(\d+)/m.exec(status)![1]));
  }
  return uids;
}

/** Whether `user` can read `file`: `cat` run as that user and group. */
function canRead(file: string, user: { uid: number; gid: number }): boolean {
  return spawnSync('cat', [file], { uid: user.uid, gid: user.gid, stdio: 'ignore' }).status === 0;
}

function suite(): void {
  const scratch = useScratch('keysmith-nginx-perms-');
  const servers: NginxServer[] = [];
  const opened: Array<[string, number]> = [];
  let bin: string;

  beforeAll(() => {
    bin = keysmithOnPath(scratch.fresh());
    // www-data must be able to walk to the files: let others search (not list) the test's
    // directories, up to the temp directory; their modes come back afterwards.
    for (let dir = scratch.root(); dir.startsWith(tmpdir() + sep) || dir === tmpdir(); dir = dirname(dir)) {
      const mode = statSync(dir).mode & 0o7777;
      if (dir !== '/tmp' && (mode & 0o001) === 0) {
        opened.push([dir, mode]);
        chmodSync(dir, mode | 0o011);
      }
      if (dir === tmpdir()) break;
    }
  });
  afterAll(async () => {
    for (const server of servers) await server.stop();
    for (const [dir, mode] of opened.reverse()) chmodSync(dir, mode);
  });

  async function serve(htpasswd: string): Promise<NginxServer> {
    const dir = join(scratch.fresh(), 'nginx');
    mkdirSync(dir, { mode: 0o755 });
    const server = await startNginx(nginx!, { dir, htpasswd, user: 'www-data' });
    servers.push(server);
    const workers = childUids(server.pid);
    expect(workers.length).toBeGreaterThan(0);
    for (const uid of workers) expect(uid, 'nginx workers run as www-data').toBe(wwwData!.uid);
    return server;
  }

  it("the README's example as written (paths under a test directory): 0640 root:www-data, nginx's workers log alice in, no one else can read it", async () => {
    const root = scratch.fresh();
    mkdirSync(join(root, 'etc', 'nginx'), { recursive: true, mode: 0o755 });
    chmodSync(join(root, 'etc'), 0o755);
    const line = readmeNginxLine();
    expect(line).toContain('--group www-data');
    const htpasswd = join(root, 'etc', 'nginx', '.htpasswd');
    const r = await runShell('bash', `set -o pipefail\n${line.replace(/\/etc\/nginx\//g, `${root}/etc/nginx/`)}`, {
      bin,
      home: scratch.fresh(),
      env: { NEW_PASSWORD: 'correct horse battery' },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`Added user alice in ${htpasswd}.\nCreated ${htpasswd}: 0640 root:www-data: root and the group www-data can read it, no one else.`);
    const st = statSync(htpasswd);
    expect({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({ mode: 0o640, uid: 0, gid: wwwData!.gid });
    expect(canRead(htpasswd, wwwData!)).toBe(true);
    expect(canRead(htpasswd, nobody!)).toBe(false);

    const server = await serve(htpasswd);
    expect(await server.get('/', 'alice:correct horse battery')).toBe(200);
    expect(await server.get('/', 'alice:wrong')).toBe(401);
    expect(await server.get('/')).toBe(401);
    expect(server.errors()).not.toMatch(/Permission denied/);
  });

  it('without --group a new file is 0600: nginx answers 500, the note says so; --group on the existing file fixes it', async () => {
    const dir = scratch.fresh();
    chmodSync(dir, 0o755);
    const htpasswd = join(dir, 'htpasswd');
    const r = await keysmith(['set-password', '-k', htpasswd, 'bob', '--password-stdin', '--cost', '4'], { input: 'hunter2\n' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr.split('\n')[1]).toBe(
      `Created ${htpasswd}: 0600 root:root: root can read it, no one else. For a web server, give it the server's group with --group (nginx and Apache on Debian: www-data).`,
    );
    expect(canRead(htpasswd, wwwData!)).toBe(false);
    const server = await serve(htpasswd);
    expect(await server.get('/', 'bob:hunter2')).toBe(500);
    expect(server.errors()).toMatch(/Permission denied/);

    const fix = await keysmith(['set-password', '-k', htpasswd, 'bob', '--password-stdin', '--cost', '4', '--group', 'www-data'], { input: 'hunter2\n' });
    expect(fix.exitCode, fix.stderr).toBe(0);
    expect(fix.stderr).toBe(`Updated user bob in ${htpasswd}.\n${htpasswd} is now 0640 root:www-data: root and the group www-data can read it, no one else.`);
    expect(await server.get('/', 'bob:hunter2')).toBe(200);
    expect(canRead(htpasswd, nobody!)).toBe(false);
  });

  it('--mode that lets everyone read, or an unknown group, is refused and writes nothing', async () => {
    const dir = scratch.fresh();
    const htpasswd = join(dir, 'htpasswd');
    const wide = await keysmith(['set-password', '-k', htpasswd, 'bob', '--password-stdin', '--mode', '0644'], { input: 'pw\n' });
    expect(wide.exitCode).toBe(2);
    expect(wide.stderr).toBe('error: --mode 0644 lets every user on this machine read or change the file\nhint: give the web server\'s group read access instead: --group www-data (mode 0640)');
    const typo = await keysmith(['set-password', '-k', htpasswd, 'bob', '--password-stdin', '--group', 'www-dat'], { input: 'pw\n' });
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr).toBe('error: no group www-dat on this system\nhint: did you mean --group www-data?');
    expect(readdirSync(dir)).toEqual([]);
  });
}

if (!missing && !cannot) {
  describe('set-password and a real nginx with unprivileged workers', suite);
} else if (missing && CI) {
  describe('set-password and a real nginx with unprivileged workers', () => {
    it('needs nginx', () => expect.fail(`${missing}; .ci/run installs it`));
  });
} else {
  describe.skip(`set-password and a real nginx with unprivileged workers: skipped: ${missing ?? cannot}`, () => {
    it('serves the README example to www-data workers', () => {});
  });
}
