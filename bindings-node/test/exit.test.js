'use strict';
// The process exits by itself after disconnect() and when connect() was never called; a
// connected client keeps it alive (like an open ioredis connection).
const test = require('node:test');
const assert = require('node:assert/strict');
const { uniq, runChild } = require('./helpers');

/** A child running `body` must exit by itself within 10 s (or, with `aliveAfterMs`, is killed then). */
const run = (body, { aliveAfterMs } = {}) => runChild(body, { limitMs: aliveAfterMs || 10000 });

test('exits when connect() was never called', async () => {
  const r = await run(`
    const bus = new EventBusClient({ serviceName: 'exit', redis: { url: REDIS_URL } });
    bus.on('connected', () => {});
    console.log('made', bus.isConnected());
  `);
  assert.equal(r.alive, false, 'process hung');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /made false/);
});

test('exits after disconnect() with subscriptions, handlers run and state listeners', async () => {
  const ch = uniq('exit');
  const r = await run(`
    const bus = new EventBusClient({ serviceName: 'exit', redis: { url: REDIS_URL }, logLevel: 'error' });
    bus.on('connected', () => {});
    bus.on('error', () => {});
    await bus.connect();
    let got = 0;
    await bus.subscribe('${ch}.*', async () => { got++; });
    await bus.subscribe('${ch}.a', () => { got++; });
    await Promise.all([1, 2, 3].map((i) => bus.publish('${ch}.a', { i })));
    while (got < 6) await new Promise((r) => setTimeout(r, 5));
    await bus.disconnect();
    console.log('got', got);
  `);
  assert.equal(r.alive, false, 'process hung after disconnect()');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /got 6/);
});

test('exits after disconnect() on the memory transport', async () => {
  const r = await run(`
    const bus = new EventBusClient({ serviceName: 'exit', transport: 'memory' });
    await bus.connect();
    await bus.subscribe('a', () => {});
    await bus.publish('a', 1);
    await bus.disconnect();
  `);
  assert.equal(r.alive, false, 'process hung');
  assert.equal(r.code, 0, r.err);
});

test('a connected client keeps the process alive (until disconnect)', async () => {
  const r = await run(`
    const bus = new EventBusClient({ serviceName: 'exit', redis: { url: REDIS_URL }, logLevel: 'error' });
    await bus.connect();
    await bus.subscribe('${ch()}', () => {});
    console.log('connected');
  `, { aliveAfterMs: 1500 });
  assert.equal(r.alive, true, `exited early: ${r.code} ${r.err}`);
  assert.match(r.out, /connected/);
});

function ch() {
  return uniq('alive');
}
