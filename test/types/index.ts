// Type tests of the published declarations (dist/index.d.ts): compiled with `tsc --noEmit -p
// test/types` by test/types.test.js. Each `@ts-expect-error` is a misuse the types must refuse.
import {
  ProcConnector,
  ProcConnectorError,
  createBroadcastServer,
  createNatsPublisher,
  connect,
  parseRequest,
  refusalCode,
  type BroadcastServerOptions,
  type ClientRequest,
  type ExecEvent,
  type LineSource,
  type ProcEvent,
  type RefusalCode,
  type RejectReason,
} from '../../dist/index';

const conn = new ProcConnector({ events: ['exec', 'exit'], redact: ['secret'], ancestorDepth: 8 });

// Listeners are narrowed by event name.
conn.on('exec', (ev) => {
  const pid: number = ev.pid;
  const argv: string[] = ev.argv;
  const uid: number | null = ev.uid;
  // @ts-expect-error an exec event has no exit status
  void ev.exit_code;
  (void pid, argv, uid);
});
conn.on('exit', (ev) => {
  const code: number | null = ev.code;
  void code;
});
conn.on('batch', (batch: ProcEvent[]) => {
  for (const ev of batch) {
    if (ev.event === 'exec') {
      const e: ExecEvent = ev; // narrowed by the discriminant
      void e;
    }
  }
});
conn.on('error', (err) => {
  if (err instanceof ProcConnectorError) {
    const code: string = err.code;
    void code;
  }
});
// @ts-expect-error no such event
conn.on('spawn', () => {});
// @ts-expect-error options are typed
new ProcConnector({ rcvbuf: 'big' });
// @ts-expect-error redact is a list of strings
new ProcConnector({ redact: 'secret' });
// A subtree is a pid or a list of them.
new ProcConnector({ subtree: process.pid });
new ProcConnector({ subtree: [1, process.pid] as const });
// @ts-expect-error pids are numbers
new ProcConnector({ subtree: '1' });
// The reader's rest after a read, ms.
new ProcConnector({ readInterval: 0.5 });
// @ts-expect-error a number of ms
new ProcConnector({ readInterval: '1' });

// A ProcConnector is a LineSource: the server and NATS take its bytes.
const src: LineSource = conn;
const opts: BroadcastServerOptions = { source: src, unix: { path: '/tmp/pm.sock' }, peerVisibility: 'host', maxClientsPerUser: 2 };
const server = createBroadcastServer(opts);
server.on('reject', (info) => {
  const reason: RejectReason = info.reason;
  void reason;
});
// @ts-expect-error peerVisibility is host, own or all
createBroadcastServer({ source: conn, unix: { path: '/tmp/pm.sock' }, peerVisibility: 'nobody' });
// @ts-expect-error a source is required
createBroadcastServer({ unix: { path: '/tmp/pm.sock' } });
const stats = server.stats();
const waiting: number = stats.passwordWaiting;
void waiting;

createNatsPublisher({ source: conn, servers: 'nats://127.0.0.1:4222' });
// @ts-expect-error servers are strings
createNatsPublisher({ source: conn, servers: 4222 });

const client = connect({ path: '/tmp/pm.sock', request: { snapshot: true, events: ['exec'] } });
client.on('exec', (ev) => void ev.cmdline);
// @ts-expect-error a request field is typed
connect({ path: '/tmp/pm.sock', request: { snapshot: 'yes' } });

const req: ClientRequest = parseRequest('{"resume_from": 1}');
const code: RefusalCode = refusalCode('Too many clients (max 1). Disconnecting.\n');
(void req, code);

// A stream's own filter: connector.events({ filter }) and a client's request take the one model.
void (async () => {
  for await (const ev of conn.events({ filter: { match: { exe: '/usr/bin/*', subtree: ['e9b5ac0a:1:2', 1] }, exclude: { failed: false } } })) void ev.event;
})();
// @ts-expect-error a filter names keys of FILTER_KEYS only
void conn.events({ filter: { match: { colour: 'red' } } });
const filtered: ClientRequest = { match: { failed: true }, exclude: { user: 'root' } };
void filtered;
