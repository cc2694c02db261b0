/**
 * Users, groups and modes of files, for people: `--group www-data` to a group ID, and a file's
 * mode and owners as a sentence saying who can read it. Names come from /etc/passwd and
 * /etc/group, then `getent` (directory services); IDs without a name are shown as numbers.
 */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from './errors.js';
import { closest } from './words.js';

/** name → id and id → name from an /etc/passwd- or /etc/group-style file (fields: name:x:id:...). */
function table(path: string): Array<{ name: string; id: number }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 3 && f[0] !== '' && /^\d+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, id: Number(f[2]) }));
}

/** `getent DATABASE KEY` → its id and name, for names that live in a directory service. */
function getent(database: 'group' | 'passwd', key: string): { name: string; id: number } | undefined {
  const { spawnSync } = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
  const r = spawnSync('getent', [database, key], { encoding: 'utf8', timeout: 5_000 });
  const f = r.status === 0 ? r.stdout.split('\n')[0]!.split(':') : [];
  return f.length >= 3 && /^\d+$/.test(f[2]!) ? { name: f[0]!, id: Number(f[2]) } : undefined;
}

function nameOf(database: 'group' | 'passwd', id: number): string {
  return table(`/etc/${database}`).find((e) => e.id === id)?.name ?? getent(database, String(id))?.name ?? String(id);
}

export const userName = (uid: number) => nameOf('passwd', uid);
export const groupName = (gid: number) => nameOf('group', gid);

/**
 * The ID of a group given by name or number. Unknown names are a UsageError (with the closest
 * name as a hint); a group the caller may not give files to (not root, not a member) too.
 */
export function groupId(group: string): number {
  let gid: number | undefined;
  if (/^\d+$/.test(group)) gid = Number(group);
  else {
    const groups = table('/etc/group');
    gid = groups.find((g) => g.name === group)?.id ?? getent('group', group)?.id;
    if (gid === undefined) {
      const near = closest(group, groups.map((g) => g.name));
      throw new UsageError(`no group ${group} on this system`, near ? `did you mean --group ${near}?` : 'give a group name from /etc/group, or its number');
    }
  }
  if (process.geteuid !== undefined && process.geteuid() !== 0 && process.getegid!() !== gid && !process.getgroups!().includes(gid)) {
    throw new UsageError(`you are not in the group ${group}, so you cannot give it a file`, 'run as root, or join the group first');
  }
  return gid;
}

/**
 * A file's mode from `--mode`: octal, readable and writable by its owner, nothing for others
 * (password hashes are not for every local user); undefined when not given.
 */
export function parseFileMode(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(value)) throw new UsageError(`--mode must be an octal mode such as 0640, got ${JSON.stringify(value)}`);
  const mode = parseInt(value, 8);
  if ((mode & 0o600) !== 0o600) throw new UsageError(`--mode ${value} takes reading or writing away from the file's owner; keysmith needs both`);
  if ((mode & 0o007) !== 0) {
    throw new UsageError(`--mode ${value} lets every user on this machine read or change the file`, "give the web server's group read access instead: --group www-data (mode 0640)");
  }
  return mode;
}

/** "0640" */
export function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Who may read `path`, as one sentence: `0640 root:www-data: root and the group www-data can read
 * it, no one else`. Undefined when the file cannot be looked at.
 */
export function whoCanRead(path: string): string | undefined {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return undefined;
  const user = userName(st.uid);
  const group = groupName(st.gid);
  const readers = [`${user}`];
  if (st.mode & 0o040) readers.push(`the group ${group}`);
  const others = st.mode & 0o004 ? 'and every other user' : 'no one else';
  return `${octal(st.mode)} ${user}:${group}: ${readers.join(' and ')} can read it, ${others}`;
}
