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
export * from './server';
export * from './client';
