// Who is at the other end of the Unix socket (SO_PEERCRED): its user and process, the account
// it counts as for per-user limits (a subordinate uid counts as its owner), and whose processes
// it may see (PeerVisibility against the host's /proc policy).
import { SubordinateIds } from './accounts';
import { isPrivileged, peerCredOf, type Conn } from './conn';
import { readProcPolicy, seesOnlyOwn, type PeerVisibility, type ProcPolicy } from './visibility';

/** A uid no process has: a client limited to it sees nobody's processes. */
export const NOBODY_UID = -2;

export class PeerIdentifier {
  /** The host's /proc policy (hidepid), as of the constructor. */
  private readonly procPolicy: ProcPolicy = readProcPolicy();
  /** Owners of subordinate uids. */
  private readonly subIds: SubordinateIds;
  /** Said once: peers' credentials cannot be read. */
  private warned = false;

  constructor(
    private readonly visibility: PeerVisibility,
    subordinateIds: string,
    private readonly log: (line: string) => void,
  ) {
    this.subIds = new SubordinateIds(subordinateIds);
  }

  /** Fills in a Unix client's uid, pid, account and `only`. */
  identify(conn: Conn): void {
    const cred = peerCredOf(conn.sock);
    if (cred) {
      conn.uid = cred.uid;
      conn.pid = cred.pid;
      const owner = this.subIds.ownerOf(cred.uid);
      conn.account = typeof owner === 'number' ? `uid ${owner}` : `user ${owner}`;
      conn.accountUid = typeof owner === 'number' ? owner : cred.uid;
      if (!isPrivileged(conn) && seesOnlyOwn(this.visibility, this.procPolicy, cred)) conn.only = cred.uid;
      return;
    }
    // Who it is cannot be told (no addon): where it must be limited to its own processes,
    // it sees nobody's.
    if (this.visibility === 'own' || (this.visibility === 'host' && this.procPolicy.hidepid !== 'off')) conn.only = NOBODY_UID;
    if (!this.warned) {
      this.warned = true;
      this.log('unix: the peer of a client cannot be told (the addon is not loaded): per-user limits count such clients together');
    }
  }
}
