'use strict';
// The Node face on a private Redis Cluster (3 masters + 3 replicas) and a private Sentinel
// setup (master + replica + 3 sentinels), both from scripts/redis-topology.sh: classic cluster
// pub/sub over all three slot ranges, sharded pub/sub (SHARDNUMSUB on the owner, patterns
// refused), SENTINEL FAILOVER followed by both links, and the Config error of a mixed config.
// Each topology is started once for this file and stopped in `after` (and at process exit).
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventBusClient } = require('../..');
const { uniq, sleep, waitFor } = require('./helpers');
const topo = require('./topology');

// Generous bounded waits: the CI machine has 2 loaded cores.
const WAIT = 30000;

let cluster;
test.before(() => {
  cluster = topo.start('cluster');
});
test.after(() => {
  if (cluster) cluster.stop();
});

function clusterConfig(service, extra = {}) {
  // One seed is enough: the rest of the cluster is read from it.
  const seed = cluster.addrs('REDIS_CLUSTER_MASTERS')[0];
  return {
    serviceName: service,
    logLevel: 'error',
    redis: { cluster: [`redis://${seed}`], reconnectDelay: 50, reconnectDelayMax: 500, heartbeatInterval: 1000, ...extra },
  };
}

/** A connected client; connection `error` events are kept, never thrown (EventEmitter). */
async function connected(config) {
  const c = new EventBusClient(config);
  c.errors = [];
  c.on('error', (e) => c.errors.push(e));
  await c.connect();
  return c;
}

/** A handler that records `[channel, data]` of every event it gets. */
function collector() {
  const got = [];
  const fn = (e) => {
    got.push([e.channel, e.data]);
  };
  fn.got = got;
  return fn;
}

/** After the waits, nothing more arrives: each event exactly once. */
async function settle() {
  await sleep(300);
}

test('cluster, classic pub/sub: exact and pattern subscriptions over all three slot ranges get every event once', async () => {
  const seed = cluster.addrs('REDIS_CLUSTER_MASTERS')[0];
  const prefix = uniq('nclu');
  const channels = topo.channelsOnEveryMaster(seed, prefix);
  assert.equal(channels.length, 3);
  assert.equal(new Set(channels.map((c) => c.owner)).size, 3, 'one channel per master');
  const subService = uniq('nclu-sub');
  const sub = await connected(clusterConfig(subService));
  const pub = await connected(clusterConfig(uniq('nclu-pub')));
  try {
    const exact = channels.map(({ channel }) => ({ channel, h: collector() }));
    for (const e of exact) await sub.subscribe(e.channel, e.h);
    const pattern = collector();
    await sub.subscribe(`${prefix}.*`, pattern);
    const N = 20;
    for (let n = 0; n < N; n++) {
      for (const { channel } of exact) {
        const r = await pub.publish(channel, { n });
        assert.equal(r.success, true, `publish ${channel} ${n}: ${JSON.stringify(r.error)}`);
      }
    }
    const total = N * exact.length;
    await waitFor(() => pattern.got.length >= total && exact.every((e) => e.h.got.length >= N), WAIT, 'every event');
    await settle();
    assert.equal(pattern.got.length, total, 'pattern: each event once');
    assert.equal(new Set(pattern.got.map(([ch, d]) => `${ch}/${d.n}`)).size, total);
    for (const e of exact) {
      assert.deepEqual(e.h.got, Array.from({ length: N }, (_, n) => [e.channel, { n }]), `${e.channel}: once each, in order`);
    }
    const st = await sub.getStats();
    assert.equal(st.topology.mode, 'cluster');
    assert.deepEqual([...st.topology.masters].sort(), [...cluster.addrs('REDIS_CLUSTER_MASTERS')].sort());
    // The subscriber connection is named as usual on the node it uses.
    const subNode = st.topology.connections.subscriber[0];
    assert.ok(topo.namesOn(subNode).includes(`${subService}:sub`), `${subService}:sub on ${subNode}`);
  } finally {
    await sub.disconnect();
    await pub.disconnect();
  }
});

test('cluster, sharded pub/sub: each channel is SSUBSCRIBEd on its owner, a pattern is refused with NOT_SUPPORTED', async () => {
  const seed = cluster.addrs('REDIS_CLUSTER_MASTERS')[0];
  const masters = cluster.addrs('REDIS_CLUSTER_MASTERS');
  const prefix = uniq('nshd');
  const channels = topo.channelsOnEveryMaster(seed, prefix);
  const sub = await connected(clusterConfig(uniq('nshd-sub'), { shardedPubSub: true }));
  const pub = await connected(clusterConfig(uniq('nshd-pub'), { shardedPubSub: true }));
  try {
    await assert.rejects(sub.subscribe(`${prefix}.*`, () => {}), (e) => {
      assert.equal(e.code, 'NOT_SUPPORTED');
      assert.match(e.message, /sharded pub\/sub has no patterns/);
      return true;
    });
    assert.equal((await sub.getStats()).activeSubscriptions, 0);
    const subs = channels.map((c) => ({ ...c, h: collector() }));
    for (const s of subs) await sub.subscribe(s.channel, s.h);
    for (const s of subs) {
      assert.equal(topo.shardNumSub(s.owner, s.channel), 1, `${s.channel} on its owner ${s.owner}`);
      for (const m of masters.filter((m) => m !== s.owner)) {
        assert.equal(topo.shardNumSub(m, s.channel), 0, `${s.channel} not on ${m}`);
      }
    }
    assert.equal((await sub.getStats()).topology.mode, 'cluster-sharded');
    const N = 10;
    for (let n = 0; n < N; n++) {
      for (const s of subs) {
        const r = await pub.publish(s.channel, { n });
        assert.equal(r.success, true, JSON.stringify(r.error));
        assert.equal(r.deliveredTo, 1, 'SPUBLISH reaches the one subscriber on the owner');
      }
    }
    await waitFor(() => subs.every((s) => s.h.got.length >= N), WAIT, 'every sharded event');
    await settle();
    for (const s of subs) {
      assert.deepEqual(s.h.got, Array.from({ length: N }, (_, n) => [s.channel, { n }]), `${s.channel}: once each, in order`);
    }
  } finally {
    await sub.disconnect();
    await pub.disconnect();
  }
});

