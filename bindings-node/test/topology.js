'use strict';
// A private Redis Cluster or Sentinel setup for the Node tests, laid out by
// scripts/redis-topology.sh (the one place that knows how) in a temp directory, and the few
// admin commands the tests need (through redis-cli, as the other faces' tests do). Stopped by
// `stop()` and, whatever happens, when the process exits.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'redis-topology.sh');
const CLI = process.env.REDIS_CLI_BIN || 'redis-cli';

/** `redis-cli -h host -p port args...` on `addr` (`host:port`): its stdout, trimmed. */
function cli(addr, ...args) {
  const [host, port] = addr.split(':');
  const r = spawnSync(CLI, ['-h', host, '-p', port, ...args.map(String)], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`redis-cli ${addr} ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r.stdout.trim();
}

/** As cli, but '' when the server does not answer (a killed or restarting node). */
function tryCli(addr, ...args) {
  try {
    return cli(addr, ...args);
  } catch {
    return '';
  }
}

/** Start a topology (`cluster` or `sentinel`); throws when the script fails (nothing is left running). */
function start(kind) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `event-bus-node-${kind}-`));
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stop);
  const r = spawnSync('bash', [SCRIPT, 'start', kind, dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    stop();
    throw new Error(`redis-topology.sh start ${kind} failed: ${r.stderr}`);
  }
  const env = {};
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  const addrs = (key) => env[key].split(',');
  return { kind, dir, env, addrs, stop };
}

/** The masters of a cluster and their slot ranges, from CLUSTER NODES on `addr`. */
function clusterMasters(addr) {
  const out = [];
  for (const line of cli(addr, 'CLUSTER', 'NODES').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !f[2].includes('master') || f[2].includes('fail')) continue;
    const ranges = f.slice(8).filter((r) => !r.startsWith('[')).map((r) => r.split('-').map(Number));
    if (ranges.length) out.push({ addr: f[1].split('@')[0], ranges });
  }
  return out;
}

/** The master serving `slot`. */
function ownerOf(addr, slot) {
  const m = clusterMasters(addr).find((x) => x.ranges.some(([a, b = a]) => a <= slot && slot <= b));
  if (!m) throw new Error(`no master serves slot ${slot}`);
  return m.addr;
}

/** One channel `${prefix}.${i}` for each master's slot range (three on the test cluster). */
function channelsOnEveryMaster(addr, prefix) {
  const masters = clusterMasters(addr);
  const byOwner = new Map();
  for (let i = 0; byOwner.size < masters.length && i < 10000; i++) {
    const ch = `${prefix}.${i}`;
    const owner = ownerOf(addr, Number(cli(addr, 'CLUSTER', 'KEYSLOT', ch)));
    if (!byOwner.has(owner)) byOwner.set(owner, ch);
  }
  return [...byOwner.entries()].map(([owner, channel]) => ({ owner, channel }));
}

/** `PUBSUB SHARDNUMSUB channel` on `addr`. */
function shardNumSub(addr, channel) {
  return Number(cli(addr, 'PUBSUB', 'SHARDNUMSUB', channel).split('\n')[1]);
}

/** `PUBSUB NUMSUB channel` on `addr` (0 when it does not answer). */
function numSub(addr, channel) {
  return Number(tryCli(addr, 'PUBSUB', 'NUMSUB', channel).split('\n')[1] || 0);
}

/** The names of the connections on `addr` (CLIENT LIST), [] when it does not answer. */
function namesOn(addr) {
  return tryCli(addr, 'CLIENT', 'LIST')
    .split('\n')
    .map((l) => (l.match(/ name=(\S+)/) || [])[1])
    .filter(Boolean);
}

/** The master the sentinels name (`host:port`), or null. */
function sentinelMaster(t) {
  for (const s of t.addrs('REDIS_SENTINELS')) {
    const r = tryCli(s, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', t.env.REDIS_SENTINEL_NAME).split('\n');
    if (r.length === 2) return `${r[0]}:${r[1]}`;
  }
  return null;
}

module.exports = { start, cli, tryCli, clusterMasters, ownerOf, channelsOnEveryMaster, shardNumSub, numSub, namesOn, sentinelMaster };
