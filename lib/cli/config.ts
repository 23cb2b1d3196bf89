/**
 * The daemon's options from three places: its command line, `PROCMONITOR_*` environment
 * variables, and a YAML file (`--config FILE`), in that order of precedence, one key per
 * flag (the long name without `--`). Each flag's value comes whole from the first place that
 * gives it (a repeatable flag's values are not added up across places). Unknown keys and
 * bad values are UsageErrors naming the file's line or the variable; `--print-config` shows
 * the result with its secrets masked.
 */
import * as fs from 'node:fs';
import { flagsOf, readArgv, UsageError, type FlagSpec, type Flags, type FlagValue } from './args';
import { loadPeer } from '../peers';

/** What the layering needs to know of a command's flags beyond FlagSpec. */
export interface ConfigSpec extends FlagSpec {
  /** Flags that may be given more than once (a YAML list in the file; one value per line in a variable). */
  repeatable: readonly string[];
  /** Flags whose value is a comma-separated list (a YAML list in the file is joined with commas). */
  commaLists: readonly string[];
  /** Flags that are one setting between them (e.g. --auth and --auth-file): the first place giving any gives all. */
  groups: readonly (readonly string[])[];
  /** Flags only the command line may give (--help, --config, ...). */
  commandLineOnly: readonly string[];
  /** Flags whose value is a secret, masked by --print-config. */
  secrets: readonly string[];
  /** Flags whose value is a URL (or a comma list of them) that may hold a password, masked by --print-config. */
  urls: readonly string[];
  /** Flags --print-config shows only next to another (auth only with tcp: PROCMONITOR_AUTH alone is the client's). */
  onlyWith: Readonly<Record<string, string>>;
}

export const ENV_PREFIX = 'PROCMONITOR_';
/** Variables of this name that are no option: the project's own tools', and secrets read as they are. */
const NOT_OPTIONS = new Set(['PROCMONITOR_ASAN', 'PROCMONITOR_ARM64_ROOT', 'PROCMONITOR_NATS_PASSWORD', 'PROCMONITOR_NATS_TOKEN']);
/** The config file's size at most. */
const MAX_CONFIG_BYTES = 1 << 20;

/** The environment variable of a flag: PROCMONITOR_ and its name, upper case, `-` as `_`. */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replace(/-/g, '_');
}

interface Layer {
  values: Map<string, FlagValue>;
  origins: Map<string, string>;
}

/** The flags the environment gives; `warnings` gets the PROCMONITOR_ variables that are none. */
function envLayer(env: NodeJS.ProcessEnv, spec: ConfigSpec, warnings: string[]): Layer {
  const layer: Layer = { values: new Map(), origins: new Map() };
  const known = new Map([...spec.string, ...spec.boolean].filter((f) => !spec.commandLineOnly.includes(f)).map((f) => [envName(f), f]));
  for (const [name, value] of Object.entries(env)) {
    // (Set empty is not set, as shells and systemd's Environment= mean it.)
    if (!name.startsWith(ENV_PREFIX) || value === undefined || value === '' || NOT_OPTIONS.has(name) || name === envName('config')) continue;
    const flag = known.get(name);
    if (flag === undefined) {
      warnings.push(`warning: ${name} is not an option of procMonitor: ignored (every --flag is PROCMONITOR_FLAG, e.g. PROCMONITOR_CLIENTS)`);
      continue;
    }
    if (spec.boolean.includes(flag)) {
      const on = /^(1|true|yes|on)$/i.test(value);
      if (!on && !/^(0|false|no|off)$/i.test(value)) throw new UsageError(`--${flag} is true or false, got "${value}"`, { cause: name });
      if (on) layer.values.set(flag, true);
    } else {
      layer.values.set(flag, spec.repeatable.includes(flag) ? value.split('\n').filter((v) => v !== '') : value);
    }
    layer.origins.set(flag, name);
  }
  return layer;
}

