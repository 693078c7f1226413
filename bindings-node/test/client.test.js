'use strict';
// Every method and option of EventBusClient, on real Redis and on the memory transport.
const test = require('node:test');
const assert = require('node:assert/strict');
const bus = require('../..');
const { EventBusClient, createEventBusClient, ValidationError } = bus;
const { uniq, config, sleep, waitFor, TRANSPORTS } = require('./helpers');

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

test('exports: same names as 1.0.0, default export, factory', () => {
  for (const name of ['EventBusClient', 'createEventBusClient', 'Logger', 'LogLevel', 'EventValidator', 'ValidationError', 'SocketEvents', 'matchesPattern']) {
    assert.ok(bus[name], name);
  }
  assert.equal(bus.default, EventBusClient);
  assert.equal(bus.SocketEvents.JOIN_ROOM, 'join_room');
  assert.ok(createEventBusClient(config('memory')) instanceof EventBusClient);
});

test('constructor keeps the 1.0.0 messages', () => {
  assert.throws(() => new EventBusClient({ redis: { host: 'x', port: 1 } }), { message: 'serviceName is required in EventBusConfig' });
  assert.throws(() => new EventBusClient({ serviceName: 's' }), { message: 'redis configuration is required in EventBusConfig' });
  assert.throws(() => new EventBusClient(undefined), { message: 'serviceName is required in EventBusConfig' });
  const circ = { serviceName: 's', redis: {} };
  circ.self = circ;
  assert.throws(() => new EventBusClient(circ), /JSON-serializable/);
  // transport: 'memory' needs no redis section
  const c = new EventBusClient({ serviceName: 's', transport: 'memory' });
  assert.equal(c.isConnected(), false);
});

// A self-signed test CA certificate (public part only).
const TEST_CA_PEM = `-----BEGIN CERTIFICATE-----
MIIDGzCCAgOgAwIBAgIUV8Q6hZsqfAAPvP9JaPpGSK7o7AwwDQYJKoZIhvcNAQEL
BQAwHDEaMBgGA1UEAwwRZXZlbnQtYnVzIHRlc3QgQ0EwIBcNMjYxMTI4MTAxNjQ3
WhgPMjEyNjExMDQxMDE2NDdaMBwxGjAYBgNVBAMMEWV2ZW50LWJ1cyB0ZXN0IENB
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsyk83KZNoZYK2k7pq/Pp
PnoZmG49ROt2XwzWZLlPfmY99aZ261AOOEkDh12fnM4f64pTcxN1YY1v0ItfbV9v
muT5R5pMcDC4WwmXi+Ldb+Tz9ymARoChcX0XGq70kshoEP2vqPqfyU9wpEwuwewC
xDJyIlUuyiwig+REElYgqsty5LQOFEJAOXlwK12vQ5pVRjoKmDzv0TytpGbo5VFB
2cYEGUxx9l86iiM7qGUOiOCPD5j7sdVqLiSxUxCAF5Z2FgAnk0FWdHKFf8//6mrf
dgsh2/l5ZnrBN8kSjTdKj978BUA1tSHi5eyYO8NE+mAtnUp1ddUufNYzzt52no3X
gwIDAQABo1MwUTAdBgNVHQ4EFgQUjdki5zrbPsYpD/3OOh/jgM0aoq4wHwYDVR0j
BBgwFoAUjdki5zrbPsYpD/3OOh/jgM0aoq4wDwYDVR0TAQH/BAUwAwEB/zANBgkq
hkiG9w0BAQsFAAOCAQEAd7Kth1VZd0Ew3TDEIwr3zktPL89gezUDeW1yAA6Q5e6K
89lj3tZrooIn8eN/i2PpljVrPxre6VfhcNS2WXEqSPlLwf+2aLnePK7/JQj/gqna
PNOL70u6OS9g9c65CkG1AkocA4pIwTuU8fwrNXpKwOncbqO2LHcI2SlyQMki0Df+
0oLyxzjSjkVsruApelHTVNeaGx8YPqUfr5ezKrlG4Bx70POmHiH6H7nuGV1XsEJA
3H6T6XlYmbfT/9E8s04tJaOEQ527uw7CUn2oLo1R9oEbvN0iLFb5Size+bMayMrQ
QGr0rt3honyneQfYYDVrbQ2tkCy6+e9AG4YElUTgWg==
-----END CERTIFICATE-----
`;

