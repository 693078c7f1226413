// ESM entry: the CommonJS build re-exported, with EventBusClient as the default export.
import cjs from './index.js';

export const {
  EventBusClient,
  createEventBusClient,
  Logger,
  LogLevel,
  EventValidator,
  ValidationError,
  SocketEvents,
  matchesPattern,
} = cjs;
export default cjs.EventBusClient;
