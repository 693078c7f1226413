#!/usr/bin/env node
// Node benchmark (not a test): @shared-infra/event-bus 2.x (Rust core) side by side with
// ioredis doing the same work (uuid + the TS JSON envelope), on the same Redis, in one run.
//
//   node bench/node/bench.js            (REDIS_URL, default redis://127.0.0.1:6379)
//   BENCH_SCALE=0.2 node bench/node/bench.js   (quicker, fewer iterations)
//
// Prints a markdown table with ratios (>1 = event-bus better).
'use strict';
const { randomUUID } = require('node:crypto');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const Redis = require('ioredis');

const PKG = path.resolve(__dirname, '..', '..');
const { EventBusClient } = require(PKG);
const native = require(path.join(PKG, 'bindings-node', 'js', 'native.js'));

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const SCALE = Number(process.env.BENCH_SCALE || 1);
const n = (x) => Math.max(10, Math.round(x * SCALE));
const DATA = { photoId: 'photo-123', userId: 'user-456', filename: 'vacation.jpg', size: 1024000, mimeType: 'image/jpeg', uploadedAt: '2026-11-27T04:00:00.000Z' };
const run = randomUUID().slice(0, 8);

/** What 1.0.0 did per publish on top of ioredis. */
function tsEnvelope(type, data) {
  return JSON.stringify({
    id: randomUUID(),
    type,
    data,
    metadata: { source: 'bench', timestamp: new Date().toISOString(), traceId: randomUUID(), version: '1.0.0' },
  });
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
}

async function ours() {
  const bus = new EventBusClient({ serviceName: 'bench', redis: { url: REDIS_URL }, logLevel: 'error' });
  await bus.connect();
  return bus;
}

async function benchAwaited(label) {
  const N = n(5000);
  const bus = await ours();
  const ch = `bench.${run}.${label}.aw`;
  let t = now();
  for (let i = 0; i < N; i++) await bus.publish(ch, DATA);
  const a = N / ((now() - t) / 1000);
  await bus.disconnect();
  const r = new Redis(REDIS_URL);
  await r.ping();
  t = now();
  for (let i = 0; i < N; i++) await r.publish(ch, tsEnvelope(ch, DATA));
  const b = N / ((now() - t) / 1000);
  r.disconnect();
  return [a, b];
}

async function benchBurst() {
  const BURSTS = n(20);
  const bus = await ours();
  const ch = `bench.${run}.burst`;
  const go = async (fn) => {
    const t = now();
    for (let k = 0; k < BURSTS; k++) await Promise.all(Array.from({ length: 1000 }, fn));
    return (BURSTS * 1000) / ((now() - t) / 1000);
  };
  await go(() => bus.publish(ch, DATA)); // warm-up
  const a = await go(() => bus.publish(ch, DATA));
  // the same burst with one native call per publish (no per-tick coalescing), to measure it
  const uncoalesced = await go(() => bus._native.publishMany([ch], [JSON.stringify(DATA)], ['']));
  await bus.disconnect();
  const r = new Redis(REDIS_URL);
  await r.ping();
  await go(() => r.publish(ch, tsEnvelope(ch, DATA)));
  const b = await go(() => r.publish(ch, tsEnvelope(ch, DATA)));
  r.disconnect();
  return [a, b, uncoalesced];
}

async function benchEndToEnd(subOptions = {}) {
  const TOTAL = n(50000);
  const measure = async (subscribe, publish) => {
    let got = 0;
    let done;
    const finished = new Promise((r) => (done = r));
    await subscribe(() => {
      if (++got === TOTAL) done();
    });
    const t = now();
    for (let sent = 0; sent < TOTAL; sent += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, TOTAL - sent) }, publish));
    }
    const timeout = setTimeout(() => done(), 30000);
    await finished;
    clearTimeout(timeout);
    return { rate: got / ((now() - t) / 1000), got };
  };
  const ch1 = `bench.${run}.e2e.ours`;
  const pub = await ours();
  const sub = await ours();
  const a = await measure(
    (h) => sub.subscribe(ch1, (e) => { if (e.data.size) h(); }, subOptions),
    () => pub.publish(ch1, DATA)
  );
  await pub.disconnect();
  await sub.disconnect();
  const ch2 = `bench.${run}.e2e.ioredis`;
  const rp = new Redis(REDIS_URL);
  const rs = new Redis(REDIS_URL);
  const b = await measure(
    async (h) => {
      rs.on('message', (_c, m) => { const e = JSON.parse(m); if (e.data.size) h(); });
      await rs.subscribe(ch2);
    },
    () => rp.publish(ch2, tsEnvelope(ch2, DATA))
  );
  rp.disconnect();
  rs.disconnect();
  if (a.got !== TOTAL || b.got !== TOTAL) console.error(`warning: e2e delivered ours ${a.got}/${TOTAL}, ioredis ${b.got}/${TOTAL}`);
  return [a.rate, b.rate];
}

async function benchLatency() {
  const N = n(1000);
  const measure = async (subscribe, publish) => {
    let resolve;
    await subscribe(() => resolve(now()));
    const lat = [];
    for (let i = 0; i < N; i++) {
      const p = new Promise((r) => (resolve = r));
      const t = now();
      await publish();
      lat.push((await p) - t);
      await sleep(1);
    }
    lat.sort((x, y) => x - y);
    return [pct(lat, 0.5), pct(lat, 0.99)];
  };
  const ch1 = `bench.${run}.lat.ours`;
  const pub = await ours();
  const sub = await ours();
  const a = await measure((h) => sub.subscribe(ch1, () => h()), () => pub.publish(ch1, DATA));
  await pub.disconnect();
  await sub.disconnect();
  const ch2 = `bench.${run}.lat.ioredis`;
  const rp = new Redis(REDIS_URL);
  const rs = new Redis(REDIS_URL);
  const b = await measure(async (h) => {
    rs.on('message', (_c, m) => { JSON.parse(m); h(); });
    await rs.subscribe(ch2);
  }, () => rp.publish(ch2, tsEnvelope(ch2, DATA)));
  rp.disconnect();
  rs.disconnect();
  return [a, b];
}