test('redis.tls.ca takes PEM text or Buffers (fs.readFileSync), as ioredis does', () => {
  const mk = (ca) => new EventBusClient({ serviceName: 's', redis: { host: '127.0.0.1', port: 1, tls: { ca } } });
  mk(TEST_CA_PEM);
  mk(Buffer.from(TEST_CA_PEM));
  mk([Buffer.from(TEST_CA_PEM), TEST_CA_PEM]);
  mk(new Uint8Array(Buffer.from(TEST_CA_PEM)));
  // The Buffer's content reaches the core: one without a certificate is refused for that.
  assert.throws(() => mk(Buffer.from('not a certificate')), (e) => e.code === 'CONFIG_ERROR' && /no PEM certificate/.test(e.message));
  assert.throws(() => mk(42), (e) => e.code === 'CONFIG_ERROR' && /redis\.tls\.ca/.test(e.message));
});

test('connect() names the address when Redis is unreachable', async () => {
  const c = new EventBusClient({ serviceName: 's', redis: { host: '127.0.0.1', port: 1, connectTimeout: 500 }, logLevel: 'error' });
  await assert.rejects(c.connect(), (e) => e.message.includes('127.0.0.1:1') && typeof e.code === 'string');
  assert.equal(c.isConnected(), false);
});

