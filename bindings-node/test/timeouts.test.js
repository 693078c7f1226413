'use strict';
// Handlers past their timeout: the core stops waiting, the handler's `signal` (second argument)
// is aborted, and a run that completes anyway counts once in `handlersLateCompleted`. And
// disconnect() called by a handler after an await does not wait for that handler.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventBusClient } = require('../..');
const { uniq, config, sleep, waitFor, TRANSPORTS } = require('./helpers');

const late = async (c) => (await c.getStats()).handlersLateCompleted;

/** A handler that waits for its signal, then finishes (late) after a tick; records what it saw. */
function waitsForAbort(seen) {
  return (e, ctx) => {
    const { signal } = ctx;
    seen.push({ n: e.data.n, aborted: signal.aborted });
    return new Promise((resolve) => {
      signal.addEventListener('abort', () => {
        seen.push({ n: e.data.n, reason: signal.reason });
        setTimeout(resolve, 5);
      });
    });
  };
}

for (const transport of TRANSPORTS) {
  test(`[${transport}] a handler run on its own past its timeout: signal aborted, late completion counted once`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const ns = uniq('to');
    const seen = [];
    // concurrency 2: each event runs on its own (no in-order batch).
    await c.subscribe(`${ns}.a`, waitsForAbort(seen), { timeout: 100, concurrency: 2 });
    assert.equal(await late(c), 0);
    await c.publish(`${ns}.a`, { n: 1 });
    await waitFor(async () => (await late(c)) === 1, 10000, 'the late completion counted');
    assert.equal(seen[0].aborted, false, 'not aborted when it starts');
    assert.equal(seen[1].reason.name, 'TimeoutError', String(seen[1].reason));
    const s = await c.getStats();
    assert.equal(s.eventsFailed, 1, 'the timeout is its failure');
    assert.equal(s.eventsDelivered, 0, 'a late success is not a delivery');
    assert.match(c.metrics(), /^eventbus_handlers_late_completed_total\{[^}]*\} 1$/m);
    // A handler that never reads its signal, finishing late, counts too; one in time does not.
    let inTime = 0;
    await c.subscribe(`${ns}.b`, () => sleep(400), { timeout: 50, concurrency: 2 });
    await c.subscribe(`${ns}.c`, async (e, { signal }) => { await sleep(5); if (!signal.aborted) inTime++; }, { timeout: 10000, concurrency: 2 });
    await c.publish(`${ns}.b`, { n: 2 });
    await c.publish(`${ns}.c`, { n: 3 });
    await waitFor(async () => (await late(c)) === 2 && inTime === 1, 10000, 'the second late completion');
    await sleep(200);
    assert.equal(await late(c), 2, 'each counted once');
    await c.disconnect();
  });

  test(`[${transport}] a handler of an in-order batch past its timeout: signal aborted, late completion counted once, the rest run once`, async () => {
    const c = new EventBusClient(config(transport));
    await c.connect();
    const ns = uniq('tob');
    const seen = [];
    const ran = [];
    const wait = waitsForAbort(seen);
    await c.subscribe(`${ns}.*`, (e, ctx) => {
      ran.push(e.data.n);
      // The gate holds the subscription while events 0-2 arrive, so they cross as one batch.
      if (e.data.n === 'gate') return sleep(100);
      if (e.data.n === 0) return wait(e, ctx);
      return undefined;
    }, { timeout: 300 });
    await c.publish(`${ns}.gate`, { n: 'gate' });
    const rs = await c.publishBatch([0, 1, 2].map((n) => ({ type: `${ns}.e`, data: { n } })));
    assert.ok(rs.every((r) => r.success));
    await waitFor(async () => (await late(c)) === 1, 10000, 'the late completion counted');
    await waitFor(() => ran.length >= 4, 5000, 'every event ran');
    await sleep(300);
    assert.deepEqual(ran, ['gate', 0, 1, 2], 'each once');
    assert.equal(seen.find((x) => x.reason).reason.name, 'TimeoutError');
    const s = await c.getStats();
    assert.equal(s.handlersLateCompleted, 1);
    assert.equal(s.eventsFailed, 1);
    assert.equal(s.eventsDelivered, 3);
    await c.disconnect();
  });

  // Node >= 24 tracks a handler across its awaits (AsyncLocalStorage on AsyncContextFrame);
  // before, only its synchronous part is known, and after an await disconnect() waits for it
  // as for any running handler, up to disconnectTimeout (then goes on).
  const acrossAwaits = Number(process.versions.node.split('.')[0]) >= 24;
  test(`[${transport}] disconnect() from a handler after an await: ${acrossAwaits ? 'does not wait for that handler' : 'waits at most disconnectTimeout'}`, async () => {
    // Node >= 24: a disconnectTimeout far beyond the test's wait, so waiting for the calling
    // handler would hang until it ran out. Before: a short one, which must end the wait.
    const c = new EventBusClient(config(transport, { disconnectTimeout: acrossAwaits ? 120000 : 1000 }));
    await c.connect();
    const ns = uniq('dh');
    let done = false;
    let failed = null;
    await c.subscribe(`${ns}.a`, async () => {
      await sleep(20);
      await Promise.resolve();
      try {
        await c.disconnect();
        done = true;
      } catch (err) {
        failed = err;
      }
    });
    await c.publish(`${ns}.a`, { n: 1 });
    await waitFor(() => done || failed, 20000, 'disconnect() returned inside the handler');
    assert.equal(failed, null, String(failed));
    assert.equal(c.isConnected(), false);
    // Idempotent from outside afterwards.
    await c.disconnect();
  });

  test(`[${transport}] disconnect() from outside still waits for running handlers`, async () => {
    const c = new EventBusClient(config(transport, { disconnectTimeout: 20000 }));
    await c.connect();
    const ns = uniq('dw');
    let started = false;
    let finished = false;
    await c.subscribe(`${ns}.a`, async () => { started = true; await sleep(300); finished = true; });
    await c.publish(`${ns}.a`, { n: 1 });
    await waitFor(() => started, 5000, 'handler started');
    await c.disconnect();
    assert.equal(finished, true, 'disconnect() waited for the running handler');
  });
}
