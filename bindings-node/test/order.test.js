'use strict';
// In-order subscriptions (concurrency 1, the default) cross into JS many events per wake-up
// (Handler::run_batch): order is kept under load for sync and async handlers, and a failing
// event is still retried.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventBusClient } = require('../..');
const { uniq, config, waitFor, TRANSPORTS } = require('./helpers');

const N = 3000;
const FAIL_AT = 1234;

async function publishAll(c, type) {
  // Big pipelines so the subscription's queue fills faster than the handler drains it.
  for (let start = 0; start < N; start += 500) {
    const items = [];
    for (let i = start; i < Math.min(N, start + 500); i++) items.push({ type, data: { seq: i } });
    const res = await c.publishBatch(items);
    assert.ok(res.every((r) => r.success), 'all published');
  }
}

/** Counts the in-order batches that JS ran with more than one event. */
function countBatches(c) {
  const stats = { batches: 0, maxBatch: 0 };
  const orig = c._runGroup;
  c._runGroup = function (g, states, slots, events, first, k, end) {
    if (k === first) {
      stats.batches++;
      stats.maxBatch = Math.max(stats.maxBatch, end - k);
    }
    return orig.call(this, g, states, slots, events, first, k, end);
  };
  return stats;
}

for (const transport of TRANSPORTS) {
  for (const kind of ['sync', 'async']) {
    test(`[${transport}] ${kind} handler: order kept under load, failing event retried`, async () => {
      const c = new EventBusClient(config(transport));
      await c.connect();
      const batches = countBatches(c);
      const ns = uniq(`order-${kind}`);
      const first = []; // seq of each first attempt, in call order
      const attempts = new Map();
      let running = 0;
      let overlap = false;
      const body = (event) => {
        const seq = event.data.seq;
        const n = (attempts.get(seq) || 0) + 1;
        attempts.set(seq, n);
        if (n === 1) first.push(seq);
        return n;
      };
      const handler = kind === 'sync'
        ? (event) => {
          const n = body(event);
          if (event.data.seq === FAIL_AT && n === 1) throw new Error('first attempt fails');
          // Make the handler slower than the publisher so events queue up.
          const until = process.hrtime.bigint() + 20000n;
          while (process.hrtime.bigint() < until);
        }
        : async (event) => {
          const n = body(event);
          // The retry may run alongside later events of its batch (the core retries through
          // `call` once it reaches the failed event); first attempts never overlap.
          const counted = n === 1;
          if (counted && running++ > 0) overlap = true;
          try {
            if (event.data.seq % 7 === 0) await new Promise((r) => setImmediate(r));
            else await null;
            // A non-Error rejection for the failing event's first attempt.
            if (event.data.seq === FAIL_AT && n === 1) throw 'first attempt rejects'; // eslint-disable-line no-throw-literal
          } finally {
            if (counted) running--;
          }
        };
      await c.subscribe(`${ns}.*`, handler, { retryOnError: true, maxRetries: 2, retryDelay: 5 });
      await publishAll(c, `${ns}.e`);
      await waitFor(() => first.length === N && attempts.get(FAIL_AT) === 2, 15000, 'all events handled');
      assert.deepEqual(first, Array.from({ length: N }, (_, i) => i), 'first attempts in publish order');
      assert.equal(attempts.get(FAIL_AT), 2, 'the failing event was retried once');
      for (const [seq, n] of attempts) if (seq !== FAIL_AT) assert.equal(n, 1, `seq ${seq} ran once`);
      assert.equal(overlap, false, 'async handlers never overlapped');
      assert.ok(batches.batches > 0 && batches.maxBatch > 1, `events crossed in batches (${JSON.stringify(batches)})`);
      await waitFor(async () => (await c.getStats()).eventsDelivered >= N, 5000, 'delivered counted');
      await c.disconnect();
    });
  }
}
