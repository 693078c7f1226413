'use strict';
// The fault matrix from the Node face: a private redis-server behind the fault proxy
// (./fault-proxy.js), one fault per test, and what must hold through it. No test measures time
// against a threshold; waits are generous upper bounds on "eventually".
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { EventBusClient } = require('../..');
const { uniq, waitFor, sleep } = require('./helpers');
const { privateRedis, startProxy, clientList, tlsFiles, privateTlsRedis } = require('./fault-proxy');

/** A client on `url`; `redis` adds redis options. Its state events are recorded in `.log`. */
function client(t, url, redis = {}, service = uniq('fault')) {
  const bus = new EventBusClient({ serviceName: service, logLevel: 'error', redis: { url, ...redis } });
  bus.log = [];
  for (const name of ['connected', 'disconnected', 'reconnecting', 'gap', 'error']) {
    bus.on(name, (e) => bus.log.push({ name, connection: e.connection, reason: e.reason, message: e.message, code: e.code, reconnect: e.reconnect }));
  }
  bus.service = service;
  t.after(() => bus.disconnect());
  return bus;
}
const count = (bus, name, connection) => bus.log.filter((e) => e.name === name && (!connection || e.connection === connection)).length;

test('latency 50±20 ms both ways: order kept, no false half-open reconnect', async (t) => {
  const redis = await privateRedis(t);
  const proxy = await startProxy(t, redis.port);
  const opts = { heartbeatInterval: 300, publishTimeout: 5000 };
  const pub = client(t, proxy.url, opts);
  const sub = client(t, proxy.url, opts);
  await pub.connect();
  await sub.connect();
  const ch = uniq('lat');
  const got = [];
  await sub.subscribe(ch, (e) => { got.push(e.data.n); });
  await proxy.must('latency 50 20');
  // 300 publishes, 30 in flight at once, over a few seconds of slow link.
  for (let wave = 0; wave < 10; wave++) {
    const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => pub.publish(ch, { n: wave * 30 + i })));
    rs.forEach((r, i) => assert.equal(r.deliveredTo, 1, `publish ${wave * 30 + i}: ${JSON.stringify(r)}`));
  }
  await waitFor(() => got.length >= 300, 30000, '300 deliveries');
  assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i), 'in publish order, each once');
  // Several more heartbeats across the slow link: still no reconnect.
  await sleep(1500);
  assert.equal((await sub.getStats()).reconnects, 0, JSON.stringify(sub.log));
  assert.equal((await pub.getStats()).reconnects, 0, JSON.stringify(pub.log));
  assert.equal(count(sub, 'disconnected') + count(pub, 'disconnected'), 0, JSON.stringify([sub.log, pub.log]));
  await proxy.must('heal');
});

test('publishTimeout is honoured on a link slower than it', async (t) => {
  const redis = await privateRedis(t);
  const proxy = await startProxy(t, redis.port);
  const bus = client(t, proxy.url, { publishTimeout: 200, heartbeatInterval: 5000 });
  await bus.connect();
  await proxy.must('latency 600');
  const r = await bus.publish(uniq('lat.t'), { n: 1 });
  assert.equal(r.success, false, 'a 200 ms timeout on a 1.2 s round trip');
  assert.ok(['TIMEOUT', 'OUTCOME_UNKNOWN'].includes(r.error.code), `${r.error.code}: ${r.error.message}`);
  await proxy.must('heal');
});

