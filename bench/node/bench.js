#!/usr/bin/env node
// Node benchmark (not a test): @shared-infra/event-bus 2.x (Rust core) side by side with
// ioredis doing the same work (uuid + the TS JSON envelope), on the same Redis, in one run.
//
//   node bench/node/bench.js [--json PATH]      (REDIS_URL, default redis://127.0.0.1:6379)
//   BENCH_ROUNDS=3 (rounds, project and peer alternating; medians reported)
//   BENCH_SCALE=0.2 (fewer iterations)
//   BENCH_ONLY=burst (only the scenarios whose progress label contains this; for quick checks)
//
// Prints a markdown table (ratio > 1 = event-bus better); --json writes the raw medians.
'use strict';
const { randomUUID } = require('node:crypto');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const Redis = require('ioredis');

const PKG = path.resolve(__dirname, '..', '..');
const { EventBusClient } = require(PKG);

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const SCALE = Number(process.env.BENCH_SCALE || 1);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 3));
const ONLY = process.env.BENCH_ONLY || '';
const n = (x) => Math.max(10, Math.round(x * SCALE));
const SMALL = { photoId: 'photo-123', userId: 'user-456', filename: 'vacation.jpg', size: 1024000, mimeType: 'image/jpeg', uploadedAt: '2026-11-27T04:00:00.000Z' };
const BIG = { ...SMALL, blob: 'x'.repeat(16 * 1024 - 200) };
const SIZES = { small: SMALL, '16KB': BIG };
const run = randomUUID().slice(0, 8);
let seq = 0;
const chan = (what) => `bench.${run}.${what}.${seq++}`;

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
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
const progress = (m) => process.stderr.write(`[bench] ${m}\n`);

/** A publisher and a subscriber with the same shape for both sides. */
async function side(kind) {
  if (kind === 'project') {
    const mk = async () => { const c = new EventBusClient({ serviceName: 'bench', redis: { url: REDIS_URL }, logLevel: 'error' }); await c.connect(); return c; };
    const pub = await mk();
    let sub = null;
    return {
      publish: (ch, data) => pub.publish(ch, data),
      subscribe: async (ch, h, opts = { maxPending: 10000000 }) => { sub = sub || await mk(); await sub.subscribe(ch, (e) => h(e.data), opts); },
      close: async () => { await pub.disconnect(); if (sub) await sub.disconnect(); },
    };
  }
  const pub = new Redis(REDIS_URL);
  await pub.ping();
  let sub = null;
  return {
    publish: (ch, data) => pub.publish(ch, tsEnvelope(ch, data)),
    subscribe: async (ch, h) => {
      sub = new Redis(REDIS_URL);
      sub.on('message', (_c, m) => h(JSON.parse(m).data));
      await sub.subscribe(ch);
    },
    close: async () => { pub.disconnect(); if (sub) sub.disconnect(); },
  };
}

async function awaited(kind, data) {
  const N = n(4000);
  const s = await side(kind);
  const ch = chan('aw');
  for (let i = 0; i < 200; i++) await s.publish(ch, data);
  const lat = new Float64Array(N);
  const t = now();
  for (let i = 0; i < N; i++) {
    const a = now();
    await s.publish(ch, data);
    lat[i] = now() - a;
  }
  const r = N / ((now() - t) / 1000);
  await s.close();
  lat.sort();
  return { rate: r, p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
}

async function burst(kind, data) {
  const BURSTS = n(30);
  const s = await side(kind);
  const ch = chan('burst');
  const one = () => Promise.all(Array.from({ length: 1000 }, () => s.publish(ch, data)));
  for (let k = 0; k < 3; k++) await one();
  const t = now();
  for (let k = 0; k < BURSTS; k++) await one();
  const r = (BURSTS * 1000) / ((now() - t) / 1000);
  await s.close();
  return r;
}

async function publishAll(s, ch, data, total) {
  for (let sent = 0; sent < total; sent += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, total - sent) }, () => s.publish(ch, data)));
  }
}

