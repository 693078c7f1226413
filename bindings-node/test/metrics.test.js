'use strict';
// metrics(): the Prometheus text exposition of a running client (format checked line by line),
// getStats().latency, and a W3C traceparent carried to the receiver.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventBusClient } = require('../..');
const { uniq, config, sleep, waitFor, TRANSPORTS } = require('./helpers');

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

// Parses the text format (0.0.4): every line a HELP/TYPE comment or `name{labels} value`,
// one TYPE per family before its samples; returns { types, samples: [{name, labels, value}] }.
function parse(text) {
  const types = new Map();
  const samples = [];
  assert.ok(text.endsWith('\n'));
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) continue;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line))) {
      assert.ok(!types.has(m[1]), `second TYPE for ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\} (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels = {};
    for (const [, k, v] of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k] = v.replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value), line);
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]) || types.get(family) === 'histogram', `sample before TYPE: ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return { types, samples };
}

for (const transport of TRANSPORTS) {
  test(`metrics() text format and counts (${transport})`, async () => {
    const bus = new EventBusClient(config(transport));
    await bus.connect();
    try {
      const base = uniq('nm');
      let n = 0;
      const sub = await bus.subscribe(`${base}.*`, async () => {
        await sleep(3);
        n++;
      });
      for (let i = 0; i < 10; i++) await bus.publish(`${base}.a`, { i });
      await waitFor(async () => (await bus.getStats()).eventsDelivered === 10, 10000, 'deliveries');
      const { types, samples } = parse(bus.metrics());
      const mode = transport === 'memory' ? 'memory' : 'single';
      const get = (name, labels) =>
        samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      assert.equal(types.get('eventbus_events_published_total'), 'counter');
      assert.equal(types.get('eventbus_handler_duration_seconds'), 'histogram');
      assert.deepEqual(get('eventbus_events_published_total', {}).map((s) => [s.labels, s.value]), [
        [{ service: 'node-test', transport: mode }, 10],
      ]);
      const mine = { subscription: sub.id, pattern: `${base}.*` };
      assert.equal(get('eventbus_subscription_delivered_total', mine)[0].value, 10);
      assert.equal(get('eventbus_handler_duration_seconds_count', mine)[0].value, 10);
      const buckets = get('eventbus_handler_duration_seconds_bucket', mine);
      assert.equal(buckets.at(-1).labels.le, '+Inf');
      assert.equal(buckets.at(-1).value, 10);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i - 1].value <= buckets[i].value);
      assert.equal(get('eventbus_publish_duration_seconds_count', {})[0].value, 10);

      const st = await bus.getStats();
      assert.equal(st.latency.publish.count, 10);
      assert.equal(st.latency.delivery.count, 10);
      assert.equal(st.latency.handler.count, 10);
      const h = st.latency.handler;
      assert.ok(h.p50 >= 3 && h.p50 <= h.p95 && h.p95 <= h.p99 && h.p99 <= h.max, JSON.stringify(h));
      assert.equal(st.averageLatency, st.latency.delivery.mean);
      assert.equal(n, 10);
    } finally {
      await bus.disconnect();
    }
    assert.match(bus.metrics(), /^eventbus_connected\{service="node-test",transport="(single|memory)"\} 0$/m);
  });

  test(`traceparent in metadata reaches the handler and sets traceId (${transport})`, async () => {
    const bus = new EventBusClient(config(transport));
    await bus.connect();
    try {
      const type = uniq('ntp');
      const got = [];
      await bus.subscribe(type, (ev) => got.push(ev));
      await bus.publish(type, { a: 1 }, { metadata: { traceparent: TP } });
      await waitFor(() => got.length === 1, 5000, 'event');
      assert.equal(got[0].metadata.traceparent, TP);
      assert.equal(got[0].metadata.traceId, TP.split('-')[1]);
      // A publish that breaks a rule resolves with a failed result, as in 1.0.0.
      const bad = await bus.publish(type, { a: 1 }, { metadata: { traceparent: 'x' } });
      assert.equal(bad.success, false);
      assert.equal(bad.error.code, 'VALIDATION_ERROR');
      assert.match(bad.error.message, /metadata\.traceparent must be a W3C traceparent/);
    } finally {
      await bus.disconnect();
    }
  });
}
