export * from './events';
export {
  ProcConnector,
  ProcConnectorError,
  type ProcConnectorOptions,
  type ProcConnectorErrorCode,
  type ProcConnectorEvents,
  type EventsOptions,
  type ConnectorStats,
} from './connector';
export { FILTER_KEYS, type CompiledFilter, type EventFilter, type FilterKey, type FilterTerms, type FilterValue } from './filter';
export type { Pem } from './pem';
export type { PeerVisibility } from './server/visibility';
export * from './protocol';
export * from './server';
export * from './client';
export {
  createNatsPublisher,
  NatsPublisher,
  NatsPublisherError,
  natsToken,
  parseNatsServers,
  DEFAULT_NATS_PREFIX,
  type NatsPublisherOptions,
  type NatsJetStreamOptions,
  type NatsPublisherStats,
  type NatsPublisherState,
  type NatsPublisherEvents,
  type NatsPublisherErrorCode,
  type NatsServerAddress,
} from './outputs/nats';
export { createFileOutput, FileOutput, FileOutputError, type FileOutputOptions, type FileOutputStats, type FileOutputErrorCode } from './outputs/file';
export { ecsLines, ecsSource, ECS_VERSION, SCHEMAS, toEcs, type EcsDocument, type Schema } from './ecs';
export { DEFAULT_JOURNAL_SOCKET, JournaldError, JournaldOutput, type JournaldErrorCode, type JournaldOptions, type JournaldStats } from './outputs/journald';
export {
  trace,
  traceProcess,
  chromeTrace,
  htmlReport,
  type ChromeTrace,
  type ChromeTraceEvent,
  statusOf,
  summaryText,
  formatDuration,
  shellLine,
  failed,
  Job,
  TraceError,
  type TraceOptions,
  type TraceErrorCode,
  type LeftoverPolicy,
  type JobEvents,
  type JobSummary,
  type Leftover,
  type TreeNode,
  type TextOptions,
  type TracedProcess,
  type TracedExec,
} from './trace';
