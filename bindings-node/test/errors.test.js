'use strict';
// Errors come from the core with their code, and the classes that wrap the core (EventValidator,
// Logger, getStats) repeat none of its rules or messages.
const test = require('node:test');
const assert = require('node:assert/strict');
const native = require('../js/native');
const { EventBusClient, EventValidator, ValidationError, Logger } = require('../..');
const { config } = require('./helpers');

/** What a native call throws (it must throw). */
function thrownBy(fn) {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected a throw');
}

test('a native error carries the core code natively, with no prefix in its message', () => {
  const err = thrownBy(() => native.validateEventType('a b'));
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'VALIDATION_ERROR');
  assert.equal(err.message, 'Event type can only contain alphanumeric characters, dots, hyphens, and underscores');
  // The addon's error is a plain Error: index.js alone makes it a ValidationError.
  assert.ok(!(err instanceof ValidationError));
  const pub = thrownBy(() => new EventValidator().validateEventType('a b'));
  assert.ok(pub instanceof ValidationError);
  assert.equal(pub.code, 'VALIDATION_ERROR');
  assert.equal(pub.message, err.message);

  const cfg = thrownBy(() => new EventBusClient({ serviceName: '', redis: {} }));
  assert.equal(cfg.code, 'CONFIG_ERROR');
  assert.doesNotMatch(cfg.message, /^\[/);
  assert.ok(cfg.message.length > 0);

  const notJson = thrownBy(() => native.validateEventData('photo.uploaded', '{not json'));
  assert.equal(notJson.code, 'INVALID_ARGUMENT');
});

test('a rejected native promise carries the core code and message too', async () => {
  const c = new EventBusClient(config('memory'));
  await c.connect();
  try {
    await assert.rejects(c.joinRoom('r1'), (e) => e instanceof Error && e.code === 'CONNECTION_ERROR' && e.message === 'Socket.IO not connected');
    await assert.rejects(c.subscribe('', () => {}), (e) => e instanceof ValidationError && e.code === 'VALIDATION_ERROR' && !/^\[/.test(e.message));
  } finally {
    await c.disconnect();
  }
});

test('synchronous native calls answer with exceptions, never abort, on hostile arguments', () => {
  // Wrong argument types are refused by napi's conversion before any Rust code runs...
  assert.throws(() => native.validateEventType(5));
  // ...and odd numbers are limits like any other (Infinity: none; NaN: 0), never a crash.
  native.validateSizes(10, 10, Infinity, Infinity);
  assert.equal(thrownBy(() => native.validateSizes(1, 0, NaN, NaN)).code, 'VALIDATION_ERROR');
  assert.equal(native.formatLogLine('info', 'debug', 's', 'm', false), null);
  assert.equal(thrownBy(() => native.formatLogLine('info', 'loud', 's', 'm', false)).code, 'INVALID_ARGUMENT');
});

test('EventValidator messages are the core validator\'s, with the instance limits', () => {
  const now = new Date().toISOString();
  const ok = { id: 'e1', type: 't.a', data: { s: 'x' }, metadata: { source: 's', timestamp: now } };
  const bad = [
    {},
    { ...ok, id: 0 },
    { ...ok, type: 7 },
    { ...ok, data: null },
    { ...ok, metadata: { timestamp: now } },
    { ...ok, metadata: { source: 's', timestamp: 'soon' } },
    { ...ok, metadata: { source: 's', timestamp: now, traceId: 5 } },
    { ...ok, metadata: { source: 's', timestamp: now, version: 2 } },
    { ...ok, data: { s: 'x'.repeat(100) } },
  ];
  const v = new EventValidator(10000, 50);
  for (const ev of bad) {
    const pub = thrownBy(() => v.validateEvent(ev));
    const core = thrownBy(() => native.validateEvent(JSON.stringify(ev), 10000, 50));
    assert.ok(pub instanceof ValidationError, JSON.stringify(ev));
    assert.equal(pub.message, core.message);
    assert.equal(core.code, 'VALIDATION_ERROR');
  }
  v.validateEvent(ok);
  v.setMaxEventSize(20);
  assert.match(thrownBy(() => v.validateEvent(ok)).message, /^Event size \(\d+ bytes\) exceeds maximum allowed size \(20 bytes\)$/);
  // validateMetadata: the metadata rules of validateEvent, the same messages.
  assert.equal(thrownBy(() => v.validateMetadata({ source: 's', timestamp: now, version: 2 })).message, 'Metadata version must be a string');
  assert.equal(thrownBy(() => v.validateMetadata(undefined)).message, 'Metadata source is required');
  assert.equal(thrownBy(() => v.validateMetadata('text')).message, 'Metadata source is required');
  v.validateMetadata({ source: 's', timestamp: now });
});

test('Logger lines are the core format, and the core decides which levels pass', (t) => {
  const lines = [];
  t.mock.method(console, 'log', (l) => lines.push(l));
  t.mock.method(console, 'warn', (l) => lines.push(l));
  const core = native.formatLogLine('debug', 'info', 'svc', 'hello', false);
  new Logger('debug', 'svc').info('hello');
  assert.equal(lines.length, 1);
  // Same line but for the time stamp.
  const strip = (l) => l.replace(/^\[[^\]]+\]/, '[T]');
  assert.equal(strip(lines[0]), strip(core));
  // The core reads levels case-insensitively, 'warning' included.
  new Logger('WARNING', 'svc').info('hidden');
  new Logger('WARNING', 'svc').warn('shown');
  assert.equal(lines.length, 2);
  assert.match(lines[1], /\[WARN \] \[svc\] shown$/);
  assert.deepEqual(Object.keys(JSON.parse(native.formatLogLine('info', 'error', 'svc', 'm', true))), ['time', 'level', 'service', 'message']);
});

test('getStats().errorRate is the core snapshot\'s', async () => {
  const c = new EventBusClient(config('memory'));
  await c.connect();
  try {
    await c.publish('t.ok', { a: 1 });
    const r = await c.publish('', { a: 1 });
    assert.equal(r.success, false);
    const s = await c.getStats();
    assert.ok(s.errorRate > 0);
    assert.equal(s.errorRate, JSON.parse(c._native.stats()).errorRate);
  } finally {
    await c.disconnect();
  }
});

test('the single-value validator rules refuse a value of the wrong type in the core', () => {
  const v = new EventValidator();
  for (const [fn, message] of [
    [() => v.validateEventType(42), 'Event type must be a string'],
    [() => v.validateEventType(undefined), 'Event type must be a string'],
    [() => v.validateId({}, 'traceId'), 'traceId must be a string'],
    [() => v.validateTimestamp(Date.now()), 'Timestamp must be a string'],
  ]) {
    const err = thrownBy(fn);
    assert.ok(err instanceof ValidationError, String(err));
    assert.equal(err.code, 'VALIDATION_ERROR');
    assert.equal(err.message, message);
  }
  // The native functions themselves say it: no JS rule sits in front of them.
  assert.equal(thrownBy(() => native.validateEventType(7)).message, 'Event type must be a string');
});
