'use strict';
// Durable delivery (`publish(..., { persistent: true })`, `subscribe(type, h, { durable })`)
// on the shared Redis, with event types unique to each test: a member away gets what was
// published meanwhile, groups are independent, plain subscribers still get persistent events
// live, a killed member's pending events are finished by another member, poison events are
// dead-lettered, listed, replayed and purged.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { fork } = require('node:child_process');
const Redis = require('ioredis');
const { EventBusClient } = require('../..');
const { REDIS_URL, config, uniq, waitFor } = require('./helpers');

const STREAM_ID = /^\d+-\d+$/;

async function client(t, extra = {}) {
  const bus = new EventBusClient(config('redis', extra));
  await bus.connect();
  t.after(() => bus.disconnect());
  return bus;
}

/** A raw Redis connection to look at the streams, and the keys of `type` deleted at the end. */
function raw(t, type) {
  const r = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 2 });
  t.after(async () => {
    await r.del(`events:{${type}}`, `events:{${type}}:dead`);
    r.disconnect();
  });
  return r;
}

async function pendingCount(r, type, group) {
  const [count] = await r.xpending(`events:{${type}}`, group);
  return Number(count);
}

async function publishAll(bus, type, n, extra = {}) {
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => bus.publish(type, { n: i, ...extra }, { persistent: true }))
  );
  for (const r of results) assert.equal(r.success, true, JSON.stringify(r));
  return results.map((r) => r.eventId);
}

test('a member away while 500 are published gets all 500, each once', async (t) => {
  const type = uniq('dur.away');
  const group = uniq('g');
  const r = raw(t, type);
  const pub = await client(t);
  const first = await client(t);
  // Joining creates the group at the stream's end; then the member goes away.
  const early = [];
  const sub = await first.subscribe(type, (ev) => early.push(ev.id), { durable: { group, consumer: 'm1' } });
  await first.unsubscribe(sub.id);
  const ids = await publishAll(pub, type, 500);
  assert.equal(await r.xlen(`events:{${type}}`), 500);

  const back = await client(t);
  const seen = new Map();
  await back.subscribe(
    type,
    (ev) => seen.set(ev.id, (seen.get(ev.id) || 0) + 1),
    { durable: { group, consumer: 'm1', count: 50 } }
  );
  await waitFor(() => seen.size === 500, 30000, 'all 500 events');
  await waitFor(async () => (await pendingCount(r, type, group)) === 0, 10000, 'XPENDING 0');
  assert.deepEqual([...seen.keys()].sort(), [...ids].sort());
  assert.ok([...seen.values()].every((n) => n === 1), 'each event once');
  assert.equal(early.length, 0);
  const stats = await pub.getStats();
  assert.ok(stats.persistentPublished >= 500, `persistentPublished ${stats.persistentPublished}`);
});

test('two groups each get every event', async (t) => {
  const type = uniq('dur.groups');
  raw(t, type);
  const pub = await client(t);
  const a = await client(t);
  const b = await client(t);
  const got = { a: new Set(), b: new Set() };
  const ga = uniq('ga');
  const gb = uniq('gb');
  await a.subscribe(type, (ev) => got.a.add(ev.id), { durable: { group: ga } });
  await b.subscribe(type, (ev) => got.b.add(ev.id), { durable: { group: gb } });
  const ids = await publishAll(pub, type, 100);
  await waitFor(() => got.a.size === 100 && got.b.size === 100, 20000, 'both groups');
  assert.deepEqual([...got.a].sort(), [...ids].sort());
  assert.deepEqual([...got.b].sort(), [...ids].sort());
  const [d] = (await a.getStats()).durable;
  assert.equal(d.group, ga);
  assert.deepEqual(d.types, [type]);
  assert.equal(typeof d.consumer, 'string');
  assert.equal(typeof d.pending, 'number');
});

test('a plain subscriber gets persistent events live; Event.delivery only on durable ones', async (t) => {
  const type = uniq('dur.plain');
  raw(t, type);
  const group = uniq('g');
  const pub = await client(t);
  const plain = [];
  const durable = [];
  await pub.subscribe(type, (ev) => plain.push(ev));
  await pub.subscribe(type, (ev) => durable.push(ev), { durable: { group } });
  const [id] = await publishAll(pub, type, 1);
  await waitFor(() => plain.length === 1 && durable.length === 1, 10000, 'both deliveries');
  assert.equal(plain[0].id, id);
  assert.equal(plain[0].delivery, undefined);
  assert.equal(durable[0].id, id);
  assert.equal(durable[0].delivery.attempt, 1);
  assert.equal(durable[0].delivery.group, group);
  assert.match(durable[0].delivery.streamId, STREAM_ID);
  assert.deepEqual(durable[0].data, { n: 0 });
});

