/**
 * `procMonitor completion bash|zsh`: a completion script for procMonitor (with `trace` and
 * `completion`) and procMonitor-client, made from their --help texts (help.ts), so that it
 * offers what --help lists. Values: the choices below, files for FILE and PATH arguments.
 */
import { EVENT_NAMES } from '../events';
import { SCHEMAS } from '../ecs';
import { FACILITIES } from '../outputs/syslog';
import { helpOptions, type HelpOption } from './help';

const YES_NO = ['yes', 'no'];
/** The values an option takes, where they are few (the tests check each is accepted). */
export const CHOICES: Readonly<Record<string, readonly string[]>> = {
  format: ['json', 'text'],
  schema: SCHEMAS,
  'slow-client': ['drop', 'disconnect'],
  'peer-visibility': ['host', 'own', 'all'],
  cgroups: YES_NO,
  cwd: YES_NO,
  login: YES_NO,
  tty: YES_NO,
  namespaces: YES_NO,
  'syslog-facility': Object.keys(FACILITIES),
  leftovers: ['report', 'wait', 'kill'],
};
/** Comma lists of event names (the last one after a comma is completed). */
export const EVENT_LISTS = ['events', 'ancestors'];
const FILE_ARGS = new Set(['FILE', 'PATH']);

export interface CompletionCommand {
  /** The command's name as typed. */
  name: string;
  help: string;
  /** Words it takes first (procMonitor: trace, completion), each with its own help, or none. */
  subcommands?: Record<string, string | null>;
}

type Kind = 'choices' | 'events' | 'file' | 'value' | 'flag';

function kindOf(o: HelpOption): Kind {
  if (!o.arg) return 'flag';
  if (CHOICES[o.long]) return 'choices';
  if (EVENT_LISTS.includes(o.long)) return 'events';
  return FILE_ARGS.has(o.arg) ? 'file' : 'value';
}

const shellWord = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const fnName = (name: string): string => `_pm_${name.replace(/[^A-Za-z0-9]/g, '_')}`;

/** The bash function that completes one command's options (after `prev`, `cur`). */
function bashOptions(fn: string, help: string): string[] {
  const opts = helpOptions(help);
  const lines = [`${fn}() {`, '  local cur="$1" prev="$2"', '  case "$prev" in'];
  const byKind = new Map<string, string[]>();
  for (const o of opts) {
    const names = [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])];
    const k = kindOf(o);
    if (k === 'choices') lines.push(`    ${names.join('|')}) COMPREPLY=($(compgen -W ${shellWord((CHOICES[o.long] ?? []).join(' '))} -- "$cur")); return 0 ;;`);
    else if (k === 'events') {
      lines.push(
        `    ${names.join('|')}) local pre=""; [[ "$cur" == *,* ]] && pre="\${cur%,*},"; COMPREPLY=($(compgen -P "$pre" -W ${shellWord([...EVENT_NAMES, 'all', ...(o.long === 'ancestors' ? ['none'] : [])].join(' '))} -- "\${cur##*,}")); compopt -o nospace 2>/dev/null; return 0 ;;`,
      );
    } else if (k !== 'flag') byKind.set(k, [...(byKind.get(k) ?? []), ...names]);
  }
  const files = byKind.get('file');
  if (files) lines.push(`    ${files.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null; return 0 ;;`);
  const values = byKind.get('value');
  if (values) lines.push(`    ${values.join('|')}) COMPREPLY=(); return 0 ;;`);
  lines.push('  esac', `  COMPREPLY=($(compgen -W ${shellWord(opts.map((o) => `--${o.long}`).join(' '))} -- "$cur"))`, '}');
  return lines;
}

/** A bash completion script for `commands`. */
export function bashCompletion(commands: readonly CompletionCommand[]): string {
  const out = ['# bash completion for procMonitor and procMonitor-client: eval "$(procMonitor completion bash)"', '# (or save it as /etc/bash_completion.d/procMonitor)'];
  for (const c of commands) {
    const fn = fnName(c.name);
    out.push(...bashOptions(`${fn}_opts`, c.help));
    for (const [sub, help] of Object.entries(c.subcommands ?? {})) if (help) out.push(...bashOptions(`${fn}_${sub}_opts`, help));
    const subs = Object.keys(c.subcommands ?? {});
    out.push(`${fn}() {`, '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"');
    if (subs.length > 0) {
      out.push('  if [[ $COMP_CWORD -eq 1 && "$cur" != -* ]]; then', `    COMPREPLY=($(compgen -W ${shellWord(subs.join(' '))} -- "$cur")); return 0`, '  fi');
      for (const [sub, help] of Object.entries(c.subcommands ?? {})) {
        if (help)
          out.push(
            `  if [[ "\${COMP_WORDS[1]}" == ${sub} ]]; then`,
            '    local i; for ((i = 2; i < COMP_CWORD; i++)); do [[ "${COMP_WORDS[i]}" == -- ]] && { COMPREPLY=($(compgen -c -- "$cur")); return 0; }; done',
            `    ${fn}_${sub}_opts "$cur" "$prev"; return 0`,
            '  fi',
          );
        else out.push(`  if [[ "\${COMP_WORDS[1]}" == ${sub} ]]; then COMPREPLY=($(compgen -W 'bash zsh' -- "$cur")); return 0; fi`);
      }
    }
    out.push(`  ${fn}_opts "$cur" "$prev"`, '}', `complete -F ${fn} ${c.name}`);
  }
  return out.join('\n') + '\n';
}