test('a black-holed subscriber link: heartbeat notices, reconnect, gap, resubscribed exactly once', async (t) => {
  const redis = await privateRedis(t);
  const proxy = await startProxy(t, redis.port);
  const bus = client(t, proxy.url, { heartbeatInterval: 300, reconnectDelay: 50, reconnectDelayMax: 200 });
  await bus.connect();
  const [a, b, pattern] = [uniq('bh.a'), uniq('bh.b'), `${uniq('bh.p')}.*`];
  const got = [];
  await bus.subscribe(a, (e) => { got.push(e.data.n); });
  const gone = await bus.subscribe(b, () => {});
  await bus.subscribe(pattern, () => {});
  assert.ok((await proxy.conns()).some((c) => c.name === `${bus.service}:sub`));
  // One subscription goes before the fault: the resubscribe must not bring it back.
  assert.equal(await bus.unsubscribe(gone.id), true);
  assert.equal(await proxy.must('blackhole :sub'), 'ok 1');
  await waitFor(() => count(bus, 'gap') >= 1, 30000, 'a gap event');
  const reasons = bus.log.filter((e) => e.name === 'disconnected').map((e) => e.reason);
  assert.ok(reasons.some((r) => /heartbeat/.test(r)), JSON.stringify(reasons));
  // Exactly the current set on the new subscriber connection: `a` and the pattern.
  const subs = clientList(redis.cli).filter((c) => c.name === `${bus.service}:sub`);
  const newest = subs.reduce((x, y) => (Number(y.id) > Number(x.id) ? y : x));
  assert.equal(newest.sub, '1', JSON.stringify(newest));
  assert.equal(newest.psub, '1', JSON.stringify(newest));
  assert.equal(count(bus, 'disconnected', 'publisher'), 0, 'the publisher link was never cut');
  assert.equal((await bus.publish(a, { n: 1 })).deliveredTo, 1);
  await waitFor(() => got.length >= 1, 5000, 'delivered after the reconnect');
  await sleep(300);
  assert.deepEqual(got, [1], 'once');
  assert.equal(count(bus, 'gap'), 1, 'one outage, one gap');
  assert.equal(bus.log.filter((e) => e.name === 'connected' && e.connection === 'subscriber' && e.reconnect).length, 1, 'resubscribed once');
});

test('the publisher reset mid-pipeline: every publish ends once, no success is lost, none is sent twice', async (t) => {
  const redis = await privateRedis(t);
  const proxy = await startProxy(t, redis.port);
  const pub = client(t, proxy.url, { reconnectDelay: 50, reconnectDelayMax: 200, publishTimeout: 10000 });
  await pub.connect();
  // The subscriber connects straight to Redis: only the publisher's link is hit.
  const sub = client(t, `redis://127.0.0.1:${redis.port}`);
  await sub.connect();
  const ch = uniq('rst');
  const got = [];
  await sub.subscribe(ch, (e) => { got.push(e.data.n); }, { maxPending: 1000000 });
  // About 40 KB into the burst (each PUBLISH is ~300 bytes), the link is reset.
  assert.equal(await proxy.must(`reset ${pub.service}:pub 40000`), 'ok 1');
  const total = 2000;
  const outcomes = await Promise.all(Array.from({ length: total }, (_, n) => pub.publish(ch, { n })));
  const ok = new Set();
  let unknown = 0;
  let unsent = 0;
  outcomes.forEach((r, n) => {
    if (r.success) {
      assert.equal(r.deliveredTo, 1, `publish ${n}`);
      ok.add(n);
    } else if (r.error.code === 'OUTCOME_UNKNOWN') {
      unknown += 1;
    } else {
      assert.ok(['CONNECTION_ERROR', 'CLOSED', 'TIMEOUT'].includes(r.error.code), `publish ${n}: ${r.error.code} ${r.error.message}`);
      unsent += 1;
    }
  });
  assert.ok(unknown + unsent > 0, 'the reset hit no publish');
  assert.ok(ok.size > 0, 'nothing went through before the reset');
  await waitFor(() => got.length >= ok.size, 20000, 'every success delivered');
  await sleep(300);
  const seen = new Set(got);
  assert.equal(seen.size, got.length, 'an event was delivered twice');
  for (const n of ok) assert.ok(seen.has(n), `success ${n} was not delivered`);
  for (const n of seen) {
    if (!ok.has(n)) assert.equal(outcomes[n].error.code, 'OUTCOME_UNKNOWN', `publish ${n} was delivered but reported ${outcomes[n].error.code}`);
  }
  // The publisher comes back through the proxy.
  await waitFor(async () => (await pub.publish(ch, { n: -1 })).success, 10000, 'the publisher recovered');
});

