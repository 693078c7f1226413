/**
 * @shared-infra/event-bus 2.x: the TS package's API on the Rust core.
 *
 * This file is the package's entry: it keeps the constants the package exports and re-exports
 * the rest, with the same names, classes and default export as 1.0.0. The code lives by job:
 *
 * - errors.js: ValidationError and the mapping of the native addon's errors (mapError).
 * - logger.js: Logger, the 1.0.0 console logger (its line is the core's).
 * - validator.js: EventValidator and matchesPattern (the rules run in the core).
 * - json.js: host values to the JSON text the core judges (data, options, config).
 * - publish.js: publish preparation and the per-tick queue that batches publishes.
 * - client.js: EventBusClient (lifecycle, publishing, subscribing, rooms, monitoring).
 *
 * Validation, options, config, channel choice, the envelope, glob matching, filters, timeouts,
 * retries, counters and log lines are the core's: options and config cross as JSON text the
 * core judges, and its errors arrive with their `code` and message. What stays in JS is what
 * JSON cannot carry (functions, symbols, BigInts, cycles) and what only JS has (handlers,
 * Buffers, V8 memory figures). See index.d.ts for the documented types.
 */
'use strict';

const { ValidationError } = require('./errors');
const { Logger } = require('./logger');
const { EventValidator, matchesPattern } = require('./validator');
const { EventBusClient } = require('./client');

// ---------------------------------------------------------------------------------------------
// Constants (same names and shapes as 1.0.0)
// ---------------------------------------------------------------------------------------------

const SocketEvents = Object.freeze({
  CONNECT: 'connect',
  DISCONNECT: 'disconnect',
  ERROR: 'error',
  IDENTIFY: 'identify',
  SUBSCRIBE: 'subscribe',
  UNSUBSCRIBE: 'unsubscribe',
  EVENT: 'event',
  JOIN_ROOM: 'join_room',
  LEAVE_ROOM: 'leave_room',
  PING: 'ping',
  PONG: 'pong',
});

/** Runtime companion of the `LogLevel` type. */
const LogLevel = Object.freeze({ DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' });

/** Create an Event Bus client with configuration. */
function createEventBusClient(config) {
  return new EventBusClient(config);
}

Object.defineProperty(exports, '__esModule', { value: true });
exports.EventBusClient = EventBusClient;
exports.default = EventBusClient;
exports.createEventBusClient = createEventBusClient;
exports.Logger = Logger;
exports.LogLevel = LogLevel;
exports.EventValidator = EventValidator;
exports.ValidationError = ValidationError;
exports.SocketEvents = SocketEvents;
exports.matchesPattern = matchesPattern;
