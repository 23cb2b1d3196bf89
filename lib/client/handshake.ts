/**
 * The seed's password handshake, as a TCP client goes through it: wait for the prompt, send
 * the password, read the answer. It reads the server's text and says what to do; the
 * connection does it.
 */
import { AUTH_SUCCESS, PASSWORD_PROMPT } from '../protocol';

/** More than this much text without the prompt (or without the answer) is not our server. */
const MAX_HANDSHAKE_CHARS = 4096;

/** What the text read so far means. */
export type HandshakeStep =
  /** Nothing yet: wait for more text. */
  | { kind: 'wait' }
  /** The prompt came: send `reply` (the password line), and go on with `rest`. */
  | { kind: 'prompt'; reply: string; rest: string }
  /** The password was accepted: the stream starts with `rest`. */
  | { kind: 'accepted'; rest: string }
  /** A line came instead (a refusal, or something unexpected). */
  | { kind: 'line'; line: string }
  /** Too much text without what was expected. */
  | { kind: 'error'; message: string };

export class PasswordHandshake {
  /** What it waits for: the prompt, then the answer to the password. */
  private awaiting: 'prompt' | 'answer' = 'prompt';

  constructor(private readonly password: string) {}

  /** Whether the prompt is still awaited. */
  get beforePrompt(): boolean {
    return this.awaiting === 'prompt';
  }

  /** The next step, given the server's text not yet taken. */
  read(text: string): HandshakeStep {
    if (this.awaiting === 'prompt') {
      const i = text.indexOf(PASSWORD_PROMPT);
      if (i < 0) {
        const nl = text.indexOf('\n');
        if (nl >= 0) return { kind: 'line', line: text.slice(0, nl) };
        if (text.length > MAX_HANDSHAKE_CHARS) return { kind: 'error', message: 'the server sent no password prompt' };
        return { kind: 'wait' };
      }
      this.awaiting = 'answer';
      return { kind: 'prompt', reply: `${this.password}\n`, rest: text.slice(i + PASSWORD_PROMPT.length) };
    }
    const nl = text.indexOf('\n');
    if (nl < 0) {
      if (text.length > MAX_HANDSHAKE_CHARS) return { kind: 'error', message: 'the server did not answer the password' };
      return { kind: 'wait' };
    }
    const line = text.slice(0, nl).replace(/\r$/, '');
    if (line !== AUTH_SUCCESS.trimEnd()) return { kind: 'line', line };
    return { kind: 'accepted', rest: text.slice(nl + 1) };
  }
}
