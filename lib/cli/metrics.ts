// The daemon's --metrics flag, read into what the metrics endpoint (lib/outputs/metrics.ts) takes.
import { UsageError } from './args';
import type { MetricsAddress } from '../outputs/metrics';

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every IPv4 interface). Port 0 means any free
 * port. Throws a UsageError naming what is wrong.
 */
export function parseMetricsAddress(text: string): MetricsAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):([^:]*)$/.exec(text);
  if (!m) {
    throw new UsageError(`--metrics must be HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464, or :9464 for every interface), got "${text}"`);
  }
  const portText = m[3] as string;
  if (portText === '') throw new UsageError(`--metrics needs a port: HOST:PORT (e.g. 127.0.0.1:9464), got "${text}"`);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new UsageError(`--metrics port must be a whole number from 0 to 65535, got "${portText}"`);
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]);
  return { host, port: Number(portText) };
}
