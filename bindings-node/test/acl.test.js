'use strict';
// ACL changes mid-run on a private redis-server: what the ACL refuses fails with
// PERMISSION_DENIED naming the channel, and giving the permission back heals the client
// without a restart.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const { EventBusClient } = require('../..');
const { uniq, waitFor, freePort, sleep } = require('./helpers');

const SERVER = process.env.REDIS_SERVER_BIN || 'redis-server';
const CLI = process.env.REDIS_CLI_BIN || 'redis-cli';

async function privateRedis(t) {
  const port = await freePort();
  const proc = spawn(SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  t.after(() => proc.kill('SIGKILL'));
  const cli = (...args) => {
    const r = spawnSync(CLI, ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10000 });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  await waitFor(() => cli('PING') === 'PONG', 10000, 'redis-server up');
  const acl = (...rules) => assert.equal(cli('ACL', 'SETUSER', 'alice', ...rules), 'OK');
  acl('reset', 'on', '>wonderland', '~*', '&*', '+@all');
  return { port, acl };
}

function alice(port, redis = {}) {
  return new EventBusClient({
    serviceName: 'acl',
    redis: { url: `redis://alice:wonderland@127.0.0.1:${port}`, ...redis },
  });
}

test('publish permission taken away and given back mid-run', async (t) => {
  const { port, acl } = await privateRedis(t);
  const bus = alice(port);
  await bus.connect();
  t.after(() => bus.disconnect());
  const ch = uniq('acl');
  const got = [];
  await bus.subscribe(ch, (e) => { got.push(e.data.n); });
  assert.equal((await bus.publish(ch, { n: 1 })).deliveredTo, 1);

  acl('-publish');
  const r = await bus.publish(ch, { n: 2 });
  assert.equal(r.success, false);
  assert.equal(r.error.code, 'PERMISSION_DENIED');
  assert.ok(r.error.message.startsWith(`Redis refused PUBLISH on "${ch}": permission denied`), r.error.message);
  assert.ok(!r.error.message.includes('ServerError'), r.error.message);

  acl('+publish');
  assert.equal((await bus.publish(ch, { n: 3 })).deliveredTo, 1);
  await waitFor(() => got.length === 2, 5000, 'two deliveries');
  assert.deepEqual(got, [1, 3], 'a refused publish is never resent');
  assert.equal((await bus.getStats()).reconnects, 0);
});

test('a resubscribe refused by the ACL is an error event, retried until allowed', async (t) => {
  const { port, acl } = await privateRedis(t);
  const bus = alice(port, { reconnectDelay: 50, reconnectDelayMax: 200 });
  const errors = [];
  let gaps = 0;
  bus.on('error', (e) => errors.push(e));
  bus.on('gap', () => { gaps += 1; });
  await bus.connect();
  t.after(() => bus.disconnect());
  const ch = uniq('acl');
  const got = [];
  await bus.subscribe(ch, (e) => { got.push(e.data.n); });

  acl('resetchannels', '&other.*');
  const refused = () => errors.filter((e) => /Resubscribe failed/.test(e.message) && /permission denied/.test(e.message));
  await waitFor(() => refused().length >= 2, 20000, 'the refusal reported and retried');
  assert.equal(refused()[0].connection, 'subscriber');
  assert.equal(refused()[0].code, 'PERMISSION_DENIED');
  assert.equal(gaps, 0, 'no gap notice while still refused');

  acl('resetchannels', '&*');
  await waitFor(() => gaps >= 1, 20000, 'resubscribed once allowed');
  await sleep(10);
  assert.equal((await bus.publish(ch, { n: 1 })).deliveredTo, 1);
  await waitFor(() => got.length === 1, 5000, 'delivered');
});
