'use strict';
// Bad input never crashes the process: each case is a clear error or a counted failure.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventBusClient, ValidationError } = require('../..');
const { uniq, config, waitFor, sleep, TRANSPORTS } = require('./helpers');

for (const transport of TRANSPORTS) {
  test(`[${transport}] bad publish input resolves {success:false, error}`, async () => {
    const c = new EventBusClient(config(transport, { validation: { maxDataSize: 1000, maxEventSize: 5000 } }));
    await c.connect();
    const circular = { a: 1 };
    circular.self = circular;
    // face: refused in JS, before the core (what JSON cannot carry; a type that is not a
    // string), and still counted and logged by the core. options: judged by the core's
    // options interpreter.
    const FACE = { face: true };
    const OPTIONS = { options: true };
    const cases = [
      [['t.a', circular], /JSON-serializable/, FACE],
      [['t.a', { big: 10n }], /JSON-serializable.*BigInt/, FACE],
      [['t.a', () => 1], /JSON-serializable \(got a function\)/, FACE],
      [['t.a', Symbol('s')], /JSON-serializable \(got a symbol\)/, FACE],
      [['t.a', {}, { traceId: () => 'x' }], /^Publish options must be JSON-serializable \(traceId is a function\)$/, FACE],
      [['t.a', {}, { metadata: { n: 1n } }], /^Publish options must be JSON-serializable: .*BigInt/, FACE],
      [['t.a', undefined], /^Event data is required$/],
      [['t.a', null], /^Event data is required$/],
      [[42, {}], /^Event type must be a string$/, FACE],
      [[null, {}], /^Event type must be a string$/, FACE],
      [['', {}], /^Event type is required$/],
      [['has space', {}], /alphanumeric characters, dots, hyphens, and underscores/],
      [['x'.repeat(256), {}], /too long/],
      [['t.a', {}, { room: 5 }], /room|string/, OPTIONS],
      [['t.a', {}, { userId: {} }], /userId|string/, OPTIONS],
      [['t.a', {}, { traceId: '' }], /^traceId cannot be empty$/],
      [['t.a', {}, { correlationId: 'c'.repeat(300) }], /correlationId is too long/],
      [['t.a', {}, 'opts'], /options|opts/, OPTIONS],
      [['t.\ud800', {}], /alphanumeric characters, dots, hyphens, and underscores/],
      [['t.a', {}, { metadata: { source: 'spoof' } }], /source/],
      [['t.a', { s: 'x'.repeat(2000) }], /Event data size \(\d+ bytes\) exceeds maximum allowed size \(1000 bytes\)/],
      [['t.a', { s: 1 }, { metadata: { pad: 'x'.repeat(6000) } }], /^Event size \(\d+ bytes\) exceeds maximum allowed size \(5000 bytes\)$/],
    ];
    for (const [args, re, kind = {}] of cases) {
      const r = await c.publish(...args);
      assert.equal(r.success, false, String(args[0]));
      assert.equal(r.error.code, 'VALIDATION_ERROR', r.error.message);
      assert.match(r.error.message, re);
      assert.doesNotMatch(r.error.message, /^\[[A-Z_]+\] /, 'no code prefix in the message');
      assert.match(r.eventId, /^[0-9a-f-]{36}$/);
      assert.equal(typeof r.publishedAt, 'string');
    }
    // Every refused publish is one failed publish, whichever side refused it.
    const s = await c.getStats();
    assert.equal(s.eventsFailed, cases.length);
    assert.equal(s.eventsPublished, 0);
    // A bad item coalesced with good ones in the same tick fails alone.
    const same = await Promise.all([c.publish('t.a', { i: 1 }), c.publish('t.\udc00', { i: 2 }), c.publish('t.a', { i: 3 })]);
    assert.deepEqual(same.map((r) => r.success), [true, false, true]);
    await c.disconnect();
  });

  test(`[${transport}] bad subscribe input rejects clearly`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    await assert.rejects(c.subscribe(5, () => {}), ValidationError);
    await assert.rejects(c.subscribe('a.*', 'not a function'), ValidationError);
    await assert.rejects(c.subscribe('', () => {}), /pattern cannot be empty/);
    // Options the core refuses: VALIDATION_ERROR by the contract (INVALID_ARGUMENT from a core
    // that predates it), with the core's message.
    const refused = (e) => ['VALIDATION_ERROR', 'INVALID_ARGUMENT'].includes(e.code) && /options|timeout/.test(e.message);
    await assert.rejects(c.subscribe('a.*', () => {}, { timeout: 'soon' }), refused);
    await assert.rejects(c.subscribe('a.*', () => {}, 7), refused);
    assert.equal(await c.unsubscribe(42), false);
    assert.equal(await c.unsubscribe('no-such-id'), false);
    assert.equal((await c.getStats()).activeSubscriptions, 0);
    await c.disconnect();
  });

  test(`[${transport}] handlers that throw, reject with non-Errors or misbehave are counted failures`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const ns = uniq('bad');
    const behaviours = [
      () => { throw new Error('sync throw'); },
      () => { throw 'a string'; }, // eslint-disable-line no-throw-literal
      () => { throw undefined; }, // eslint-disable-line no-throw-literal
      () => Promise.reject(42),
      () => Promise.reject(null),
      () => Promise.reject(Object.create(null)),
      () => ({ get then() { throw new Error('then getter'); } }),
      async () => { throw Symbol('sym'); },
      () => { throw Object.defineProperty(new Error(), 'message', { get() { throw new Error('getter'); } }); },
      () => { const e = new Error(); e.message = { not: 'a string' }; throw e; },
      () => { const { proxy, revoke } = Proxy.revocable({}, {}); revoke(); return Promise.reject(proxy); },
    ];
    let calls = 0;
    for (const [i, b] of behaviours.entries()) {
      await c.subscribe(`${ns}.${i}`, (e) => { calls++; return b(e); });
    }
    const good = [];
    await c.subscribe(`${ns}.*`, (e) => { good.push(e.channel); });
    for (let i = 0; i < behaviours.length; i++) await c.publish(`${ns}.${i}`, { i });
    await waitFor(() => calls === behaviours.length && good.length === behaviours.length, 3000, 'all handlers ran');
    await waitFor(async () => (await c.getStats()).eventsFailed === behaviours.length, 3000, 'failures counted');
    const s = await c.getStats();
    assert.equal(s.eventsDelivered, behaviours.length); // the well-behaved pattern handler
    await c.disconnect();
  });

  test(`[${transport}] unsubscribe and publish from inside a handler do not deadlock`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const ch = uniq('inside');
    const seen = [];
    let sub;
    sub = await c.subscribe(ch, async (e) => {
      seen.push(e.data.n);
      if (e.data.n === 1) {
        assert.equal(await c.unsubscribe(sub.id), true);
        const r = await c.publish(`${ch}.echo`, { from: 'handler' });
        assert.equal(r.success, true);
      }
    });
    const echoed = [];
    await c.subscribe(`${ch}.echo`, (e) => { echoed.push(e); });
    await c.publish(ch, { n: 1 });
    await waitFor(() => echoed.length === 1, 3000, 'echo');
    await c.publish(ch, { n: 2 });
    await sleep(100);
    assert.deepEqual(seen, [1]);
    await c.disconnect();
  });

  test(`[${transport}] calls after disconnect`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const sub = await c.subscribe(uniq('x'), () => {});
    await c.disconnect();
    assert.equal(sub.active, false);
    await assert.rejects(c.publish('a', 1), { message: 'Not connected to Event Bus' });
    await assert.rejects(c.broadcast('a', 1), { message: 'Not connected to Event Bus' });
    await assert.rejects(c.subscribe('a', () => {}), { message: 'Not connected to Event Bus' });
    assert.equal(await c.unsubscribe(sub.id), false);
    assert.equal((await c.healthCheck()).status, 'unhealthy');
    assert.equal(typeof (await c.getStats()).eventsPublished, 'number');
    // and it can connect again
    await c.connect();
    assert.equal((await c.publish(uniq('again'), 1)).success, true);
    await c.disconnect();
  });
}
