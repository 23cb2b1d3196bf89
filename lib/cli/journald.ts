// The daemon's --journald flags, read into what the journald output (lib/outputs/journald.ts) takes.
import { UsageError, type Flags } from './args';
import { DEFAULT_JOURNAL_SOCKET } from '../outputs/journald';

export const JOURNALD_STRING_FLAGS = ['journald-socket'];
export const JOURNALD_BOOLEAN_FLAGS = ['journald'];

/** Their part of --help. */
export const JOURNALD_USAGE = `      --journald         send every event and the log lines to journald, as structured
                         entries (PROCMON_EVENT, PROCMON_PID, PROCMON_EXE, ...: see the
                         README; journalctl PROCMON_EVENT=exec); never holds up the other
                         outputs (default: off)
      --journald-socket PATH
                         journald's native socket (default: ${DEFAULT_JOURNAL_SOCKET})`;

/** What the daemon's --journald flags ask for. */
export interface JournaldConfig {
  socketPath: string;
}

/** Reads --journald and --journald-socket; null without --journald. Throws a UsageError. */
export function journaldConfig(flags: Flags): JournaldConfig | null {
  const socket = flags.str('journald-socket');
  if (!flags.on('journald')) {
    if (socket !== undefined) throw new UsageError('--journald-socket needs --journald');
    return null;
  }
  if (socket !== undefined && (!socket.startsWith('/') || Buffer.byteLength(socket) > 107)) {
    throw new UsageError(`--journald-socket needs an absolute path of at most 107 bytes, got "${socket}"`);
  }
  return { socketPath: socket ?? DEFAULT_JOURNAL_SOCKET };
}