/**
 * Events published in bursts into a subscriber of the same process: the rate of the events that
 * arrived (up to the last one), and the share that arrived at all. A subscriber that Redis cuts
 * off at its pub/sub output limit (one that reads too late: ioredis's, behind a JS thread busy
 * publishing 16 KB events) loses the rest; the wait for them ends after 5 s without a delivery,
 * and that wait is not counted in the rate.
 */
async function e2eOne(kind, data) {
  const TOTAL = n(data === BIG ? 10000 : 40000);
  const s = await side(kind);
  const ch = chan('e2e');
  let got = 0;
  let last = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  await s.subscribe(ch, (d) => { if (d.size) { last = now(); if (++got === TOTAL) done(); } });
  const t = now();
  await publishAll(s, ch, data, TOTAL);
  const quiet = setInterval(() => { if (now() - Math.max(last, t) > 5000) done(); }, 250);
  await finished;
  clearInterval(quiet);
  const r = got / ((Math.max(last, t + 1) - t) / 1000);
  await s.close();
  return { rate: r, delivered: (100 * got) / TOTAL };
}

/** The subscriber in a child process; it prints "ready", then "done <got>". */
async function e2eTwo(kind, data) {
  const TOTAL = n(data === BIG ? 10000 : 40000);
  const ch = chan('e2e2');
  const child = spawn(process.execPath, [__filename, '--child-sub', kind, ch, String(TOTAL)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  let wake = null;
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); if (wake) wake(); }
  });
  const next = async () => { while (!lines.length) await new Promise((r) => (wake = r)); return lines.shift(); };
  await next(); // ready
  const s = await side(kind);
  const t = now();
  await publishAll(s, ch, data, TOTAL);
  const got = Number((await next()).split(' ')[1]);
  const r = got / ((now() - t) / 1000);
  await s.close();
  return r;
}

async function childSub(kind, ch, total) {
  const s = await side(kind);
  let got = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  await s.subscribe(ch, (d) => { if (d.size && ++got === total) done(); });
  process.stdout.write('ready\n');
  const to = setTimeout(done, 60000);
  await finished;
  clearTimeout(to);
  process.stdout.write(`done ${got}\n`);
  await s.close();
  process.exit(0);
}

/** Publish-to-handler latency; `rate` 0 = idle (one at a time, 1 ms apart). */
async function latency(kind, data, rate) {
  const s = await side(kind);
  const ch = chan('lat');
  const lat = [];
  let pending = null;
  await s.subscribe(ch, (d) => {
    lat.push(now() - d.t);
    if (pending) pending();
  }, { maxPending: 10000000 });
  if (!rate) {
    const N = n(1500);
    for (let i = 0; i < N; i++) {
      const p = new Promise((r) => (pending = r));
      await s.publish(ch, { ...data, t: now() });
      await p;
      await sleep(1);
    }
  } else {
    const DURATION = 2000 * Math.min(1, SCALE * 2);
    const start = now();
    let sent = 0;
    while (now() - start < DURATION) {
      const due = Math.floor(((now() - start) / 1000) * rate);
      while (sent < due) { s.publish(ch, { ...data, t: now() }); sent++; }
      await sleep(1);
    }
    const end = now() + 5000;
    while (lat.length < sent && now() < end) await sleep(5);
  }
  await s.close();
  lat.sort((a, b) => a - b);
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat[lat.length - 1] };
}

/** RSS of a child with one publisher + one subscriber client after `events` events, minus its baseline. */
function rss(kind) {
  const events = n(100000);
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, '--child-rss', kind, String(events)], { encoding: 'utf8', timeout: 120000 });
  const v = Number(String(r.stdout).trim().split('\n').pop());
  if (!Number.isFinite(v)) throw new Error(`rss child failed: ${r.stdout} ${r.stderr}`);
  return v / 1024;
}

async function childRss(kind, events) {
  global.gc();
  const before = process.memoryUsage().rss;
  const s = await side(kind);
  const ch = chan('rss');
  let got = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  await s.subscribe(ch, () => { if (++got === events) done(); });
  await publishAll(s, ch, SMALL, events);
  const to = setTimeout(done, 60000);
  await finished;
  clearTimeout(to);
  await sleep(1000); // settle (both sides): steady state, not mid-burst
  global.gc();
  process.stdout.write(`${process.memoryUsage().rss - before}\n`);
  process.exit(0);
}

