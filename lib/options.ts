/**
 * An integer option of the library's constructors: `def` when it is not given; else a whole
 * number from `min` to `max`, or the error `fail` makes of the message is thrown (each class
 * throws its own error type: RangeError, BroadcastServerError, NatsPublisherError).
 */
export function intOption(v: unknown, name: string, def: number, min: number, max = 0x7fffffff, fail: (message: string) => Error = (m) => new RangeError(m)): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw fail(`${name} must be an integer from ${min} to ${max}, got ${shown(v)}`);
  }
  return v;
}

/** A true/false option: `def` when not given; anything else is refused. */
export function boolOption(v: unknown, name: string, def: boolean, fail: (message: string) => Error = (m) => new TypeError(m)): boolean {
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw fail(`${name} must be true or false, got ${shown(v)}`);
  return v;
}

/** A value as an error message shows it. */
function shown(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === null) return String(v);
  if (typeof v === 'object') return JSON.stringify(v) ?? 'an object';
  return typeof v;
}
