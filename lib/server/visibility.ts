import * as fs from 'node:fs';

/**
 * Who sees whose processes: the host's /proc policy (`hidepid`), applied to the clients of the
 * Unix socket. Where /proc hides other users' processes, a local user would otherwise learn
 * through the daemon (root) what `ps` will not tell it.
 */
export type PeerVisibility = 'host' | 'all' | 'own';

export interface ProcPolicy {
  /** `hidepid` of the /proc mount: `off` (0), `noaccess` (1), `invisible` (2), `ptraceable` (4). */
  hidepid: 'off' | 'noaccess' | 'invisible' | 'ptraceable';
  /** Its `gid=`: members of this group see every process. */
  gid: number | null;
}

const HIDEPID: Record<string, ProcPolicy['hidepid']> = {
  '0': 'off',
  off: 'off',
  '1': 'noaccess',
  noaccess: 'noaccess',
  '2': 'invisible',
  invisible: 'invisible',
  '4': 'ptraceable',
  ptraceable: 'ptraceable',
};

/** The policy of the /proc mount in /proc/self/mountinfo text (pure). No /proc mount: off. */
export function parseProcPolicy(mountinfo: string): ProcPolicy {
  const policy: ProcPolicy = { hidepid: 'off', gid: null };
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const f = line.split(' ');
    if (f[4] !== '/proc') continue;
    const dash = f.indexOf('-');
    if (dash < 0 || f[dash + 1] !== 'proc') continue;
    policy.hidepid = 'off';
    policy.gid = null;
    // The last /proc mount listed is the one on top.
    for (const opt of `${f[5] ?? ''},${f[dash + 3] ?? ''}`.split(',')) {
      const [k, v] = opt.split('=');
      if (k === 'hidepid' && v !== undefined && HIDEPID[v]) policy.hidepid = HIDEPID[v];
      if (k === 'gid' && v !== undefined && /^\d+$/.test(v)) policy.gid = Number(v);
    }
  }
  return policy;
}

/** The policy of this process's /proc, read now. */
export function readProcPolicy(): ProcPolicy {
  try {
    return parseProcPolicy(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return { hidepid: 'off', gid: null };
  }
}

/** The supplementary groups of a process (its /proc/PID/status `Groups:`), [] if unknown. */
export function groupsOf(pid: number): number[] {
  try {
    const m = /^Groups:\s*([\d ]*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m && m[1] ? m[1].trim().split(/\s+/).filter(Boolean).map(Number) : [];
  } catch {
    return [];
  }
}

/**
 * Whether a local peer (not root, not the daemon's own user) is limited to its own processes:
 * always with `own`, never with `all`; with `host`, where /proc hides other users' processes
 * from it (hidepid set, and it is not in the exempt group).
 */
export function seesOnlyOwn(mode: PeerVisibility, policy: ProcPolicy, peer: { gid: number; pid: number }): boolean {
  if (mode === 'all') return false;
  if (mode === 'own') return true;
  if (policy.hidepid === 'off') return false;
  if (policy.gid === null) return true;
  return peer.gid !== policy.gid && !groupsOf(peer.pid).includes(policy.gid);
}