/** Run `fn(kind)` ROUNDS times per side, alternating, and keep medians (null: left out by BENCH_ONLY). */
async function compare(label, fn) {
  if (!label.includes(ONLY)) return null;
  const res = { project: [], peer: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['project', 'peer'] : ['peer', 'project'];
    for (const k of order) res[k].push(await fn(k));
  }
  progress(`${label} done`);
  return res;
}

const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));

async function main() {
  const args = process.argv.slice(2);
  const ji = args.indexOf('--json');
  const jsonPath = ji >= 0 ? args[ji + 1] : null;
  const rows = [];
  const add = (scenario, unit, hib, res, pick = (x) => x) => {
    if (!res) return; // left out by BENCH_ONLY
    rows.push({ scenario, unit, higher_is_better: hib, project: median(res.project.map(pick)), peer: median(res.peer.map(pick)) });
  };
  const aw = await compare('awaited', (k) => awaited(k, SMALL));
  add('awaited publish, one at a time (small)', 'events/s', true, aw, (x) => x.rate);
  for (const q of ['p50', 'p99']) add(`awaited publish ${q}, one at a time (small)`, 'ms', false, aw, (x) => x[q]);
  for (const [name, data] of Object.entries(SIZES)) {
    add(`bursts of 1,000 concurrent publishes (${name})`, 'events/s', true, await compare(`burst ${name}`, (k) => burst(k, data)));
  }
  let peerMax = 0;
  for (const [name, data] of Object.entries(SIZES)) {
    const one = await compare(`e2e one process ${name}`, (k) => e2eOne(k, data));
    add(`end-to-end into a handler, one process (${name})`, 'events/s', true, one, (x) => x.rate);
    add(`end-to-end into a handler, one process, delivered (${name})`, '%', true, one, (x) => x.delivered);
    if (one && data === SMALL) peerMax = median(one.peer.map((x) => x.rate));
    add(`end-to-end into a handler, two processes (${name})`, 'events/s', true, await compare(`e2e two processes ${name}`, (k) => e2eTwo(k, data)));
  }
  const idle = await compare('latency idle', (k) => latency(k, SMALL, 0));
  const rate = Math.round(peerMax / 2);
  const loaded = await compare(`latency at ${rate}/s`, (k) => latency(k, SMALL, rate));
  for (const q of ['p50', 'p99', 'max']) add(`publish-to-handler latency ${q}, idle (small)`, 'ms', false, idle, (x) => x[q]);
  for (const q of ['p50', 'p99', 'max']) add(`publish-to-handler latency ${q}, at 50% of peer max = ${rate}/s (small)`, 'ms', false, loaded, (x) => x[q]);
  add(`RSS per client (publisher + subscriber) after ${n(100000).toLocaleString('en-US')} events`, 'KiB', false, await compare('rss', (k) => rss(k)));

  console.log(`\nNode ${process.version}, ${require('node:os').cpus().length} CPUs, Redis ${REDIS_URL}, scale ${SCALE}, rounds ${ROUNDS} (medians)\n`);
  console.log('| scenario | unit | event-bus 2.x (Rust core) | ioredis + TS envelope | ratio (>1 = event-bus better) |');
  console.log('|---|---|---:|---:|---:|');
  for (const r of rows) {
    const ratio = r.higher_is_better ? r.project / r.peer : r.peer / r.project;
    const shown = r.project && r.peer ? `${ratio.toFixed(2)}x` : '-';
    console.log(`| ${r.scenario} | ${r.unit} | ${fmt(r.project)} | ${fmt(r.peer)} | ${shown} |`);
  }
  if (jsonPath) {
    fs.writeFileSync(jsonPath, JSON.stringify({ face: 'node', peer: 'ioredis', rows }, null, 2) + '\n');
    progress(`wrote ${jsonPath}`);
  }
}

const argv = process.argv.slice(2);
const fail = (e) => { console.error(e); process.exit(1); };
if (argv[0] === '--child-sub') childSub(argv[1], argv[2], Number(argv[3])).catch(fail);
else if (argv[0] === '--child-rss') childRss(argv[1], Number(argv[2])).catch(fail);
else main().then(() => process.exit(0), fail);
