/**
 * The packages some features need that procmonitor does not install itself (optional peer
 * dependencies: a library user who only wants ProcConnector downloads none of them): nats for
 * NATS, prom-client for metrics, yaml for the daemon's --config. Each is loaded when its
 * feature starts; missing, it is one clear line naming what to install.
 */

/** Loads an optional peer package, or throws `fail(message)` saying what to install. */
export function loadPeer<T>(pkg: 'nats' | 'prom-client' | 'yaml', feature: string, fail: (message: string, cause: unknown) => Error): T {
  try {
    return require(pkg) as T;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'it is not installed' : (err as Error).message.split('\n')[0];
    throw fail(`${feature} needs the ${pkg} package (${why}): npm install ${pkg}, with -g beside a global procmonitor`, err);
  }
}