test('a config that mixes modes is a CONFIG_ERROR naming both keys', () => {
  const seed = `redis://${cluster.addrs('REDIS_CLUSTER_MASTERS')[0]}`;
  const cases = [
    [{ cluster: [seed], sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster' }, ['redis.cluster', 'redis.sentinels']],
    [{ url: seed, cluster: [seed] }, ['redis.url', 'redis.cluster']],
    [{ url: seed, shardedPubSub: true }, ['redis.shardedPubSub', 'redis.cluster']],
  ];
  for (const [redis, keys] of cases) {
    assert.throws(() => new EventBusClient({ serviceName: 'n', redis }), (e) => {
      assert.equal(e.code, 'CONFIG_ERROR', e.message);
      for (const k of keys) assert.ok(e.message.includes(k), `${k} in "${e.message}"`);
      return true;
    });
  }
});

test('sentinel: after SENTINEL FAILOVER the publisher and the subscriber are on the new master, and what is published after the switch arrives once', async () => {
  const t = topo.start('sentinel');
  const clients = [];
  try {
    const cfg = (service) => ({
      serviceName: service,
      logLevel: 'error',
      redis: {
        sentinels: t.addrs('REDIS_SENTINELS').map((a) => ({ host: '127.0.0.1', port: Number(a.split(':')[1]) })),
        name: t.env.REDIS_SENTINEL_NAME,
        reconnectDelay: 50,
        reconnectDelayMax: 500,
        heartbeatInterval: 1000,
      },
    });
    const pubService = uniq('nsen-pub');
    const subService = uniq('nsen-sub');
    const pub = await connected(cfg(pubService));
    clients.push(pub);
    const sub = await connected(cfg(subService));
    clients.push(sub);
    const gaps = [];
    sub.on('gap', (g) => gaps.push(g));
    const old = t.env.REDIS_MASTER;
    const next = t.env.REDIS_REPLICA;
    const chan = uniq('nsen.chan');
    const pat = uniq('nsen.pat');
    const exact = collector();
    const pattern = collector();
    await sub.subscribe(chan, exact);
    await sub.subscribe(`${pat}.*`, pattern);
    const wanted = [`${pubService}:pub`, `${pubService}:sub`, `${subService}:pub`, `${subService}:sub`];
    const names = topo.namesOn(old);
    for (const n of wanted) assert.ok(names.includes(n), `${n} on ${old}: ${names}`);
    const r0 = await pub.publish(chan, { phase: 'before' });
    assert.equal(r0.deliveredTo, 1);
    await waitFor(() => exact.got.length === 1, WAIT, 'the first event');

    topo.cli(t.addrs('REDIS_SENTINELS')[0], 'SENTINEL', 'FAILOVER', t.env.REDIS_SENTINEL_NAME);
    await waitFor(() => topo.sentinelMaster(t) === next, 60000, `the sentinels to name ${next}`);
    await waitFor(() => {
      const on = topo.namesOn(next);
      return wanted.every((n) => on.includes(n));
    }, 60000, `every link on ${next}`);
    await waitFor(() => !topo.namesOn(old).some((n) => wanted.includes(n)), WAIT, `no link left on ${old}`);
    await waitFor(() => topo.numSub(next, chan) === 1, WAIT, `resubscribed on ${next}`);

    const N = 30;
    for (let n = 0; n < N; n++) {
      const a = await pub.publish(chan, { phase: 'after', n });
      assert.equal(a.success, true, `publish ${n} after the switch: ${JSON.stringify(a.error)}`);
      assert.equal(a.deliveredTo, 1);
      const b = await pub.publish(`${pat}.x`, { phase: 'after', n });
      assert.equal(b.success, true, JSON.stringify(b.error));
    }
    const after = (h) => h.got.filter(([, d]) => d.phase === 'after').map(([, d]) => d.n);
    await waitFor(() => after(exact).length >= N && after(pattern).length >= N, WAIT, 'every event after the switch');
    await settle();
    const all = Array.from({ length: N }, (_, n) => n);
    assert.deepEqual(after(exact), all, 'exact: once each, in order');
    assert.deepEqual(after(pattern), all, 'pattern: once each, in order');
    assert.ok(gaps.length >= 1, 'a gap notice');
    const st = await sub.getStats();
    assert.equal(st.topology.mode, 'sentinel');
    assert.deepEqual(st.topology.masters, [next]);
    assert.deepEqual((await pub.getStats()).topology.connections.publisher, [next]);
  } finally {
    for (const c of clients) await c.disconnect();
    t.stop();
  }
});