/** The flags a config file gives (YAML: a mapping of flag names to values). */
function fileLayer(file: string, spec: ConfigSpec): Layer {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new UsageError(`--config ${file}: not a regular file`);
      if (st.size > MAX_CONFIG_BYTES) throw new UsageError(`--config ${file}: ${st.size} bytes, more than a config file may have (1 MiB)`);
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--config ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // (Loaded only when a file is given: most runs have none.)
  const YAML = loadYaml();
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const at = (node: { range?: [number, number, number] | null } | null | undefined): string => `${file}:${node?.range ? lines.linePos(node.range[0]).line : 1}`;
  const problem = doc.errors[0];
  if (problem) throw new UsageError(`${file}:${problem.linePos?.[0]?.line ?? 1}: not valid YAML: ${problem.message.split('\n')[0] as string}`);
  const layer: Layer = { values: new Map(), origins: new Map() };
  if (doc.contents === null) return layer; // (an empty file)
  if (!YAML.isMap(doc.contents)) throw new UsageError(`${at(doc.contents)}: a config file is a mapping of option names to values (e.g. "clients: 20")`);
  // (Aliases bounded: a few lines must not expand into gigabytes.)
  let js: Record<string, unknown>;
  try {
    js = doc.toJS({ maxAliasCount: 50 }) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
  for (const pair of doc.contents.items) {
    const keyNode = pair.key as { range?: [number, number, number] } | null;
    const where = at(keyNode);
    const key = YAML.isScalar(pair.key) ? pair.key.value : null;
    if (typeof key !== 'string') throw new UsageError(`${where}: a key is an option's name, got ${JSON.stringify(YAML.isNode(pair.key) ? pair.key.toJSON() : pair.key)}`);
    const isBool = spec.boolean.includes(key);
    if (!isBool && !spec.string.includes(key)) throw new UsageError(`${where}: unknown key "${key}" (the keys are the daemon's long options without --: see --help)`);
    if (spec.commandLineOnly.includes(key)) throw new UsageError(`${where}: "${key}" is for the command line only`);
    if (layer.origins.has(key)) throw new UsageError(`${where}: "${key}" given twice (first at line ${(layer.origins.get(key) as string).slice(file.length + 1)})`);
    // A number as it is written (0660, 0o660, a long digit string), never as YAML reads it.
    const asWritten = (n: unknown, value: unknown): unknown => (YAML.isScalar(n) && typeof n.value === 'number' && typeof n.source === 'string' ? n.source : value);
    const jsValue = js[key];
    const v =
      YAML.isSeq(pair.value) && Array.isArray(jsValue) ? jsValue.map((x, i) => asWritten((pair.value as { items: unknown[] }).items[i], x)) : asWritten(pair.value, jsValue);
    const bad = (what: string): UsageError => {
      const got = JSON.stringify(v) ?? String(v);
      return new UsageError(`${where}: ${key}: ${what}, got ${got.length > 100 ? `${got.slice(0, 100)}...` : got}`);
    };
    let value: FlagValue | null;
    if (isBool) {
      if (typeof v !== 'boolean') throw bad('true or false');
      value = v ? true : null;
    } else if (Array.isArray(v)) {
      if (!spec.repeatable.includes(key) && !spec.commaLists.includes(key)) throw bad('one value, not a list');
      const items = v.map((x: unknown) => scalarText(x, () => bad('a list of plain values')));
      value = spec.repeatable.includes(key) ? items : items.join(',');
    } else {
      value = scalarText(v, () => bad('a value (text, a number, yes or no)'));
    }
    if (value !== null) layer.values.set(key, value);
    layer.origins.set(key, where);
  }
  return layer;
}

function loadYaml(): typeof import('yaml') {
  return loadPeer<typeof import('yaml')>('yaml', '--config (and --print-config)', (message) => new UsageError(message));
}

/** A YAML scalar as a flag's text: true/false as yes/no (what --cgroups and the like take). */
function scalarText(v: unknown, bad: () => UsageError): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  throw bad();
}

