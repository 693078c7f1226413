/**
 * EventValidator (the 1.0.0 class) and matchesPattern. The rules (envelope fields, sizes,
 * per-type data, Redis glob matching) run in the core; these wrappers only refuse what cannot
 * reach it (a value that is not a string where the rule takes a string, or is not JSON) and map
 * the core's error to a ValidationError.
 */
'use strict';

const native = require('./native');
const { ValidationError, callNative } = require('./errors');
const { toJson } = require('./json');

/** `matchesPattern(pattern, channel)`: Redis's glob semantics, byte for byte. */
function matchesPattern(pattern, channel) {
  if (typeof pattern !== 'string' || typeof channel !== 'string') return false;
  return native.matchesPattern(pattern, channel);
}

class EventValidator {
  constructor(maxEventSize = 1024 * 1024, maxDataSize = 512 * 1024) {
    this.maxEventSize = maxEventSize;
    this.maxDataSize = maxDataSize;
  }

  validateEvent(event) {
    callNative(native.validateEvent, toJson(event, 'Event'), this.maxEventSize, this.maxDataSize);
  }

  // The single-value rules take strings: a value of another type cannot reach the core.

  validateEventType(eventType) {
    if (typeof eventType !== 'string') throw new ValidationError('Event type must be a string');
    callNative(native.validateEventType, eventType);
  }

  validateMetadata(metadata) {
    callNative(native.validateMetadata, metadata === undefined ? undefined : toJson(metadata, 'Metadata'));
  }

  validateTimestamp(timestamp) {
    if (typeof timestamp !== 'string') throw new ValidationError('Timestamp must be a string');
    callNative(native.validateTimestamp, timestamp);
  }

  validateId(id, fieldName) {
    if (typeof id !== 'string') throw new ValidationError(`${fieldName} must be a string`);
    callNative(native.validateId, id, String(fieldName));
  }

  validateEventSize(event) {
    const size = Buffer.byteLength(toJson(event, 'Event'), 'utf8');
    callNative(native.validateSizes, size, 0, this.maxEventSize, Infinity);
  }

  validateDataSize(data) {
    const size = Buffer.byteLength(toJson(data, 'Event data'), 'utf8');
    callNative(native.validateSizes, 0, size, Infinity, this.maxDataSize);
  }

  validateEventData(eventType, data) {
    callNative(native.validateEventData, String(eventType), toJson(data, 'Event data'));
  }

  setMaxEventSize(maxEventSize) {
    this.maxEventSize = maxEventSize;
  }

  setMaxDataSize(maxDataSize) {
    this.maxDataSize = maxDataSize;
  }
}

module.exports = { EventValidator, matchesPattern };
