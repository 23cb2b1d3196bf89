// Client slots: how many may stream at once, and how local users share them. Local users
// other than root and the daemon's own (SO_PEERCRED) hold `maxPerUser` each at most, and
// together leave `reserved` free: a local user can never keep root's client out. TCP clients
// (they have the password) and privileged ones take any slot.
import { tooManyClientsLine, tooManyForUserLine } from '../protocol';
import { isPrivileged, type Conn } from './conn';
import type { RejectReason } from './types';

export interface SlotLimits {
  maxClients: number;
  /** Slots that local users other than root and the daemon's own leave free. */
  reserved: number;
  maxPerUser: number;
}

/** Why a client cannot have a slot: the reason counted and the line it is told. */
export interface Refusal {
  reason: RejectReason;
  message: string;
}

const localUnprivileged = (c: Conn) => c.transport === 'unix' && !isPrivileged(c);

export class Slots {
  constructor(
    private readonly limits: SlotLimits,
    /** The clients holding slots. */
    private readonly clients: ReadonlySet<Conn>,
    /** Lets a client go at once (its slot free now, not when its socket's close comes). */
    private readonly letGo: (conn: Conn) => void,
  ) {}

  /** Null when a slot is free for `conn` (one may have been made: see evictEnded), else why not. */
  take(conn: Conn): Refusal | null {
    const { maxClients, reserved, maxPerUser } = this.limits;
    const full: Refusal = { reason: 'too-many-clients', message: tooManyClientsLine(maxClients) };
    if (localUnprivileged(conn)) {
      let mine = 0;
      let local = 0;
      for (const c of this.clients) {
        if (!localUnprivileged(c)) continue;
        local++;
        if (c.account === conn.account) mine++;
      }
      if (mine >= maxPerUser) {
        // (One of its own that closed its side may be gone altogether: that one makes room.)
        if (!this.evictEnded((c) => localUnprivileged(c) && c.account === conn.account)) {
          return { reason: 'too-many-for-user', message: tooManyForUserLine(conn.accountUid, maxPerUser) };
        }
        local--;
      }
      if (local >= maxClients - reserved && !this.evictEnded(localUnprivileged)) return full;
    }
    if (this.clients.size >= maxClients && !this.evictEnded()) return full;
    return null;
  }

  /**
   * A client that closed its sending side may still read, or may be gone altogether (that
   * shows only when a write to it fails): when a newcomer needs its slot or descriptor, the
   * longest-ended such client is let go (reason 'end') rather than the newcomer refused.
   */
  evictEnded(which: (c: Conn) => boolean = () => true): boolean {
    for (const conn of this.clients) {
      if (!conn.peerEnded || conn.reason || !which(conn)) continue;
      conn.reason = 'end';
      this.letGo(conn);
      return true;
    }
    return false;
  }
}