/** The options, layered (see the module's comment); `warnings` gets what is said at start. */
export interface Layered {
  flags: Flags;
  /** Every flag given, its value, and where it came from ('' for the command line). */
  given: { flag: string; value: FlagValue; origin: string }[];
  /** The config file read, if any. */
  file: string | null;
}

/** Reads argv, the environment and the config file (--config, or PROCMONITOR_CONFIG) into one set of flags. */
export function layeredFlags(argv: string[], spec: ConfigSpec, env: NodeJS.ProcessEnv, warnings: string[]): Layered {
  const cli: Layer = { values: readArgv(argv, spec), origins: new Map() };
  const configText = cli.values.get('config') ?? (env[envName('config')] || undefined);
  if (configText === '' || Array.isArray(configText)) throw new UsageError(configText === '' ? '--config needs a file name' : '--config given more than once');
  const file = typeof configText === 'string' ? configText : null;
  const layers: Layer[] = [cli, envLayer(env, spec, warnings), file ? fileLayer(file, spec) : { values: new Map(), origins: new Map() }];
  const values = new Map<string, FlagValue>();
  const origins = new Map<string, string>();
  const given: Layered['given'] = [];
  const groupOf = (f: string): readonly string[] => spec.groups.find((g) => g.includes(f)) ?? [f];
  const done = new Set<string>();
  for (const flag of [...spec.string, ...spec.boolean]) {
    if (done.has(flag)) continue;
    const group = groupOf(flag);
    for (const f of group) done.add(f);
    // The first place that gives any flag of the group gives the whole group.
    const layer = layers.find((l) => group.some((f) => l.values.has(f) || l.origins.has(f)));
    if (!layer) continue;
    for (const f of group) {
      const v = layer.values.get(f);
      if (v === undefined) continue;
      values.set(f, v);
      const origin = layer.origins.get(f) ?? '';
      if (origin) origins.set(f, origin);
      given.push({ flag: f, value: v, origin });
    }
  }
  return { flags: flagsOf(values, origins), given, file };
}

/**
 * Says where a usage error's flag came from, when not from the command line: the message
 * names the flag (`--name ...`), the file's line or the variable is added.
 */
export function withOrigin(err: UsageError, flags: Flags | null): UsageError {
  const cause = typeof err.cause === 'string' ? err.cause : null;
  const m = /--([a-z][a-z0-9-]*)/.exec(err.message);
  const origin = cause ?? (m && flags ? flags.origin(m[1] as string) : null);
  return origin ? new UsageError(`${err.message} (from ${origin})`) : err;
}

/** The effective configuration as YAML (what a config file would say), secrets masked, each line's origin in a comment. */
export function printConfig(l: Layered, spec: ConfigSpec): string {
  const YAML = loadYaml();
  const out = ['# procMonitor: the options in effect (command line > PROCMONITOR_* > config file); the rest are defaults (see --help)'];
  for (const { flag, value, origin } of l.given) {
    if (spec.commandLineOnly.includes(flag)) continue;
    const partner = spec.onlyWith[flag];
    if (partner !== undefined && !l.given.some((g) => g.flag === partner)) continue;
    const mask = (v: FlagValue): FlagValue => (!spec.urls.includes(flag) ? v : Array.isArray(v) ? v.map(maskUrl) : typeof v === 'string' ? maskUrl(v) : v);
    const shown = spec.secrets.includes(flag) ? '***' : mask(value);
    const lines = YAML.stringify({ [flag]: shown }, { lineWidth: 0 })
      .trimEnd()
      .split('\n');
    lines[0] += `  # ${origin || 'command line'}`;
    out.push(...lines);
  }
  return out.join('\n') + '\n';
}

/** Each URL's password or token (user:PASSWORD@, TOKEN@) as *** (in a comma-separated list too). */
function maskUrl(v: string): string {
  return v.replace(/(^|,)((?:[a-z][a-z0-9+.-]*:\/\/)?)([^@/,]*)@/gi, (_, sep: string, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${sep}${scheme}${colon >= 0 ? `${userinfo.slice(0, colon)}:***` : '***'}@`;
  });
}
