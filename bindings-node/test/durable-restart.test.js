'use strict';
// Durable delivery on a private redis-server with AOF (`appendfsync always`): Redis SIGKILLed
// and restarted while persistent publishes go on loses none that was acknowledged; trimming by
// `durable.maxLen` and by `ttl` works, and entries trimmed before the group read them are
// counted (`eventsTrimmedUnread`) and reported (an `error` event with code EVENTS_TRIMMED).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');
const { EventBusClient } = require('../..');
const { uniq, waitFor, sleep } = require('./helpers');
const { privateRedis } = require('./fault-proxy');

async function aofRedis(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eb-node-aof-'));
  const srv = await privateRedis(t, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return srv;
}

async function client(t, port, name, extra = {}) {
  const bus = new EventBusClient({
    serviceName: name,
    logLevel: 'error',
    redis: { url: `redis://127.0.0.1:${port}`, reconnectDelay: 50, reconnectDelayMax: 200 },
    ...extra,
  });
  await bus.connect();
  t.after(() => bus.disconnect());
  return bus;
}

test('Redis SIGKILLed and restarted with AOF: every acknowledged persistent publish is delivered', async (t) => {
  const srv = await aofRedis(t);
  const type = uniq('dur.aof');
  const group = uniq('g');
  const pub = await client(t, srv.port, 'aof-pub');
  // The member joins (the group is created), then goes away until after the restart.
  const first = await client(t, srv.port, 'aof-member');
  const sub = await first.subscribe(type, () => {}, { durable: { group, consumer: 'm1' } });
  await first.unsubscribe(sub.id);

  // Publishes go on, one at a time, while Redis is killed and started again.
  const acked = new Set();
  const outcomes = {};
  let stop = false;
  let n = 0;
  const loop = (async () => {
    while (!stop) {
      const r = await pub.publish(type, { n: n++ }, { persistent: true });
      const k = r.success ? 'ok' : r.error.code;
      outcomes[k] = (outcomes[k] || 0) + 1;
      if (r.success) acked.add(r.eventId);
      else await sleep(20);
    }
  })();
  await waitFor(() => acked.size >= 100, 20000, '100 acknowledged publishes');
  await srv.restart();
  await waitFor(() => acked.size >= 200, 30000, 'publishes acknowledged after the restart');
  stop = true;
  await loop;
  assert.ok(n > acked.size || outcomes.ok === n, JSON.stringify(outcomes));

  const back = await client(t, srv.port, 'aof-member');
  const got = new Map();
  await back.subscribe(type, (ev) => got.set(ev.id, (got.get(ev.id) || 0) + 1), {
    durable: { group, consumer: 'm1', block: 200 },
  });
  await waitFor(() => [...acked].every((id) => got.has(id)), 30000, 'every acknowledged publish delivered');
  const missing = [...acked].filter((id) => !got.has(id));
  assert.deepEqual(missing, [], `outcomes ${JSON.stringify(outcomes)}`);
});

test('maxLen and ttl trim the stream; entries trimmed before the group read them are counted', async (t) => {
  const srv = await aofRedis(t);
  const type = uniq('dur.trim');
  const key = `events:{${type}}`;
  const raw = new Redis(`redis://127.0.0.1:${srv.port}`);
  t.after(() => raw.disconnect());
  const pub = await client(t, srv.port, 'trim-pub', { durable: { maxLen: 10 } });
  const reader = await client(t, srv.port, 'trim-reader');
  const errors = [];
  reader.on('error', (e) => errors.push(e));
  const got = [];
  const opts = { durable: { group: 'T', consumer: 't1', block: 200, claimInterval: 100 } };
  const sub = await reader.subscribe(type, (ev) => got.push(ev.data.n), opts);
  for (let i = 0; i < 5; i++) assert.equal((await pub.publish(type, { n: i }, { persistent: true })).success, true);
  await waitFor(() => got.length === 5, 10000, 'the first 5 read');
  await reader.unsubscribe(sub.id);

  // 200 more while nobody reads: MAXLEN ~ 10 keeps about 10 of them.
  for (let i = 5; i < 205; i++) assert.equal((await pub.publish(type, { n: i }, { persistent: true })).success, true);
  const len = await raw.xlen(key);
  assert.ok(len < 50, `MAXLEN ~ 10 trims (len ${len})`);

  await reader.subscribe(type, (ev) => got.push(ev.data.n), opts);
  await waitFor(() => got.length === 5 + len, 10000, 'what the stream still holds read');
  await waitFor(async () => (await reader.getStats()).eventsTrimmedUnread === 200 - len, 10000, 'trimmed-unread counted');
  await waitFor(() => errors.some((e) => e.code === 'EVENTS_TRIMMED'), 10000, 'EVENTS_TRIMMED reported');

  // ttl: entries older than it go with the next persistent publish that has a ttl.
  const type2 = uniq('dur.ttl');
  for (let i = 0; i < 40; i++) await pub.publish(type2, { n: i }, { persistent: true });
  await sleep(300);
  assert.equal((await pub.publish(type2, { n: 40 }, { persistent: true, ttl: 100 })).success, true);
  const len2 = await raw.xlen(`events:{${type2}}`);
  assert.ok(len2 < 40, `MINID ~ trims entries older than the ttl (len ${len2})`);
  await assert.rejects(
    pub.publish(type2, { n: 41 }, { persistent: true, ttl: -1 }).then((r) => {
      if (!r.success) throw Object.assign(new Error(r.error.message), { code: r.error.code });
    }),
    (e) => e.code === 'VALIDATION_ERROR',
  );
});
