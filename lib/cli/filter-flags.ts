// --match, --exclude, --subtree and --failed: the filter model (lib/filter.ts) on a command
// line, the same for every command that takes them.
import { compileFilter, type EventFilter, type FilterKey, type FilterValue } from '../filter';
import { UsageError, type Flags } from './args';

/** The flags, each repeatable but --failed. */
export const FILTER_STRING_FLAGS = ['match', 'exclude', 'subtree'] as const;
export const FILTER_BOOLEAN_FLAGS = ['failed'] as const;

/** Their part of --help (`execIds`: --subtree also takes exec ids, as a client's request does). */
export function filterUsage(execIds: boolean): string {
  return execIds ? FILTER_USAGE.replace(SUBTREE_USAGE, CLIENT_SUBTREE_USAGE) : FILTER_USAGE;
}

const SUBTREE_USAGE = `      --subtree PID      follow only PID and its descendants, by fork lineage (repeatable;
                         default: the whole host)`;
const CLIENT_SUBTREE_USAGE = `      --subtree PID|EXEC_ID
                         follow only PID (or the process of the program run EXEC_ID, which
                         must be running) and its descendants, by fork lineage, from the
                         request on (repeatable; default: every process)`;

const FILTER_USAGE = `      --match KEY=PATTERN
                         pass only events that match (repeatable: AND across keys, OR
                         within one); keys: event, user, uid, login_user, auid, comm, exe,
                         argv, cwd, container, cgroup, failed; PATTERN a glob (/usr/bin/*)
                         or /regex/ (/ssh/i) (default: every event)
      --exclude KEY=PATTERN
                         drop the events that match all of these (repeatable; default:
                         none)
      --subtree PID      follow only PID and its descendants, by fork lineage (repeatable;
                         default: the whole host)
      --failed           pass only exits with a non-zero status or a signal (default: off)`;

/** The filter the flags give, checked (a UsageError naming the rule at fault); null: none. */
export function filterFlags(flags: Flags, execIds = false): EventFilter | null {
  const match: Record<string, FilterValue[]> = {};
  const exclude: Record<string, FilterValue[]> = {};
  const add = (side: Record<string, FilterValue[]>, flag: string, text: string) => {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${flag} takes KEY=PATTERN, got "${text}"`);
    const key = text.slice(0, eq) as FilterKey;
    (side[key] ??= []).push(valueOf(key, text.slice(eq + 1)));
  };
  for (const t of flags.list('match')) add(match, 'match', t);
  for (const t of flags.list('exclude')) add(exclude, 'exclude', t);
  for (const t of flags.list('subtree')) {
    if (execIds && /^[0-9a-f]{8}:\d+:\d+$/.test(t)) (match.subtree ??= []).push(t);
    else if (/^\d+$/.test(t)) (match.subtree ??= []).push(Number(t));
    else throw new UsageError(`--subtree takes a pid${execIds ? ' or an exec id' : ''}, got "${t}"`);
  }
  if (flags.on('failed')) (match.failed ??= []).push(true);
  const filter: EventFilter = {
    ...(Object.keys(match).length > 0 ? { match } : {}),
    ...(Object.keys(exclude).length > 0 ? { exclude } : {}),
  };
  if (!filter.match && !filter.exclude) return null;
  try {
    compileFilter(filter);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return filter;
}

// A flag's value as the filter takes it for its key: numbers for uid, auid, subtree; true or
// false for failed; the text for the rest (compileFilter checks each).
function valueOf(key: FilterKey, text: string): FilterValue {
  if ((key === 'uid' || key === 'auid' || key === 'subtree') && /^\d+$/.test(text)) return Number(text);
  if (key === 'failed' && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}
