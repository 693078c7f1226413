#!/usr/bin/env node
// Cluster benchmark (not a test): classic against sharded pub/sub on a local Redis Cluster,
// through the Node face. bench/cluster.sh starts the cluster and runs this; on its own:
//
//   REDIS_CLUSTER_NODES=host:port,... node bench/node/cluster.js [--json PATH]
//   BENCH_ROUNDS=3 (rounds, classic and sharded alternating; medians reported)
//   BENCH_EVENTS=50000 (events per measurement)   BENCH_CHANNELS=30 (spread over the slots)
//
// Per measurement: one publisher client and one subscriber client (exact subscriptions on every
// channel), N events published in bursts of 1,000 concurrent publishes round-robin over the
// channels; end-to-end events/s is N over the time from the first publish to the last event in
// the handler. `INFO cpu` (used_cpu_sys + used_cpu_user) is read on every node of the cluster,
// masters and replicas, before and after: the servers' CPU per 100k events.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const PKG = path.resolve(__dirname, '..', '..');
const { EventBusClient } = require(PKG);

const NODES = (process.env.REDIS_CLUSTER_NODES || '').split(',').filter(Boolean);
const MASTERS = (process.env.REDIS_CLUSTER_MASTERS || '').split(',').filter(Boolean);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 3));
const EVENTS = Math.max(1000, Number(process.env.BENCH_EVENTS || 50000));
const CHANNELS = Math.max(3, Number(process.env.BENCH_CHANNELS || 30));
const BURST = 1000;
const DATA = { photoId: 'photo-123', userId: 'user-456', filename: 'vacation.jpg', size: 1024000, mimeType: 'image/jpeg', uploadedAt: '2026-11-27T04:00:00.000Z' };
const jsonOut = (() => { const i = process.argv.indexOf('--json'); return i > 0 ? process.argv[i + 1] : null; })();

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const progress = (m) => process.stderr.write(`[bench cluster] ${m}\n`);

function cli(addr, ...args) {
  const [host, port] = addr.split(':');
  const r = spawnSync(process.env.REDIS_CLI_BIN || 'redis-cli', ['-h', host, '-p', port, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${addr} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Seconds of CPU (sys + user) the server on `addr` has used. */
function cpuOf(addr) {
  const info = cli(addr, 'INFO', 'cpu');
  const get = (k) => Number((info.match(new RegExp(`^${k}:([0-9.]+)`, 'm')) || [])[1]);
  return get('used_cpu_sys') + get('used_cpu_user');
}

const cpuAll = () => Object.fromEntries(NODES.map((a) => [a, cpuOf(a)]));

async function client(service, sharded) {
  const c = new EventBusClient({
    serviceName: service,
    logLevel: 'error',
    redis: { cluster: NODES.slice(0, 1).map((a) => `redis://${a}`), shardedPubSub: sharded },
  });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function measure(mode, round) {
  const sharded = mode === 'sharded';
  const prefix = `bench.cluster.${process.pid}.${round}.${mode}`;
  const channels = Array.from({ length: CHANNELS }, (_, i) => `${prefix}.${i}`);
  const pub = await client(`bench-${mode}-pub`, sharded);
  const sub = await client(`bench-${mode}-sub`, sharded);
  let got = 0;
  for (const ch of channels) await sub.subscribe(ch, () => { got++; }, { maxPending: 10000000 });
  const burst = async (n) => {
    for (let i = 0; i < n; i += BURST) {
      const ps = [];
      for (let j = i; j < Math.min(n, i + BURST); j++) ps.push(pub.publish(channels[j % CHANNELS], DATA));
      for (const r of await Promise.all(ps)) if (!r.success) throw new Error(`publish failed: ${JSON.stringify(r.error)}`);
    }
  };
  // Warm-up (connections to every owner, allocations), then wait for quiet.
  await burst(2000);
  const warm = 2000;
  for (let end = now() + 30000; got < warm && now() < end;) await sleep(5);
  await sleep(200);
  got = 0;
  const before = cpuAll();
  const t0 = now();
  await burst(EVENTS);
  for (let end = now() + 120000; got < EVENTS && now() < end;) await sleep(1);
  const t1 = now();
  const after = cpuAll();
  const delivered = got;
  await pub.disconnect();
  await sub.disconnect();
  if (delivered < EVENTS) throw new Error(`${mode}: only ${delivered} of ${EVENTS} events arrived`);
  const per100k = (addrs) => addrs.reduce((s, a) => s + after[a] - before[a], 0) * 100000 / EVENTS;
  const replicas = NODES.filter((a) => !MASTERS.includes(a));
  return {
    rate: (EVENTS / (t1 - t0)) * 1000,
    cpuAll: per100k(NODES),
    cpuMasters: per100k(MASTERS),
    cpuReplicas: per100k(replicas),
    perNode: Object.fromEntries(NODES.map((a) => [a, ((after[a] - before[a]) * 100000) / EVENTS])),
  };
}

async function main() {
  if (NODES.length === 0) throw new Error('set REDIS_CLUSTER_NODES (bench/cluster.sh does)');
  const runs = { classic: [], sharded: [] };
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first, so neither always runs on a warmer machine.
    const order = r % 2 === 0 ? ['classic', 'sharded'] : ['sharded', 'classic'];
    for (const mode of order) {
      const m = await measure(mode, r);
      runs[mode].push(m);
      progress(`round ${r + 1}/${ROUNDS} ${mode}: ${Math.round(m.rate)} events/s, servers ${m.cpuAll.toFixed(2)} s CPU per 100k events (masters ${m.cpuMasters.toFixed(2)}, replicas ${m.cpuReplicas.toFixed(2)})`);
    }
  }
  const med = (mode, k) => median(runs[mode].map((m) => m[k]));
  const rows = [
    ['end-to-end events/s (Node publisher -> Node handler)', 'rate', (v) => Math.round(v).toLocaleString('en-US'), 'sharded / classic', (c, s) => s / c],
    ['servers\' CPU per 100k events, all 6 nodes (s)', 'cpuAll', (v) => v.toFixed(2), 'classic / sharded', (c, s) => c / s],
    ['  of which the 3 masters (s)', 'cpuMasters', (v) => v.toFixed(2), 'classic / sharded', (c, s) => c / s],
    ['  of which the 3 replicas (s)', 'cpuReplicas', (v) => v.toFixed(2), 'classic / sharded', (c, s) => c / s],
  ];
  const lines = [
    `Redis Cluster, 3 masters + 3 replicas on one machine (${require('node:os').cpus().length} cores); ${EVENTS.toLocaleString('en-US')} small events over ${CHANNELS} channels per measurement, bursts of ${BURST}; median of ${ROUNDS} rounds.`,
    '',
    '| metric | classic | sharded | ratio |',
    '|---|---:|---:|---:|',
  ];
  const json = {};
  for (const [name, k, fmt, ratioName, ratio] of rows) {
    const c = med('classic', k);
    const s = med('sharded', k);
    json[k] = { classic: c, sharded: s, ratio: ratio(c, s), ratioName };
    lines.push(`| ${name} | ${fmt(c)} | ${fmt(s)} | ${ratio(c, s).toFixed(2)}x (${ratioName}) |`);
  }
  const text = lines.join('\n');
  console.log(text);
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), events: EVENTS, channels: CHANNELS, rounds: ROUNDS, medians: json, runs }, null, 2) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
