#!/usr/bin/env node
// Durable-delivery benchmark (not a test): persistent publishes and durable (consumer group)
// delivery through the Node face, side by side in one run with plain pub/sub through the same
// face, and with ioredis doing the same work by hand (the TS envelope, XADD MAXLEN ~ + PUBLISH
// in one pipeline; XREADGROUP COUNT 64 + JSON.parse + XACK for the consumer).
//
//   node bench/node/durable.js [--json PATH]    (REDIS_URL, default redis://127.0.0.1:6379)
//   BENCH_ROUNDS=3 (rounds; sides alternate which goes first; medians reported)
//   BENCH_SCALE=1  (fewer or more events)
//
// Rows: one awaited publish at a time (events/s, p50/p99 us), bursts of 1,000 concurrent
// publishes (events/s), end-to-end events/s into a handler (publish bursts -> handler, the
// consumer running while the events are published). The keys it writes are deleted at the end.
'use strict';
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const Redis = require('ioredis');

const PKG = path.resolve(__dirname, '..', '..');
const { EventBusClient } = require(PKG);

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 3));
const SCALE = Number(process.env.BENCH_SCALE || 1);
const n = (x) => Math.max(100, Math.round(x * SCALE));
const AWAITED = n(3000);
const BURSTED = n(30000);
const E2E = n(30000);
const BURST = 1000;
const MAXLEN = 100000;
const DATA = { photoId: 'photo-123', userId: 'user-456', filename: 'vacation.jpg', size: 1024000, mimeType: 'image/jpeg', uploadedAt: '2026-11-27T04:00:00.000Z' };
const jsonOut = (() => { const i = process.argv.indexOf('--json'); return i > 0 ? process.argv[i + 1] : null; })();
const run = randomUUID().slice(0, 8);
let seq = 0;
const typeName = (what) => `bench.durable.${run}.${what}.${seq++}`;
const keysWritten = [];

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
const progress = (m) => process.stderr.write(`[bench durable] ${m}\n`);

function tsEnvelope(type, data) {
  return JSON.stringify({
    id: randomUUID(),
    type,
    data,
    metadata: { source: 'bench', timestamp: new Date().toISOString(), traceId: randomUUID(), version: '1.0.0' },
  });
}