/** An option as a zsh _arguments spec. */
function zshSpec(o: HelpOption): string[] {
  const desc = o.text
    .replace(/\s*\(default:? [^)]*\)\s*$/, '')
    .replace(/[[\]:\\]/g, (c) => `\\${c}`)
    .slice(0, 100);
  const k = kindOf(o);
  const action =
    k === 'flag'
      ? ''
      : k === 'choices'
        ? `:${o.arg}:(${(CHOICES[o.long] ?? []).join(' ')})`
        : k === 'events'
          ? `:${o.arg}:_sequence compadd - ${[...EVENT_NAMES, 'all'].join(' ')}`
          : k === 'file'
            ? `:${o.arg}:_files`
            : `:${o.arg}: `;
  const names = o.short ? [`-${o.short}`, `--${o.long}`] : [`--${o.long}`];
  const repeat = /repeatable/.test(o.text) ? '*' : '';
  const excl = repeat ? '' : `(${names.join(' ')})`;
  return names.map((n) => `${shellWord(`${excl}${repeat}${n}[${desc}]${action}`)}`);
}

/** A zsh completion script for `commands` (autoloadable as _procMonitor, or sourced). */
export function zshCompletion(commands: readonly CompletionCommand[]): string {
  const out = [
    '#compdef procMonitor procMonitor-client',
    '# zsh completion for procMonitor and procMonitor-client: procMonitor completion zsh > "${fpath[1]}/_procMonitor"',
    '# (or source <(procMonitor completion zsh) after compinit)',
  ];
  for (const c of commands) {
    const fn = fnName(c.name);
    const subs = Object.entries(c.subcommands ?? {});
    for (const [sub, help] of subs)
      if (help)
        out.push(
          `${fn}_${sub}() {`,
          '  _arguments -S \\',
          ...helpOptions(help)
            .flatMap(zshSpec)
            .map((s) => `    ${s} \\`),
          "    '*::command:_normal'",
          '}',
        );
    out.push(`${fn}() {`);
    if (subs.length > 0) {
      out.push('  if (( CURRENT == 2 )) && [[ $words[2] != -* ]]; then', `    _values 'command' ${subs.map(([s]) => shellWord(s)).join(' ')}; return`, '  fi');
      for (const [sub, help] of subs) {
        if (help) out.push(`  if [[ $words[2] == ${sub} ]]; then shift words; (( CURRENT-- )); ${fn}_${sub}; return; fi`);
        else out.push(`  if [[ $words[2] == ${sub} ]]; then _values 'shell' bash zsh; return; fi`);
      }
    }
    out.push(
      '  _arguments -s \\',
      ...helpOptions(c.help)
        .flatMap(zshSpec)
        .map((s) => `    ${s} \\`),
      '    && return',
      '}',
    );
  }
  out.push(
    'if [[ $zsh_eval_context[-1] == loadautofunc ]]; then',
    '  case $service in',
    ...commands.map((c) => `    ${c.name}) ${fnName(c.name)} "$@" ;;`),
    '  esac',
    'else',
    ...commands.map((c) => `  compdef ${fnName(c.name)} ${c.name}`),
    'fi',
  );
  return out.join('\n') + '\n';
}

/** `procMonitor completion bash|zsh`: prints the script; the exit status. */
export function completionMain(args: readonly string[], commands: readonly CompletionCommand[]): number {
  const shell = args[0];
  if (args.length !== 1 || (shell !== 'bash' && shell !== 'zsh')) {
    process.stderr.write('procMonitor: completion takes bash or zsh: procMonitor completion bash|zsh\n');
    return 2;
  }
  process.stdout.write(shell === 'bash' ? bashCompletion(commands) : zshCompletion(commands));
  return 0;
}