for (const transport of TRANSPORTS) {
  test(`[${transport}] before connect: publish and subscribe reject with 'Not connected to Event Bus'`, async () => {
    const c = new EventBusClient(config(transport));
    await assert.rejects(c.publish('a.b', {}), { message: 'Not connected to Event Bus' });
    await assert.rejects(c.subscribe('a.*', () => {}), { message: 'Not connected to Event Bus' });
    await assert.rejects(c.publishBatch([{ type: 'a', data: 1 }]), { message: 'Not connected to Event Bus' });
    assert.equal(await c.unsubscribe('nope'), false);
    const h = await c.healthCheck();
    assert.equal(h.status, 'unhealthy');
    await c.disconnect(); // idempotent, no-op
  });

  test(`[${transport}] lifecycle, publish family, channels, deliveredTo, stats, health`, async () => {
    const cfg = config(transport);
    const a = new EventBusClient(cfg);
    const states = [];
    a.on('connected', (e) => states.push(e));
    await a.connect();
    await a.connect(); // second call is a no-op
    assert.equal(a.isConnected(), true);
    const ns = uniq('ev');
    const got = [];
    const room = uniq('room');
    const user = uniq('user');
    await a.subscribe(`${ns}.*`, (e) => { got.push(e); });
    await a.subscribe(`room:${room}`, (e) => { got.push(e); });
    await a.subscribe(`user:${user}`, (e) => { got.push(e); });
    await a.subscribe('broadcast', (e) => { if (e.data && e.data.ns === ns) got.push(e); });

    const r1 = await a.publish(`${ns}.one`, { n: 1 }, { traceId: 'trace-1', correlationId: 'corr-1', metadata: { extra: 'x' } });
    assert.equal(r1.success, true);
    assert.match(r1.eventId, UUID);
    assert.match(r1.publishedAt, ISO);
    assert.equal(r1.deliveredTo, 1);
    assert.equal(r1.error, undefined);
    const r2 = await a.publishToRoom(room, `${ns}.two`, { n: 2 });
    const r3 = await a.publishToUser(user, `${ns}.three`, { n: 3 });
    const r4 = await a.broadcast(`${ns}.four`, { n: 4, ns });
    // room wins over user
    const r5 = await a.publish(`${ns}.five`, { n: 5 }, { room, userId: user, broadcast: true });
    for (const r of [r2, r3, r4, r5]) assert.equal(r.success, true, JSON.stringify(r));
    await waitFor(() => got.length >= 5, 3000, 'five events');
    await sleep(50);
    const byN = Object.fromEntries(got.map((e) => [e.data.n, e]));
    assert.equal(got.length, 5);
    assert.equal(byN[1].channel, `${ns}.one`);
    assert.equal(byN[1].pattern, `${ns}.*`);
    assert.equal(byN[1].id, r1.eventId);
    assert.deepEqual(Object.keys(byN[1]), ['id', 'type', 'data', 'metadata', 'channel', 'pattern']);
    assert.deepEqual(byN[1].metadata, { source: 'node-test', timestamp: r1.publishedAt, traceId: 'trace-1', correlationId: 'corr-1', version: '1.0.0', extra: 'x' });
    assert.equal(byN[2].channel, `room:${room}`);
    assert.equal(byN[2].pattern, undefined);
    assert.equal(byN[3].channel, `user:${user}`);
    assert.equal(byN[3].metadata.userId, user);
    assert.equal(byN[4].channel, 'broadcast');
    assert.equal(byN[5].channel, `room:${room}`);

    const batch = await a.publishBatch([
      { type: `${ns}.b1`, data: { n: 6 } },
      { type: 'bad type!', data: { n: 0 } },
      { eventType: `${ns}.b2`, data: { n: 7 }, options: { traceId: 'tb' } },
    ]);
    assert.equal(batch.length, 3);
    assert.equal(batch[0].success, true);
    assert.equal(batch[0].deliveredTo, 1);
    assert.equal(batch[1].success, false);
    assert.equal(batch[1].error.code, 'VALIDATION_ERROR');
    assert.equal(batch[2].success, true);
    await waitFor(() => got.length >= 7, 3000, 'batch events');
    assert.deepEqual(got.slice(5).map((e) => e.data.n), [6, 7]);

    // The core counts a delivery when it learns the handler's outcome, just after the handler ran.
    await waitFor(async () => (await a.getStats()).eventsDelivered >= 7, 3000, 'deliveries counted');
    const stats = await a.getStats();
    assert.equal(stats.eventsPublished, 7);
    assert.equal(stats.eventsReceived >= 7, true);
    assert.equal(stats.eventsDelivered >= 7, true);
    assert.equal(stats.activeSubscriptions, 4);
    assert.equal(stats.totalSubscriptions, 4);
    assert.equal(stats.eventsFailed, 1);
    assert.ok(stats.memoryUsage.heapUsed > 0 && stats.memoryUsage.rss > 0);
    for (const k of ['activeConnections', 'totalConnections', 'activeRooms', 'averageLatency', 'messagesPerSecond', 'errorRate', 'uptime', 'eventsDropped', 'invalidMessages', 'reconnects', 'p95Latency', 'p99Latency']) {
      assert.equal(typeof stats[k], 'number', k);
    }
    const health = await a.healthCheck();
    assert.equal(health.status, 'healthy');
    assert.equal(health.checks.redis.status, 'pass');
    assert.match(health.timestamp, ISO);
    assert.equal(typeof health.uptime, 'number');
    assert.equal(health.version, '2.0.0');

    await assert.rejects(a.joinRoom('r'), { message: 'Socket.IO not connected' });
    await assert.rejects(a.leaveRoom('r'), { message: 'Socket.IO not connected' });
    await assert.rejects(a.getRoomMembers('r'), { message: 'Socket.IO not connected' });

    await a.disconnect();
    await a.disconnect();
    assert.equal(a.isConnected(), false);
    await assert.rejects(a.publish('x', 1), { message: 'Not connected to Event Bus' });
    if (transport === 'redis') assert.ok(states.some((s) => s.connection === 'subscriber'));
  });

  test(`[${transport}] exactly once per subscription; unsubscribing one of two keeps the other`, async () => {
    const cfg = config(transport);
    const c = new EventBusClient(cfg);
    await c.connect();
    const ns = uniq('once');
    const exact = [];
    const pat = [];
    const second = [];
    const s1 = await c.subscribe(`${ns}.x`, (e) => { exact.push(e.id); });
    const s2 = await c.subscribe(`${ns}.*`, (e) => { pat.push(e.id); });
    const s3 = await c.subscribe(`${ns}.*`, (e) => { second.push(e.id); });
    assert.equal(s1.active, true);
    assert.ok(s1.createdAt instanceof Date);
    assert.equal(s2.pattern, `${ns}.*`);
    const r = await c.publish(`${ns}.x`, { a: 1 });
    assert.equal(r.deliveredTo, transport === 'redis' ? 2 : 2); // two Redis subscriptions of one client: SUBSCRIBE + PSUBSCRIBE
    await waitFor(() => exact.length && pat.length && second.length, 3000, 'deliveries');
    await sleep(100);
    assert.deepEqual([exact.length, pat.length, second.length], [1, 1, 1]);

    assert.equal(await c.unsubscribe(s2.id), true);
    assert.equal(s2.active, false);
    assert.equal(await c.unsubscribe(s2.id), false);
    await c.publish(`${ns}.y`, { a: 2 });
    await waitFor(() => second.length === 2, 3000, 'second subscription still alive');
    await sleep(50);
    assert.equal(pat.length, 1);
    await c.disconnect();
    assert.equal(s3.active, false);
  });

  test(`[${transport}] filter, metadata.filter, concurrency, maxPending`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const ns = uniq('flt');
    const got = [];
    const legacy = [];
    await c.subscribe(`${ns}.*`, (e) => { got.push(e.data.n); }, {
      filter: { conditions: [{ field: 'data.kind', operator: 'equals', value: 'keep' }, { field: 'data.n', operator: 'greaterThan', value: 1 }], operator: 'AND' },
    });
    await c.subscribe(`${ns}.*`, (e) => { legacy.push(e.data.n); }, {
      metadata: { filter: { conditions: [{ field: 'data.n', operator: 'in', value: [1, 3] }] } },
    });
    for (const [n, kind] of [[1, 'keep'], [2, 'keep'], [3, 'drop'], [4, 'keep']]) await c.publish(`${ns}.e`, { n, kind });
    await waitFor(() => got.length === 2 && legacy.length === 2, 3000, 'filtered');
    assert.deepEqual(got, [2, 4]);
    assert.deepEqual(legacy, [1, 3]);
    await assert.rejects(c.subscribe(`${ns}.*`, () => {}, { filter: { conditions: [{ field: 'a', operator: 'bogus', value: 1 }] } }));
    await assert.rejects(c.subscribe(`${ns}.*`, () => {}, { concurrency: 0 }), (e) => e instanceof ValidationError);

    // concurrency: 4 handlers overlap
    let running = 0;
    let peak = 0;
    let done = 0;
    await c.subscribe(`${ns}.conc`, async () => {
      running++;
      peak = Math.max(peak, running);
      await sleep(30);
      running--;
      done++;
    }, { concurrency: 4 });
    await Promise.all(Array.from({ length: 8 }, (_, i) => c.publish(`${ns}.conc`, { i })));
    await waitFor(() => done === 8, 3000, 'concurrent handlers');
    assert.ok(peak > 1 && peak <= 4, `peak ${peak}`);

    // in order by default
    const order = [];
    await c.subscribe(`${ns}.ord`, async (e) => { await sleep(e.data.i % 2 ? 5 : 0); order.push(e.data.i); });
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.publish(`${ns}.ord`, { i })));
    await waitFor(() => order.length === 20, 3000, 'ordered');
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));

    // maxPending: a blocked handler with room for 2 drops the rest and counts them
    let release;
    const gate = new Promise((r) => (release = r));
    let handled = 0;
    await c.subscribe(`${ns}.mp`, async () => { await gate; handled++; }, { maxPending: 2 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => c.publish(`${ns}.mp`, { i })));
    try {
      // Events handed to JS in a batch still count as pending until they start.
      await waitFor(async () => (await c.getStats()).eventsDropped >= 7, 3000, 'drops');
    } finally {
      release(); // a failed wait must not leave the handler (and this process) blocked
    }
    // one running + two queued (or two queued when all ten arrived before the first started)
    const dropped = (await c.getStats()).eventsDropped;
    await waitFor(() => handled + dropped === 10, 3000, 'handled');
    assert.ok(handled >= 2 && handled <= 3, `handled ${handled}`);
    await c.disconnect();
  });

  test(`[${transport}] handler timeout and retry apply to async handlers; failures are counted`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const ns = uniq('retry');
    let calls = 0;
    await c.subscribe(`${ns}.a`, async () => {
      calls++;
      if (calls < 3) throw new Error('boom');
    }, { retryOnError: true, maxRetries: 3, retryDelay: 10 });
    await c.publish(`${ns}.a`, { x: 1 });
    await waitFor(() => calls === 3, 3000, 'retries');
    await sleep(50);
    assert.equal(calls, 3);

    let slow = 0;
    await c.subscribe(`${ns}.b`, () => { slow++; return new Promise(() => {}); }, { timeout: 30, retryOnError: true, maxRetries: 2, retryDelay: 5 });
    await c.publish(`${ns}.b`, { x: 1 });
    await waitFor(() => slow === 3, 3000, 'timeouts retried');

    let noRetry = 0;
    await c.subscribe(`${ns}.c`, () => { noRetry++; throw new Error('once'); });
    await c.publish(`${ns}.c`, { x: 1 });
    await waitFor(async () => (await c.getStats()).eventsFailed >= 2, 3000, 'failures counted');
    assert.equal(noRetry, 1);
    const s = await c.getStats();
    assert.ok(s.eventsDelivered >= 1);
    await c.disconnect();
  });

  // A handler's timeout never affects other handlers. Events batched behind one that
  // runs past its timeout are given up by the core, run on their own, and each runs once.
  for (const mode of ['awaits', 'blocks the thread', 'never settles']) {
    test(`[${transport}] a handler that ${mode} past its timeout does not fail the events batched behind it`, async () => {
      const c = new EventBusClient(config(transport));
      await c.connect();
      const ns = uniq('tb');
      const ran = [];
      await c.subscribe(
        `${ns}.*`,
        (e) => {
          const { k } = e.data;
          ran.push(k);
          // The gate holds the subscription while events 0-3 arrive, so they cross as one batch.
          if (k === 'gate') return sleep(100);
          if (k !== 0) return undefined;
          if (mode === 'awaits') return sleep(700);
          if (mode === 'never settles') return new Promise(() => {});
          // Past event 0's timeout (300 ms), with 150 ms to spare either side: the events the
          // core then calls on their own (their timeouts start at 300 ms) run when this returns.
          const until = Date.now() + 450;
          while (Date.now() < until);
          return undefined;
        },
        { timeout: 300 }
      );
      await c.publish(`${ns}.gate`, { k: 'gate' });
      const results = await c.publishBatch([0, 1, 2, 3].map((k) => ({ type: `${ns}.e`, data: { k } })));
      assert.ok(results.every((r) => r.success));
      await waitFor(() => ran.length >= 5, 5000, 'every event ran');
      await sleep(800); // room for a second run of any of them to show
      assert.deepEqual(ran, ['gate', 0, 1, 2, 3]);
      const s = await c.getStats();
      assert.equal(s.eventsFailed, 1, 'only the slow handler failed');
      assert.equal(s.eventsDelivered, 4);
      await c.disconnect();
    });
  }

  test(`[${transport}] disconnect() from a handler does not wait for that handler`, async () => {
    // A disconnect timeout far beyond the test's own limit: waiting for the calling handler
    // (which cannot finish before disconnect() returns) would outlast waitFor.
    const c = new EventBusClient(config(transport, { disconnectTimeout: 120000 }));
    await c.connect();
    const ch = uniq('dis');
    let done = false;
    await c.subscribe(ch, async () => {
      await c.disconnect();
      done = true;
    });
    await c.publish(ch, { x: 1 });
    await waitFor(() => done, 20000, 'disconnect() inside the handler to return');
    assert.equal(c.isConnected(), false);
  });

  test(`[${transport}] disconnect() outside handlers still waits for running ones`, async () => {
    const c = new EventBusClient(config(transport, { disconnectTimeout: 30000 }));
    await c.connect();
    const ch = uniq('diswait');
    let started = false;
    let finished = false;
    await c.subscribe(ch, async () => {
      started = true;
      await sleep(300);
      finished = true;
    });
    await c.publish(ch, { x: 1 });
    await waitFor(() => started, 5000, 'the handler to start');
    await c.disconnect();
    assert.equal(finished, true);
  });
}

test('transport: "memory" config works without redis', async () => {
  const c = new EventBusClient({ serviceName: 'm', transport: 'memory', logLevel: 'error' });
  await c.connect();
  const ch = uniq('mem');
  const got = [];
  await c.subscribe(ch, (e) => { got.push(e); });
  const r = await c.publish(ch, { ok: true });
  assert.equal(r.deliveredTo, 1);
  await waitFor(() => got.length === 1);
  await c.disconnect();
});

test('state events: never emits "error" without a listener; listeners that throw do not crash', async () => {
  const c = new EventBusClient(config('redis'));
  c._onState(JSON.stringify({ type: 'error', connection: 'subscriber', message: 'resubscribe refused' }));
  const errors = [];
  c.on('error', (e) => errors.push(e));
  c.on('gap', () => { throw new Error('listener bug'); });
  c._onState(JSON.stringify({ type: 'error', connection: 'subscriber', message: 'resubscribe refused' }));
  c._onState(JSON.stringify({ type: 'gap', from: 'a', to: 'b', duration: 1 }));
  c._onState('not json');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof Error);
  assert.equal(errors[0].connection, 'subscriber');
});
