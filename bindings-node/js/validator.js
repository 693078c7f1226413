/**
 * EventValidator (the 1.0.0 class) and matchesPattern. The rules (envelope fields, sizes,
 * per-type data, Redis glob matching) run in the core, including the refusal of a value of the
 * wrong type; these wrappers only refuse what cannot become JSON and map the core's error to a
 * ValidationError.
 */
'use strict';

const native = require('./native');
const { callNative } = require('./errors');
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

  validateEventType(eventType) {
    callNative(native.validateEventType, eventType);
  }

  validateMetadata(metadata) {
    callNative(native.validateMetadata, metadata === undefined ? undefined : toJson(metadata, 'Metadata'));
  }

  validateTimestamp(timestamp) {
    callNative(native.validateTimestamp, timestamp);
  }

  validateId(id, fieldName) {
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
