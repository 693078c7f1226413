'use strict';
// Wire interop with a raw ioredis client standing in for an unchanged TS service on 1.0.0.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const Redis = require('ioredis');
const { EventBusClient } = require('../..');
const { REDIS_URL, uniq, config, waitFor, sleep } = require('./helpers');

const VECTORS = path.resolve(__dirname, '..', '..', 'tests', 'fixtures', 'vectors', 'wire-ts-reference.jsonl');
const lines = fs.readFileSync(VECTORS, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

test('every captured TS message published by ioredis arrives intact and in order', async () => {
  const prefix = `${uniq('wire')}|`;
  const bus = new EventBusClient(config('redis'));
  await bus.connect();
  const got = [];
  await bus.subscribe(`${prefix}*`, (e) => { got.push(e); });
  const pub = new Redis(REDIS_URL);
  try {
    for (const { channel, message } of lines) await pub.publish(prefix + channel, message);
    await waitFor(() => got.length === lines.length, 5000, 'all vectors');
    await sleep(50);
    assert.equal(got.length, lines.length);
    lines.forEach(({ channel, message }, i) => {
      const expected = JSON.parse(message);
      const e = got[i];
      assert.equal(e.channel, prefix + channel);
      assert.equal(e.pattern, `${prefix}*`);
      const { channel: _c, pattern: _p, ...event } = e;
      assert.deepEqual(event, expected);
      assert.deepEqual(Object.keys(event), Object.keys(expected));
      assert.deepEqual(Object.keys(event.metadata), Object.keys(expected.metadata));
    });
  } finally {
    pub.disconnect();
    await bus.disconnect();
  }
});

test('a message that is not an event is counted, not delivered, never a crash', async () => {
  const ch = uniq('junk');
  const bus = new EventBusClient(config('redis'));
  await bus.connect();
  const got = [];
  await bus.subscribe(ch, (e) => { got.push(e); });
  const pub = new Redis(REDIS_URL);
  try {
    await pub.publish(ch, 'not json');
    await pub.publish(ch, '{"id":"x"}');
    await pub.publish(ch, '[1,2]');
    await pub.publish(ch, JSON.stringify({ id: 'a', type: 't', data: 1, metadata: {}, extra: true }));
    await waitFor(() => got.length === 1, 3000, 'the valid one');
    await waitFor(async () => (await bus.getStats()).invalidMessages === 3, 3000, 'invalid counted');
    assert.equal(got[0].data, 1);
  } finally {
    pub.disconnect();
    await bus.disconnect();
  }
});

test('our publishes reach ioredis with the exact TS envelope and channels', async () => {
  const ns = uniq('out');
  const room = uniq('room');
  const user = uniq('user');
  const sub = new Redis(REDIS_URL);
  const raw = [];
  sub.on('message', (channel, message) => raw.push({ channel, message }));
  sub.on('pmessage', (_p, channel, message) => raw.push({ channel, message }));
  await sub.psubscribe(`${ns}.*`);
  await sub.subscribe(`room:${room}`, `user:${user}`, 'broadcast');
  const bus = new EventBusClient(config('redis'));
  await bus.connect();
  try {
    const data = { photoId: 'p1', nested: { a: [1, 'two', null, true] }, 'unicode': 'é✓\u2028"\\' };
    const results = [
      await bus.publish(`${ns}.plain`, data),
      await bus.publish(`${ns}.opts`, data, { traceId: 'trace-x', correlationId: 'corr-y', userId: user }),
      await bus.publishToRoom(room, `${ns}.room`, data, { userId: user }),
      await bus.broadcast(`${ns}.bc`, { ns }),
    ];
    const wanted = [`${ns}.plain`, `user:${user}`, `room:${room}`, 'broadcast'];
    const mine = () => raw.filter((m) => m.channel !== 'broadcast' || m.message.includes(ns));
    await waitFor(() => mine().length === 4, 3000, 'raw messages');
    const msgs = mine();
    assert.deepEqual(msgs.map((m) => m.channel), wanted);
    msgs.forEach((m, i) => {
      const e = JSON.parse(m.message);
      const r = results[i];
      assert.equal(e.id, r.eventId);
      assert.equal(e.metadata.timestamp, r.publishedAt);
      // Rebuild what 1.0.0 would have sent (JSON.stringify keeps insertion order, and drops
      // undefined correlationId/userId exactly as the TS package did).
      const md = e.metadata;
      const ts = JSON.stringify({
        id: e.id,
        type: e.type,
        data: e.data,
        metadata: { source: 'node-test', timestamp: md.timestamp, traceId: md.traceId, correlationId: md.correlationId, userId: md.userId, version: '1.0.0' },
      });
      assert.equal(m.message, ts);
    });
    assert.equal(JSON.parse(msgs[0].message).data.unicode, data.unicode);
    assert.equal(JSON.parse(msgs[1].message).metadata.traceId, 'trace-x');
    assert.match(JSON.parse(msgs[0].message).metadata.traceId, /^[0-9a-f-]{36}$/);
    assert.ok(results.every((r) => r.success && r.deliveredTo >= 1));
  } finally {
    sub.disconnect();
    await bus.disconnect();
  }
});

test('publishes reach Redis in call order, also when a later tick publishes fewer events', async () => {
  // ioredis writes commands in call order, and services rely on it. Each tick's publishes are
  // one native call; a small later call must not overtake a large earlier one (it did, 44 runs
  // in 50, when each call was a task of its own on the runtime's two workers).
  const ch = uniq('order');
  const sub = new Redis(REDIS_URL);
  const got = [];
  sub.on('message', (_c, m) => got.push(JSON.parse(m).data.n));
  await sub.subscribe(ch);
  const bus = new EventBusClient(config('redis'));
  await bus.connect();
  try {
    for (let round = 0; round < 10; round++) {
      got.length = 0;
      const ps = [];
      for (let i = 0; i < 2000; i++) ps.push(bus.publish(ch, { n: i }));
      await new Promise((r) => setImmediate(r));
      for (let i = 2000; i < 2010; i++) ps.push(bus.publish(ch, { n: i }));
      const results = await Promise.all(ps);
      assert.ok(results.every((r) => r.success), 'all published');
      await waitFor(() => got.length === 2010, 5000, 'raw messages');
      const firstOut = got.findIndex((v, i) => v !== i);
      assert.equal(firstOut, -1, `round ${round}: first out of order at ${firstOut} (${got[firstOut]})`);
    }
  } finally {
    await bus.disconnect();
    sub.disconnect();
  }
});
