'use strict';
// The process exits by itself after disconnect() and when connect() was never called; a
// connected client keeps it alive (like an open ioredis connection).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { PKG, REDIS_URL, uniq } = require('./helpers');

function run(body, { aliveAfterMs } = {}) {
  const script = `
    const { EventBusClient } = require(${JSON.stringify(PKG)});
    const REDIS_URL = ${JSON.stringify(REDIS_URL)};
    (async () => { ${body} })().catch((e) => { console.error('FAILED', e); process.exit(3); });
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const limit = aliveAfterMs || 10000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ alive: true, out, err });
    }, limit);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ alive: false, code, signal, out, err });
    });
  });
}

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