test('a member SIGKILLed mid-work: another member finishes its pending events', async (t) => {
  const type = uniq('dur.kill');
  const group = uniq('g');
  const r = raw(t, type);
  const child = fork(path.join(__dirname, 'durable-member.js'), [REDIS_URL, type, group, 'victim'], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  t.after(() => child.kill('SIGKILL'));
  const childGot = [];
  let ready = false;
  child.on('message', (m) => {
    if (m.ready) ready = true;
    if (m.got) childGot.push(m.got);
    if (m.error) childGot.push(new Error(m.error));
  });
  await waitFor(() => ready || childGot.some((x) => x instanceof Error), 20000, 'the member joined');
  assert.ok(ready, String(childGot[0]));
  const pub = await client(t);
  const ids = await publishAll(pub, type, 20);
  await waitFor(() => childGot.length > 0, 10000, 'the member took an event');
  await waitFor(async () => (await pendingCount(r, type, group)) > 0, 10000, 'pending entries');
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGKILL');
  await exited;
  const victimPending = await pendingCount(r, type, group);
  assert.ok(victimPending >= 1, 'the killed member left pending entries');

  const rescuer = await client(t);
  const done = new Map();
  await rescuer.subscribe(
    type,
    (ev) => done.set(ev.id, ev.delivery),
    { durable: { group, consumer: 'rescuer', minIdleTime: 300, claimInterval: 100 } }
  );
  await waitFor(() => done.size === 20, 30000, 'the rescuer finished all 20');
  assert.deepEqual([...done.keys()].sort(), [...ids].sort());
  // The one the victim was running came again, as a second delivery.
  assert.ok(done.get(childGot[0]).attempt >= 2, JSON.stringify(done.get(childGot[0])));
  await waitFor(async () => (await pendingCount(r, type, group)) === 0, 10000, 'XPENDING 0');
  const stats = await rescuer.getStats();
  assert.ok(stats.eventsReclaimed >= 1, `eventsReclaimed ${stats.eventsReclaimed}`);
});

test('poison events are dead-lettered after maxDeliveries, listed, replayed and purged', async (t) => {
  const type = uniq('dur.poison');
  const group = uniq('g');
  const r = raw(t, type);
  const bus = await client(t);
  const healed = new Set();
  const handled = [];
  const errors = [];
  bus.on('error', (e) => errors.push(e));
  await bus.subscribe(
    type,
    (ev) => {
      if (ev.data.poison && !healed.has(ev.id)) throw new Error(`poison ${ev.data.n}`);
      handled.push(ev.id);
    },
    { retryOnError: false, durable: { group, maxDeliveries: 2, minIdleTime: 100, claimInterval: 100 } }
  );
  const ids = await publishAll(bus, type, 2, { poison: true });
  const [good] = await publishAll(bus, type, 1);
  await waitFor(async () => (await bus.deadLetters(type, { group })).length === 2, 30000, 'two dead letters');
  const dead = await bus.deadLetters(type, { group });
  assert.deepEqual(dead.map((d) => d.event.id).sort(), [...ids].sort());
  for (const d of dead) {
    assert.equal(d.event.type, type);
    assert.equal(d.deliveries, 2);
    assert.match(d.error.message, /poison/);
    assert.match(d.streamId, STREAM_ID);
    assert.match(d.originalId, STREAM_ID);
    assert.equal(typeof d.failedAt, 'number');
  }
  assert.deepEqual(handled, [good]);
  assert.equal((await bus.deadLetters(type, { group, count: 1 })).length, 1);
  await waitFor(async () => (await pendingCount(r, type, group)) === 0, 10000, 'XPENDING 0');
  const stats = await bus.getStats();
  assert.ok(stats.eventsDeadLettered >= 2, `eventsDeadLettered ${stats.eventsDeadLettered}`);
  // Each one is also an 'error' event with the core's code.
  await waitFor(() => errors.filter((e) => e.code === 'DEAD_LETTERED').length === 2, 10000, 'DEAD_LETTERED events');

  // Replay the oldest after a fix: the group gets it again, as a new entry.
  const fixed = dead[0].event.id;
  healed.add(fixed);
  assert.equal(await bus.replayDeadLetters(type, { group, count: 1 }), 1);
  await waitFor(() => handled.includes(fixed), 10000, 'the replayed event handled');
  const left = await bus.deadLetters(type, { group });
  assert.deepEqual(left.map((d) => d.event.id), [dead[1].event.id]);
  // Purge the rest.
  assert.equal(await bus.purgeDeadLetters(type, { group }), 1);
  assert.deepEqual(await bus.deadLetters(type, { group }), []);
  assert.equal(await bus.replayDeadLetters(type, { group }), 0);
});

test('refusals: a glob with durable, a list without durable, durable on memory', async (t) => {
  const bus = await client(t);
  const h = () => {};
  await assert.rejects(bus.subscribe('dur.*', h, { durable: { group: 'g' } }), (e) => {
    assert.equal(e.code, 'VALIDATION_ERROR');
    assert.match(e.message, /stream/);
    return true;
  });
  await assert.rejects(bus.subscribe([uniq('a'), uniq('b')], h), (e) => {
    assert.equal(e.code, 'VALIDATION_ERROR');
    assert.match(e.message, /needs durable/);
    return true;
  });
  await assert.rejects(bus.subscribe(uniq('x'), h, { durable: {} }), (e) => e.code === 'VALIDATION_ERROR');
  await assert.rejects(bus.deadLetters(uniq('x'), {}), (e) => e.code === 'VALIDATION_ERROR');
  const mem = new EventBusClient(config('memory'));
  await mem.connect();
  t.after(() => mem.disconnect());
  await assert.rejects(mem.subscribe(uniq('x'), h, { durable: { group: 'g' } }), (e) => {
    assert.equal(e.code, 'NOT_SUPPORTED');
    assert.match(e.message, /durable subscriptions need Redis/);
    return true;
  });
});

test('a list of types in one durable subscription', async (t) => {
  const t1 = uniq('dur.list1');
  const t2 = uniq('dur.list2');
  raw(t, t1);
  raw(t, t2);
  const bus = await client(t);
  const got = [];
  const sub = await bus.subscribe([t1, t2], (ev) => got.push(ev.type), { durable: { group: uniq('g') } });
  assert.deepEqual(sub.types, [t1, t2]);
  await publishAll(bus, t1, 3);
  await publishAll(bus, t2, 2);
  await waitFor(() => got.length === 5, 10000, 'events of both types');
  assert.equal(got.filter((x) => x === t1).length, 3);
  assert.equal(got.filter((x) => x === t2).length, 2);
});