test('an outage with publishes continuing: the queue bound holds, queued publishes succeed after, overflow is QUEUE_FULL', async (t) => {
  const redis = await privateRedis(t);
  const proxy = await startProxy(t, redis.port);
  const bound = 40;
  const pub = client(t, proxy.url, { offlineQueueSize: bound, publishTimeout: 60000, reconnectDelay: 100, reconnectDelayMax: 500 });
  await pub.connect();
  const sub = client(t, `redis://127.0.0.1:${redis.port}`);
  await sub.connect();
  const ch = uniq('out');
  const got = [];
  await sub.subscribe(ch, (e) => { got.push(e.data.n); }, { maxPending: 100000 });
  // The outage: every new connection refused, the current ones cut.
  await proxy.must('refuse 600000');
  await proxy.must('reset all');
  await waitFor(() => count(pub, 'disconnected', 'publisher') >= 1, 10000, 'the publisher noticed');
  // Publishes keep coming for a while (a short form of a 10 s outage: 100 publishes, 50 ms apart).
  const pending = [];
  for (let n = 0; n < 100; n++) {
    pending.push(pub.publish(ch, { n }));
    await sleep(50);
  }
  const early = await Promise.race([Promise.all(pending.slice(bound)), sleep(20000).then(() => null)]);
  assert.ok(early, 'the publishes past the bound did not fail at once');
  early.forEach((r, i) => {
    assert.equal(r.success, false, `publish ${bound + i} past the bound`);
    assert.equal(r.error.code, 'QUEUE_FULL', `publish ${bound + i}: ${r.error.message}`);
  });
  assert.equal(got.length, 0);
  await proxy.must('heal');
  const queued = await Promise.all(pending.slice(0, bound));
  queued.forEach((r, n) => assert.equal(r.deliveredTo, 1, `queued publish ${n}: ${JSON.stringify(r)}`));
  await waitFor(() => got.length >= bound, 10000, 'the queued publishes delivered');
  await sleep(200);
  assert.deepEqual(got, Array.from({ length: bound }, (_, n) => n), 'in order, each once, nothing past the bound');
});

test('Redis restarted with a new password: a clear auth error, retried, recovers once the password is right again', async (t) => {
  const redis = await privateRedis(t, ['--requirepass', 'old-secret']);
  const bus = client(t, `redis://127.0.0.1:${redis.port}`, { password: 'old-secret', reconnectDelay: 50, reconnectDelayMax: 300 });
  await bus.connect();
  const ch = uniq('pw');
  const got = [];
  await bus.subscribe(ch, (e) => { got.push(e.data.n); });
  await redis.restart(['--requirepass', 'new-secret']);
  // The first failed attempt may find the port closed (the restart); the cause changes to the
  // refused password once the server is up, and that change is reported.
  const authError = () => bus.log.find((e) => e.name === 'error' && /auth|password|WRONGPASS/i.test(e.message));
  await waitFor(authError, 20000, 'an error event naming the authentication failure');
  const errors = bus.log.filter((e) => e.name === 'error');
  assert.equal(authError().code, 'CONNECTION_ERROR', JSON.stringify(authError()));
  assert.ok(errors.every((e) => !/old-secret|new-secret/.test(e.message)), 'a password in a message');
  const attempts = count(bus, 'reconnecting');
  await waitFor(() => count(bus, 'reconnecting') >= attempts + 3, 20000, 'still retrying');
  const r = await bus.publish(ch, { n: 0 });
  assert.equal(r.success, false, 'no publish gets through meanwhile');
  // The client's credentials are fixed at construction (no refresh call in this face): it
  // recovers when the server takes them again.
  await redis.restart(['--requirepass', 'old-secret']);
  await waitFor(() => count(bus, 'gap') >= 1, 20000, 'resubscribed');
  await waitFor(async () => (await bus.publish(ch, { n: 1 })).success, 10000, 'publishes again');
  await waitFor(() => got.includes(1), 5000, 'delivered');
});