async function busClient(service) {
  const c = new EventBusClient({ serviceName: service, redis: { url: REDIS_URL }, logLevel: 'error' });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/**
 * The three sides, each with publish(type) -> Promise and consume(type, onEvent) -> stop().
 * `plain`: the Node face, pub/sub. `durable`: the Node face, persistent publish and a durable
 * group. `ioredis`: XADD + PUBLISH pipelined, and an XREADGROUP loop.
 */
async function side(kind) {
  if (kind === 'plain' || kind === 'durable') {
    const pub = await busClient(`bench-${kind}-pub`);
    const subs = [];
    const opts = kind === 'durable' ? { persistent: true } : undefined;
    return {
      publish: (type) => pub.publish(type, DATA, opts).then((r) => { if (!r.success) throw new Error(JSON.stringify(r.error)); }),
      consume: async (type, onEvent) => {
        const sub = await busClient(`bench-${kind}-sub`);
        subs.push(sub);
        const so = { maxPending: 10000000 };
        if (kind === 'durable') {
          so.durable = { group: 'bench', consumer: `c-${process.pid}`, startFrom: 'all' };
          so.concurrency = 64;
        }
        await sub.subscribe(type, () => { onEvent(); }, so);
        return () => sub.disconnect();
      },
      close: async () => { await pub.disconnect(); for (const s of subs) await s.disconnect(); },
    };
  }
  const pub = new Redis(REDIS_URL);
  const conns = [pub];
  return {
    publish: async (type) => {
      const key = `{${type}}:stream`;
      const body = tsEnvelope(type, DATA);
      const r = await pub.multi({ pipeline: true })
        .xadd(key, 'MAXLEN', '~', MAXLEN, '*', 'event', body)
        .publish(type, body)
        .exec();
      if (r[0][0] || r[1][0]) throw r[0][0] || r[1][0];
    },
    consume: async (type, onEvent) => {
      const key = `{${type}}:stream`;
      keysWritten.push(key);
      const c = new Redis(REDIS_URL);
      conns.push(c);
      try { await c.xgroup('CREATE', key, 'bench', '0', 'MKSTREAM'); } catch (e) { if (!String(e).includes('BUSYGROUP')) throw e; }
      let stop = false;
      const loop = (async () => {
        while (!stop) {
          const res = await c.xreadgroup('GROUP', 'bench', 'c1', 'COUNT', 64, 'BLOCK', 100, 'STREAMS', key, '>');
          if (!res) continue;
          const ids = [];
          for (const [, entries] of res) {
            for (const [id, fields] of entries) {
              JSON.parse(fields[1]);
              onEvent();
              ids.push(id);
            }
          }
          if (ids.length) await c.xack(key, 'bench', ...ids);
        }
      })();
      return async () => { stop = true; await loop; };
    },
    close: async () => { for (const c of conns) c.disconnect(); },
  };
}

async function awaited(s) {
  const type = typeName('awaited');
  keysWritten.push(`{${type}}:stream`);
  for (let i = 0; i < 200; i++) await s.publish(type);
  const lat = [];
  const t0 = now();
  for (let i = 0; i < AWAITED; i++) {
    const a = now();
    await s.publish(type);
    lat.push((now() - a) * 1000);
  }
  const t1 = now();
  lat.sort((a, b) => a - b);
  return { rate: (AWAITED / (t1 - t0)) * 1000, p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
}

async function burst(s, count, type) {
  for (let i = 0; i < count; i += BURST) {
    const ps = [];
    for (let j = i; j < Math.min(count, i + BURST); j++) ps.push(s.publish(type));
    await Promise.all(ps);
  }
}

async function bursts(s) {
  const type = typeName('burst');
  keysWritten.push(`{${type}}:stream`);
  await burst(s, 2000, type);
  const t0 = now();
  await burst(s, BURSTED, type);
  return { rate: (BURSTED / (now() - t0)) * 1000 };
}

async function e2e(s) {
  const type = typeName('e2e');
  keysWritten.push(`{${type}}:stream`);
  let got = 0;
  const stop = await s.consume(type, () => { got++; });
  await burst(s, 2000, type);
  for (let end = now() + 30000; got < 2000 && now() < end;) await sleep(5);
  await sleep(200);
  got = 0;
  const t0 = now();
  await burst(s, E2E, type);
  for (let end = now() + 120000; got < E2E && now() < end;) await sleep(1);
  const t1 = now();
  await stop();
  if (got < E2E) throw new Error(`e2e: only ${got} of ${E2E} events arrived`);
  return { rate: (E2E / (t1 - t0)) * 1000 };
}

async function main() {
  const kinds = ['plain', 'durable', 'ioredis'];
  const runs = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? kinds : [...kinds].reverse();
    for (const kind of order) {
      const s = await side(kind);
      const m = { awaited: await awaited(s), burst: await bursts(s), e2e: await e2e(s) };
      await s.close();
      runs[kind].push(m);
      progress(`round ${r + 1}/${ROUNDS} ${kind}: awaited ${Math.round(m.awaited.rate)}/s (p50 ${Math.round(m.awaited.p50)} us), burst ${Math.round(m.burst.rate)}/s, e2e ${Math.round(m.e2e.rate)}/s`);
    }
  }
  const med = (kind, f) => median(runs[kind].map(f));
  const rows = [
    ['one awaited persistent publish at a time (events/s)', (m) => m.awaited.rate, true],
    ['  p50 (us)', (m) => m.awaited.p50, false],
    ['  p99 (us)', (m) => m.awaited.p99, false],
    [`bursts of ${BURST} concurrent publishes (events/s)`, (m) => m.burst.rate, true],
    ['end-to-end into a handler (events/s)', (m) => m.e2e.rate, true],
  ];
  const fmt = (v) => Math.round(v).toLocaleString('en-US');
  const lines = [
    `Node face, one Redis (${os.cpus().length} cores); small events; median of ${ROUNDS} rounds. ` +
      '"plain" = pub/sub through the same face (PUBLISH only, no group); "durable" = `persistent: true` (XADD + PUBLISH) and a durable group (XREADGROUP, XACK after the handler, concurrency 64); ' +
      '"ioredis" = XADD + PUBLISH pipelined and an XREADGROUP COUNT 64 / XACK loop by hand. Ratio > 1 = durable better.',
    '',
    '| metric | plain pub/sub | durable | ioredis streams | durable / plain | durable / ioredis |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  const json = {};
  for (const [name, f, higherBetter] of rows) {
    const [p, d, i] = kinds.map((k) => med(k, f));
    const ratio = (a, b) => (higherBetter ? a / b : b / a);
    json[name.trim()] = { plain: p, durable: d, ioredis: i };
    lines.push(`| ${name} | ${fmt(p)} | ${fmt(d)} | ${fmt(i)} | ${ratio(d, p).toFixed(2)}x | ${ratio(d, i).toFixed(2)}x |`);
  }
  console.log(lines.join('\n'));
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, medians: json, runs }, null, 2) + '\n');
  const r = new Redis(REDIS_URL);
  for (const k of keysWritten) await r.del(k, k.replace(':stream', ':dead'));
  r.disconnect();
}

main().catch((e) => { console.error(e); process.exit(1); });
