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

// ---- memory: a client is collectable once disconnected, never while connected ----------------

const GC = `
  require('v8').setFlagsFromString('--expose-gc');
  const gc = require('vm').runInNewContext('gc');
  const settle = async () => { for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setTimeout(r, 50)); } };
`;

test('a client dropped after disconnect(), or never connected, is garbage-collected', async () => {
  const ch = uniq('gc');
  const r = await run(`${GC}
    let collected = 0;
    const reg = new FinalizationRegistry(() => { collected++; });
    const N = 20;
    for (let i = 0; i < N; i++) {
      const c = new EventBusClient({ serviceName: 'gc', redis: { url: REDIS_URL }, logLevel: 'error' });
      if (i % 2 === 0) {
        await c.connect();
        await c.subscribe('${ch}', () => {});
        await c.publish('${ch}', { i });
        await c.disconnect();
      }
      reg.register(c, i);
    }
    await settle();
    console.log('collected', collected, 'of', N);
  `);
  assert.equal(r.code, 0, r.err);
  const m = /collected (\d+) of (\d+)/.exec(r.out);
  assert.ok(m, r.out);
  // All but possibly the last one (a register or stack slot may still hold it).
  assert.ok(Number(m[1]) >= Number(m[2]) - 1, r.out);
});

test('a connected client that nothing references stays alive and keeps receiving', async () => {
  const ch = uniq('gclive');
  const r = await run(`${GC}
    let got = 0;
    let collected = 0;
    const reg = new FinalizationRegistry(() => { collected++; });
    await (async () => {
      const sub = new EventBusClient({ serviceName: 'gc', redis: { url: REDIS_URL }, logLevel: 'error' });
      await sub.connect();
      await sub.subscribe('${ch}', () => { got++; });
      reg.register(sub, 'sub');
    })();
    await settle();
    const pub = new EventBusClient({ serviceName: 'gc', redis: { url: REDIS_URL }, logLevel: 'error' });
    await pub.connect();
    await pub.publish('${ch}', { x: 1 });
    for (let i = 0; i < 200 && got < 1; i++) await new Promise((r) => setTimeout(r, 10));
    console.log('got', got, 'collected', collected);
    process.exit(0);
  `);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /got 1 collected 0/);
});
