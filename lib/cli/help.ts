/**
 * A command's --help text read back into its parts, so that the man pages and the shell
 * completions are made from the one text people read (never a second copy to keep in step).
 */

/** An option of the help: `-e, --events LIST   text...`. */
export interface HelpOption {
  short: string | null;
  long: string;
  /** Its argument's placeholder (`LIST`), or null for a flag without a value. */
  arg: string | null;
  /** Its description, the lines joined with single spaces. */
  text: string;
}

/** What a help text is made of, in order. */
export type HelpBlock = { kind: 'heading'; title: string } | { kind: 'option'; option: HelpOption } | { kind: 'text'; lines: string[] };

const OPTION = /^ {2,6}(?:-([A-Za-z0-9]), )?--([a-z][a-z0-9-]*)(?:[ =]([^\s]+))?(?: +(\S.*))?$/;
/** A description's further lines are indented this deep at least (the option lines are not). */
const CONTINUATION = /^ {16,}(\S.*)$/;
const HEADING = /^([A-Z][A-Za-z ]*):$/;

/** The blocks of a help text. */
export function parseHelp(help: string): HelpBlock[] {
  const out: HelpBlock[] = [];
  let option: HelpOption | null = null;
  let text: string[] | null = null;
  for (const line of help.split('\n')) {
    const o = OPTION.exec(line);
    const c = CONTINUATION.exec(line);
    if (o) {
      option = { short: o[1] ?? null, long: o[2] as string, arg: o[3] ?? null, text: o[4] ?? '' };
      out.push({ kind: 'option', option });
      text = null;
    } else if (c && option) {
      option.text = option.text ? `${option.text} ${c[1] as string}` : (c[1] as string);
    } else if (HEADING.test(line)) {
      out.push({ kind: 'heading', title: (HEADING.exec(line) as RegExpExecArray)[1] as string });
      option = null;
      text = null;
    } else {
      option = null;
      if (line.trim() === '' && text === null) continue;
      if (text === null) out.push({ kind: 'text', lines: (text = []) });
      text.push(line);
    }
  }
  // (No trailing blank lines in a text block.)
  for (const b of out) if (b.kind === 'text') while (b.lines.length > 0 && (b.lines[b.lines.length - 1] as string).trim() === '') b.lines.pop();
  return out.filter((b) => b.kind !== 'text' || b.lines.length > 0);
}

/** The options of a help text. */
export function helpOptions(help: string): HelpOption[] {
  return parseHelp(help).flatMap((b) => (b.kind === 'option' ? [b.option] : []));
}