/** RSS per connected client (publisher + subscriber connection, one subscription), in a child. */
function rssPerClient(kind) {
  const K = 20;
  const script = `
    const Redis = require(${JSON.stringify(require.resolve('ioredis'))});
    const { EventBusClient } = require(${JSON.stringify(PKG)});
    (async () => {
      const clients = [];
      const mk = async () => {
        if (${JSON.stringify(kind)} === 'ours') {
          const c = new EventBusClient({ serviceName: 'rss', redis: { url: ${JSON.stringify(REDIS_URL)} }, logLevel: 'error' });
          await c.connect();
          await c.subscribe('bench.rss.${run}', () => {});
          return c;
        }
        const p = new Redis(${JSON.stringify(REDIS_URL)});
        const s = new Redis(${JSON.stringify(REDIS_URL)});
        s.on('message', () => {});
        await p.ping();
        await s.subscribe('bench.rss.${run}');
        return { p, s };
      };
      clients.push(await mk()); // first one pays for loading the library / starting the runtime
      global.gc && global.gc();
      const before = process.memoryUsage().rss;
      for (let i = 0; i < ${K}; i++) clients.push(await mk());
      await new Promise((r) => setTimeout(r, 200));
      global.gc && global.gc();
      const after = process.memoryUsage().rss;
      console.log(JSON.stringify({ perClient: (after - before) / ${K}, total: after }));
      process.exit(0);
    })();
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60000 });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    throw new Error(`rss child failed: ${r.stdout} ${r.stderr}`);
  }
}

function benchDecode() {
  const ev = JSON.stringify({ ...JSON.parse(tsEnvelope('photo.uploaded', DATA)), channel: 'photo.uploaded', pattern: 'photo.*' });
  const BATCH = 1000;
  const ITERS = n(200);
  const time = (fn) => {
    for (let i = 0; i < 10; i++) fn();
    const t = now();
    for (let i = 0; i < ITERS; i++) fn();
    return (ITERS * BATCH) / ((now() - t) / 1000);
  };
  const json = time(() => JSON.parse(native.benchEventsAsJson(ev, BATCH)));
  const objects = time(() => native.benchEventsAsObjects(ev, BATCH));
  return [json, objects];
}

const fmt = (x, unit = '') => `${x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)}${unit}`;

(async () => {
  const rows = [];
  const [aw1, aw2] = await benchAwaited('x');
  rows.push(['awaited publish, one at a time (events/s)', fmt(aw1), fmt(aw2), aw1 / aw2]);
  const [b1, b2, bU] = await benchBurst();
  rows.push(['bursts of 1,000 concurrent publishes (events/s)', fmt(b1), fmt(b2), b1 / b2]);
  const [e1, e2] = await benchEndToEnd({ maxPending: 1000000 });
  rows.push(['end-to-end into a JS handler, in order (concurrency 1) (events/s)', fmt(e1), fmt(e2), e1 / e2]);
  const [c1, c2] = await benchEndToEnd({ concurrency: 256, maxPending: 1000000 });
  rows.push(['end-to-end into a JS handler, concurrency 256 (events/s)', fmt(c1), fmt(c2), c1 / c2]);
  const [[l50a, l99a], [l50b, l99b]] = await benchLatency();
  rows.push(['idle publish-to-handler latency p50 (ms)', fmt(l50a), fmt(l50b), l50b / l50a]);
  rows.push(['idle publish-to-handler latency p99 (ms)', fmt(l99a), fmt(l99b), l99b / l99a]);
  const ra = rssPerClient('ours');
  const rb = rssPerClient('ioredis');
  rows.push(['RSS per connected client (KiB)', fmt(ra.perClient / 1024), fmt(rb.perClient / 1024), rb.perClient / ra.perClient]);
  const [dj, dobj] = benchDecode();

  console.log(`\nNode ${process.version}, ${require('node:os').cpus().length} CPUs, Redis ${REDIS_URL}, scale ${SCALE}\n`);
  console.log('| measure | event-bus 2.x (Rust core) | ioredis + TS envelope | ratio (>1 = event-bus better) |');
  console.log('|---|---:|---:|---:|');
  for (const [m, a, b, r] of rows) console.log(`| ${m} | ${a} | ${b} | ${r.toFixed(2)}x |`);
  console.log('\nBridge choices (same run):\n');
  console.log('| measure | value |');
  console.log('|---|---:|');
  console.log(`| burst publishes, coalesced per tick (one native call per tick) | ${fmt(b1)} events/s |`);
  console.log(`| burst publishes, one native call per publish | ${fmt(bU)} events/s (coalescing: ${(b1 / bU).toFixed(2)}x) |`);
  console.log(`| events into JS: one JSON text + JSON.parse per batch of 1,000 | ${fmt(dj)} events/s |`);
  console.log(`| events into JS: napi object conversion (serde_json::Value) | ${fmt(dobj)} events/s (JSON.parse: ${(dj / dobj).toFixed(2)}x) |`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
