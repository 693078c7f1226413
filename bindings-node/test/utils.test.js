'use strict';
// EventValidator, ValidationError, Logger, LogLevel, SocketEvents, matchesPattern.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EventValidator, ValidationError, Logger, LogLevel, matchesPattern } = require('../..');

const GLOB = path.resolve(__dirname, '..', '..', 'tests', 'fixtures', 'vectors', 'glob-redis7.jsonl');

test('matchesPattern agrees with Redis 7 on every captured case', () => {
  const cases = fs.readFileSync(GLOB, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  assert.ok(cases.length > 100);
  for (const c of cases) assert.equal(matchesPattern(c.pattern, c.channel), c.match, `${c.pattern} ~ ${c.channel}`);
  assert.equal(matchesPattern(5, 'x'), false);
});

test('EventValidator keeps the 1.0.0 rules and messages', () => {
  const v = new EventValidator();
  const ok = { id: '1', type: 'photo.uploaded', data: { a: 1 }, metadata: { source: 's', timestamp: new Date().toISOString(), traceId: 't' } };
  v.validateEvent(ok);
  const err = (fn, msg) => assert.throws(fn, (e) => e instanceof ValidationError && e.name === 'ValidationError' && (msg instanceof RegExp ? msg.test(e.message) : e.message === msg));
  err(() => v.validateEvent({ ...ok, id: '' }), 'Event ID is required');
  err(() => v.validateEvent({ ...ok, type: '' }), 'Event type is required');
  err(() => v.validateEvent({ ...ok, data: null }), 'Event data is required');
  err(() => v.validateEvent({ ...ok, metadata: undefined }), 'Event metadata is required');
  err(() => v.validateEventType(5), 'Event type must be a string');
  err(() => v.validateEventType('a b'), 'Event type can only contain alphanumeric characters, dots, hyphens, and underscores');
  err(() => v.validateEventType('a'.repeat(256)), 'Event type is too long (max 255 characters)');
  err(() => v.validateMetadata({ timestamp: 'x' }), 'Metadata source is required');
  err(() => v.validateMetadata({ source: 's' }), 'Metadata timestamp is required');
  err(() => v.validateTimestamp('yesterday-ish'), 'Invalid timestamp format');
  err(() => v.validateTimestamp(new Date(Date.now() + 2 * 3600e3).toISOString()), 'Timestamp is too far in the future');
  err(() => v.validateTimestamp(new Date(Date.now() - 25 * 3600e3).toISOString()), 'Timestamp is too far in the past');
  err(() => v.validateId(1, 'traceId'), 'traceId must be a string');
  err(() => v.validateId('', 'userId'), 'userId cannot be empty');
  v.setMaxDataSize(10);
  err(() => v.validateDataSize({ s: 'x'.repeat(20) }), /^Event data size \(\d+ bytes\) exceeds maximum allowed size \(10 bytes\)$/);
  v.setMaxEventSize(10);
  err(() => v.validateEventSize(ok), /^Event size \(\d+ bytes\) exceeds maximum allowed size \(10 bytes\)$/);
  err(() => v.validateEventData('photo.uploaded', { photoId: 'p' }), /Field 'userId' is required/);
  err(() => v.validateEventData('photo.processing.progress', { photoId: 'p', userId: 'u', jobId: 'j', progress: 101, stage: 's' }), 'Progress must be between 0 and 100');
  v.validateEventData('something.else', { any: 1 });
  const circ = {};
  circ.c = circ;
  err(() => v.validateDataSize(circ), /JSON-serializable/);
});

test('Logger prints the 1.0.0 line format and honours the level', (t) => {
  const lines = [];
  t.mock.method(console, 'log', (l) => lines.push(['log', l]));
  t.mock.method(console, 'warn', (l) => lines.push(['warn', l]));
  t.mock.method(console, 'error', (l) => lines.push(['error', l]));
  const log = new Logger('info', 'svc');
  log.debug('hidden');
  log.info('hello', { a: 1 });
  log.warn('careful');
  log.error('bad', new Error('boom'));
  assert.equal(lines.length, 3);
  assert.match(lines[0][1], /^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] \[INFO \] \[svc\] hello \{\n {2}"a": 1\n\}$/);
  assert.equal(lines[1][0], 'warn');
  assert.equal(lines[2][0], 'error');
  assert.match(lines[2][1], /"error": "boom"/);
  log.setLevel(LogLevel.ERROR);
  assert.equal(log.getLevel(), 'error');
  log.warn('now hidden');
  assert.equal(lines.length, 3);
  assert.equal(new Logger().getLevel(), 'info');
});
