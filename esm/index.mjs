// ES module entry of procmonitor: the CommonJS build (dist/index.js) re-exported, so that
// `import` and `require` share one instance of everything (one addon, one ProcConnector class).
// Types: dist/index.d.ts (package.json "types"). test/esm.test.mjs checks that every export of
// dist/index.js is listed here: add each new export of lib/index.ts to the list below.
import cjs from '../dist/index.js';

export const {
  ProcConnector,
  ProcConnectorError,
  EVENT_BITS,
  EVENT_NAMES,
  parseEventList,
  eventMask,
  toLine,
  KIND_NAMES,
  OTHER_KIND,
  linesOf,
  parseLines,
  CodedError,
  PASSWORD_PROMPT,
  AUTH_SUCCESS,
  AUTH_FAILED,
  AUTH_TIMEOUT,
  CLIENT_CERT_REFUSED,
  MAX_PASSWORD_BYTES,
  BroadcastServerError,
  BroadcastServer,
  tooManyClientsLine,
  tooManyForUserLine,
  REJECT_REASONS,
  tooManyPendingLine,
  TOO_MANY_FILES,
  FD_RESERVE,
  badRequestLine,
  MAX_REQUEST_BYTES,
  createBroadcastServer,
  ProcMonitorClientError,
  ProcMonitorClient,
  connect,
  createNatsPublisher,
  NatsPublisher,
  NatsPublisherError,
  natsToken,
  parseNatsServers,
  DEFAULT_NATS_PREFIX,
} = cjs;

export default cjs;
