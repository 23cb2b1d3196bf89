/**
 * A man page (roff, man(7) macros) made from a command's --help text (help.ts reads it): the
 * usage lines as SYNOPSIS, the text before the first heading as DESCRIPTION, each option as a
 * tagged paragraph, every other heading as a section. scripts/man.js writes man/*.1 with it.
 */
import { parseHelp } from './help';

export interface ManPageOptions {
  /** The command (`procMonitor`, `procMonitor-client`, `procMonitor trace`). */
  name: string;
  /** One line for NAME: what it is. */
  summary: string;
  help: string;
  version: string;
  /** The page's name if not `name` (e.g. procMonitor-trace). */
  page?: string;
}

/** Text as roff: backslashes escaped, a leading . or ' made harmless, hyphens in options as \-. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/(^|\s)(--?)(?=[A-Za-z])/g, (_m, pre: string, dashes: string) => `${pre}${dashes.replace(/-/g, '\\-')}`)
    .replace(/^([.'])/, '\\&$1');
}

/** Lines as preformatted roff. */
function verbatim(lines: readonly string[]): string[] {
  return ['.nf', ...lines.map((l) => roff(l.replace(/^ {2}/, ''))), '.fi'];
}

/** A section title of a text line at column 0 such as "Exit status: 0 after ...", or null. */
const INLINE_SECTION = /^([A-Z][a-z]+(?: [a-z]+)?): (\S.*)$/;

export function manPage(o: ManPageOptions): string {
  const page = (o.page ?? o.name).replace(/ /g, '-');
  const out = [`.TH "${page.toUpperCase()}" "1" "" "procmonitor ${o.version}" "User Commands"`, '.SH NAME', `${roff(page)} \\- ${roff(o.summary)}`];
  const blocks = parseHelp(o.help);
  let section = '';
  let first = true;
  for (const b of blocks) {
    if (b.kind === 'heading') {
      section = b.title.toUpperCase();
      out.push(`.SH ${section}`);
      continue;
    }
    if (b.kind === 'option') {
      const { short, long, arg, text } = b.option;
      const flag = `${short ? `\\fB\\-${short}\\fR, ` : ''}\\fB\\-\\-${long}\\fR${arg ? ` \\fI${roff(arg)}\\fR` : ''}`;
      out.push('.TP', flag, roff(text));
      continue;
    }
    let lines = b.lines;
    if (first) {
      // The usage lines (up to the first blank line), then the description.
      first = false;
      const blank = lines.findIndex((l) => l.trim() === '');
      const usage = blank < 0 ? lines : lines.slice(0, blank);
      out.push('.SH SYNOPSIS', ...verbatim(usage.map((l) => l.replace(/^Usage: {0,1}/, '').replace(/^ {7}/, ''))));
      lines = blank < 0 ? [] : lines.slice(blank + 1);
      if (lines.length === 0) continue;
      section = 'DESCRIPTION';
      out.push('.SH DESCRIPTION');
    }
    // Paragraphs; an inline "Title: text" line at column 0 opens a section of its own.
    let para: string[] = [];
    const flush = (): void => {
      if (para.length === 0) return;
      if (section === 'DESCRIPTION' || section === 'OPTIONS' || section === 'EXIT STATUS') out.push('.PP', roff(para.map((l) => l.trim()).join(' ')));
      else out.push(...verbatim(para));
      para = [];
    };
    for (const line of lines) {
      const m = INLINE_SECTION.exec(line);
      if (m) {
        flush();
        section = (m[1] as string).toUpperCase();
        out.push(`.SH ${section}`);
        para.push(m[2] as string);
      } else if (line.trim() === '') flush();
      else para.push(line);
    }
    flush();
  }
  return out.join('\n') + '\n';
}