test('CLIENT PAUSE 3 s: publishes wait and complete, no false half-open reconnect', async (t) => {
  const redis = await privateRedis(t);
  const proxy = await startProxy(t, redis.port);
  const pub = client(t, proxy.url, { publishTimeout: 20000 });
  const sub = client(t, proxy.url);
  await pub.connect();
  await sub.connect();
  const ch = uniq('pause');
  const got = [];
  await sub.subscribe(ch, (e) => { got.push(e.data.n); });
  // The subscriber link is idle for 4 s before the pause, so its heartbeat PING (due after 5 s
  // of silence, answer awaited up to 5 s) is sent while Redis is paused and answered late.
  await sleep(4000);
  assert.equal(redis.cli('CLIENT', 'PAUSE', '3000', 'ALL'), 'OK');
  const rs = await Promise.all(Array.from({ length: 50 }, (_, n) => pub.publish(ch, { n })));
  rs.forEach((r, n) => assert.equal(r.deliveredTo, 1, `publish ${n}: ${JSON.stringify(r)}`));
  await waitFor(() => got.length >= 50, 10000, 'delivered');
  assert.deepEqual(got, Array.from({ length: 50 }, (_, n) => n));
  assert.equal((await pub.getStats()).reconnects, 0, JSON.stringify(pub.log));
  assert.equal((await sub.getStats()).reconnects, 0, JSON.stringify(sub.log));
  await sleep(2000);
  assert.equal((await sub.getStats()).reconnects, 0, JSON.stringify(sub.log));
  assert.equal(count(pub, 'disconnected') + count(sub, 'disconnected'), 0);
});

test('server maxclients reached: connect fails with CONNECTION_ERROR naming the reason, succeeds once a slot frees', async (t) => {
  const redis = await privateRedis(t, ['--maxclients', '3']);
  // Three raw connections take every slot (each sends PING so the server has accepted it).
  const holders = await Promise.all(Array.from({ length: 3 }, () => new Promise((resolve, reject) => {
    const s = net.connect(redis.port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d) => (String(d).startsWith('+PONG') ? resolve(s) : reject(new Error(String(d)))));
    s.once('error', reject);
  })));
  t.after(() => holders.forEach((s) => s.destroy()));
  const bus = client(t, `redis://127.0.0.1:${redis.port}`, { connectTimeout: 3000 });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(bus.connect(), (e) => {
      assert.equal(e.code, 'CONNECTION_ERROR', `${e.code}: ${e.message}`);
      assert.ok(e.message.includes(`127.0.0.1:${redis.port}`), `names the address: ${e.message}`);
      assert.ok(e.message.includes('the server refused a new client: max number of clients reached'), `says why: ${e.message}`);
      return true;
    });
  }
  holders.forEach((s) => s.destroy());
  await waitFor(() => /^connected_clients:1$/m.test(redis.cli('INFO', 'clients') || ''), 10000, 'the slots freed');
  await bus.connect();
  const r = await bus.publish(uniq('maxclients'), { n: 1 });
  assert.equal(r.success, true, JSON.stringify(r));
});

for (const [what, san, days, why] of [
  ['an expired certificate', 'IP:127.0.0.1, DNS:localhost', '-1', '(it has expired)'],
  ['a certificate for another host', 'DNS:elsewhere.invalid', '2', '(it is not issued for this host name)'],
]) {
  test(`TLS with ${what}: connect is refused with the reason, nothing is sent in plain text`, async (t) => {
    const files = tlsFiles(t, { san, days });
    const redis = await privateTlsRedis(t, files);
    const service = uniq('tlsbad');
    const bus = client(t, redis.url, { tls: { ca: files.caPem }, connectTimeout: 3000 }, service);
    await assert.rejects(bus.connect(), (e) => {
      assert.equal(e.code, 'CONNECTION_ERROR', `${e.code}: ${e.message}`);
      assert.ok(e.message.includes(redis.url), `names the address: ${e.message}`);
      assert.ok(e.message.includes("the server's TLS certificate is not trusted") && e.message.includes(why), `${why}: ${e.message}`);
      return true;
    });
    const all = clientList(redis.cli);
    assert.ok(all.length >= 1, 'CLIENT LIST answered (it lists its own connection)');
    const ours = all.filter((c) => (c.name || '').includes(service));
    assert.deepEqual(ours, [], 'a client of ours got through');
  });
}
