'use strict';
// Rooms over Socket.IO (joinRoom / leaveRoom / getRoomMembers, room events, reconnects) from
// Node, against the real test hub (tests/fixtures/socketio-hub, on the npm socket.io server)
// and the real Redis, like core/tests/socketio.rs.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { EventBusClient, ValidationError } = require('../..');
const { REDIS_URL, HUB_DIR, uniq, config, sleep, waitFor, freePort, Hub, hubClient, ensureHubDeps, runChild } = require('./helpers');

/** A client of the shared Redis with `client` config for `hub` (a Hub or a URL). */
function busFor(hub, { serviceName = uniq('svc'), client = {}, ...top } = {}) {
  return new EventBusClient(config('redis', { serviceName, client: hubClient(hub, client), ...top }));
}

/** Collects the connection state events of `bus` (all connections), in order. */
function stateLog(bus) {
  const log = [];
  for (const name of ['connected', 'disconnected', 'reconnecting']) bus.on(name, (e) => log.push(e));
  bus.on('error', (e) => log.push({ type: 'error', connection: e.connection, message: e.message, code: e.code }));
  return log;
}

const sio = (log) => log.filter((e) => e.connection === 'socketio');

/** Start a hub, stopped after the test; and disconnect every client made, even on failure. */
async function setup(t, hubOpts) {
  const hub = await Hub.start(hubOpts);
  const buses = [];
  t.after(async () => {
    for (const b of buses) await b.disconnect().catch(() => {});
    await hub.stop();
  });
  const make = async (opts) => {
    const b = busFor(hub, opts);
    buses.push(b);
    await b.connect();
    return b;
  };
  return { hub, make, track: (b) => (buses.push(b), b) };
}

test('without client config, the room methods reject with "Socket.IO not connected"', async () => {
  const bus = new EventBusClient(config('redis'));
  for (const call of [() => bus.joinRoom('r'), () => bus.leaveRoom('r'), () => bus.getRoomMembers('r')]) {
    await assert.rejects(call(), { code: 'CONNECTION_ERROR', message: 'Socket.IO not connected' });
  }
  await bus.connect();
  try {
    for (const call of [() => bus.joinRoom('r'), () => bus.leaveRoom('r'), () => bus.getRoomMembers('r')]) {
      await assert.rejects(call(), { code: 'CONNECTION_ERROR', message: 'Socket.IO not connected' });
    }
    const h = await bus.healthCheck();
    assert.equal(h.status, 'healthy');
    assert.equal(h.checks.socketio, undefined);
    const s = await bus.getStats();
    assert.equal(s.activeRooms, 0);
    assert.equal(s.activeConnections, 2);
    // Room names are checked first, with or without a hub.
    await assert.rejects(bus.joinRoom(''), (e) => e instanceof ValidationError && e.code === 'VALIDATION_ERROR' && e.message === 'Room name cannot be empty');
    await assert.rejects(bus.joinRoom(undefined), (e) => e instanceof ValidationError && e.message === 'Room name must be a string');
    await assert.rejects(bus.getRoomMembers(42), (e) => e instanceof ValidationError && e.message === 'Room name must be a string');
  } finally {
    await bus.disconnect();
  }
});

test('join, leave and members with two clients; health, stats and state events', async (t) => {
  const { hub, make, track } = await setup(t);
  const [aName, bName] = [uniq('svc-a'), uniq('svc-b')];
  const a = track(busFor(hub, { serviceName: aName }));
  const states = stateLog(a);
  await a.connect();
  const b = await make({ serviceName: bName });
  assert.deepEqual(sio(states), [{ type: 'connected', connection: 'socketio', reconnect: false }]);

  const room = uniq('room');
  assert.equal(await a.joinRoom(room), undefined);
  await b.joinRoom(room);
  assert.deepEqual(await a.getRoomMembers(room), [aName, bName].sort());
  assert.deepEqual(await b.getRoomMembers(room), [aName, bName].sort());
  assert.deepEqual(await a.getRoomMembers(uniq('empty')), []);
  assert.deepEqual((await hub.socketOf(aName)).rooms, [room, `user:${aName}`].sort());

  const stats = await a.getStats();
  assert.equal(stats.activeRooms, 1);
  assert.equal(stats.activeConnections, 3, 'publisher, subscriber and the hub');
  const h = await a.healthCheck();
  assert.equal(h.status, 'healthy', JSON.stringify(h));
  assert.equal(h.checks.redis.status, 'pass');
  const check = h.checks.socketio;
  assert.equal(check.status, 'pass');
  assert.equal(typeof check.message, 'string');
  assert.equal(typeof check.duration, 'number');
  assert.deepEqual(check.details, { url: hub.url, transport: 'websocket', rooms: [room], reconnects: 0 });

  await a.leaveRoom(room);
  assert.deepEqual(await b.getRoomMembers(room), [bName]);
  assert.equal((await a.getStats()).activeRooms, 0);
  assert.deepEqual((await a.healthCheck()).checks.socketio.details.rooms, []);
  // Leaving a room not joined is fine (the hub acks it).
  await a.leaveRoom(uniq('never'));
  await assert.rejects(a.joinRoom(''), { code: 'VALIDATION_ERROR', message: 'Room name cannot be empty' });

  await a.disconnect();
  await waitFor(async () => (await hub.socketOf(aName)) === undefined, 5000, 'the hub to drop a');
  assert.deepEqual(await b.getRoomMembers(room), [bName]);
  for (const call of [() => a.joinRoom(room), () => a.leaveRoom(room), () => a.getRoomMembers(room)]) {
    await assert.rejects(call(), { code: 'CONNECTION_ERROR', message: 'Socket.IO not connected' });
  }
});

test('publishToRoom reaches exactly the members; a "*" subscription runs once per event', async (t) => {
  const { make } = await setup(t);
  const room = uniq('room');
  const ns = uniq('chat');
  const ty = `${ns}.sent`;
  const N = 5;
  const senderName = uniq('sender');
  const sender = await make({ serviceName: senderName });
  const members = [];
  for (let i = 0; i < 2; i++) {
    const bus = await make({ serviceName: uniq(`member${i}`) });
    await bus.joinRoom(room);
    const m = { bus, byType: [], all: [], redis: [] };
    // Matches the type only: these come by Socket.IO.
    await bus.subscribe(`${ns}.*`, (e) => { m.byType.push(e); });
    // Matches the Redis channel (room:...) and the type: must still run once per event. The
    // shared Redis carries other tests' traffic too, so keep only this test's events.
    await bus.subscribe('*', (e) => { if (e.type.startsWith(`${ns}.`)) m.all.push(e); });
    // Matches the Redis channel only: tells when the Redis copies have all arrived.
    await bus.subscribe(`room:${room}`, (e) => { m.redis.push(e); });
    members.push(m);
  }
  const outsiderName = uniq('outsider');
  const outsider = await make({ serviceName: outsiderName });
  const outside = [];
  await outsider.subscribe(ty, (e) => { outside.push(e); });

  const sent = [];
  for (let n = 0; n < N; n++) {
    const r = await sender.publishToRoom(room, ty, { n });
    assert.equal(r.success, true, JSON.stringify(r));
    sent.push(r.eventId);
  }
  // A marker after them, by the same path: once a member has it from both Socket.IO and
  // Redis, every earlier copy of either path has arrived too.
  const marker = await sender.publishToRoom(room, `${ns}.marker`, { marker: true });
  // The outsider's own user room gets a marker through the same hub, after the room events:
  // once it is there, any room event the outsider were wrongly sent would be there as well.
  const userMarker = await sender.publishToUser(outsiderName, ty, { marker: true });
  assert.equal(userMarker.success, true);

  const hasMarker = (list) => list.some((e) => e.id === marker.eventId);
  for (const m of members) {
    // "*" also sees the user marker, by Redis only (a member is not in the outsider's room).
    const all = () => hasMarker(m.all) && m.all.some((e) => e.id === userMarker.eventId);
    await waitFor(() => hasMarker(m.byType) && hasMarker(m.redis) && all(), 10000, 'the markers');
  }
  await waitFor(() => outside.some((e) => e.id === userMarker.eventId), 10000, "the outsider's marker");

  for (const m of members) {
    const events = m.byType.filter((e) => e.type === ty);
    assert.deepEqual(events.map((e) => e.data.n), [0, 1, 2, 3, 4], 'all, in order');
    assert.deepEqual(events.map((e) => e.id), sent);
    assert.equal(events[0].channel, ty, 'Socket.IO events carry their type as channel');
    assert.equal(events[0].pattern, `${ns}.*`);
    assert.deepEqual(Object.keys(events[0]), ['id', 'type', 'data', 'metadata', 'channel', 'pattern']);
    assert.equal(events[0].metadata.source, senderName);
    assert.equal(m.byType.length, N + 1);
    assert.equal(m.redis.length, N + 1);
    assert.equal(m.redis[0].channel, `room:${room}`);
    // Once per event, whichever path it came by first.
    assert.deepEqual(m.all.map((e) => e.id).sort(), [...sent, marker.eventId, userMarker.eventId].sort(), 'one run per event for "*"');
  }
  assert.deepEqual(outside.map((e) => e.id), [userMarker.eventId], 'not a member: no room event');
});

test('the hub killed and restarted on the same port: state events, rejoin, resubscribe, receive again', async (t) => {
  const { hub, make, track } = await setup(t);
  const name = uniq('restart');
  const bus = track(busFor(hub, { serviceName: name }));
  const states = stateLog(bus);
  await bus.connect();
  const room = uniq('room');
  const ty = `${uniq('t')}.x`;
  await bus.joinRoom(room);
  const got = [];
  const filter = { conditions: [{ field: 'data.keep', operator: 'equals', value: true }] };
  const sub = await bus.subscribe(ty, (e) => { got.push(e); }, { priority: 1, filter });
  await waitFor(async () => ((await hub.socketOf(name)) || { subscriptions: [] }).subscriptions.length === 1, 5000, 'the subscription announced');
  const before = await hub.socketOf(name);
  assert.equal(before.subscriptions[0].pattern, ty);
  assert.equal(before.subscriptions[0].subscriptionId, sub.id);
  assert.deepEqual(before.subscriptions[0].filter, filter);
  assert.ok(before.rooms.includes(room));

  await hub.kill();
  await waitFor(() => sio(states).some((e) => e.type === 'disconnected'), 10000, "'disconnected' on socketio");
  await waitFor(() => sio(states).some((e) => e.type === 'reconnecting'), 10000, "'reconnecting' on socketio");
  await assert.rejects(bus.joinRoom(uniq('other')), { code: 'CONNECTION_ERROR', message: 'Socket.IO not connected' });
  const down = await bus.healthCheck();
  assert.equal(down.status, 'degraded');
  assert.equal(down.checks.socketio.status, 'fail');
  assert.equal(down.checks.redis.status, 'pass');
  assert.equal(bus.isConnected(), true, 'Redis is still up');
  assert.equal((await bus.getStats()).activeConnections, 2);

  await hub.spawn(); // same port
  await waitFor(async () => {
    const s = await hub.socketOf(name);
    return s && s.rooms.includes(room) && s.subscriptions.length === 1;
  }, 10000, 'rejoined and resubscribed');
  const after = await hub.socketOf(name);
  assert.notEqual(after.id, before.id, 'a new socket');
  assert.equal(after.subscriptions[0].pattern, ty);
  assert.equal(after.subscriptions[0].subscriptionId, sub.id);
  assert.deepEqual(after.subscriptions[0].filter, filter);
  assert.deepEqual(after.subscriptions[0].options, before.subscriptions[0].options);
  await waitFor(() => sio(states).some((e) => e.type === 'connected' && e.reconnect), 10000, "'connected' again");

  const seq = sio(states);
  const disc = seq.find((e) => e.type === 'disconnected');
  assert.equal(typeof disc.reason, 'string');
  assert.ok(disc.reason.length > 0);
  const rec = seq.find((e) => e.type === 'reconnecting');
  assert.equal(rec.attempt, 1);
  assert.equal(typeof rec.delay, 'number');
  const order = ['connected', 'disconnected', 'reconnecting'].map((ty2) => seq.findIndex((e) => e.type === ty2));
  const reconnected = seq.findIndex((e) => e.type === 'connected' && e.reconnect === true);
  assert.ok(order[0] < order[1] && order[1] < order[2] && order[2] < reconnected, JSON.stringify(seq));
  assert.deepEqual(seq[reconnected], { type: 'connected', connection: 'socketio', reconnect: true });
  assert.ok(states.every((e) => e.connection === 'socketio' || e.type === 'connected'), 'Redis connections untouched');

  const up = await bus.healthCheck();
  assert.equal(up.status, 'healthy');
  assert.ok(up.checks.socketio.details.reconnects >= 1);
  assert.deepEqual(up.checks.socketio.details.rooms, [room]);
  assert.deepEqual(await bus.getRoomMembers(room), [name]);

  const sender = await make({ serviceName: uniq('pub') });
  await sender.publishToRoom(room, ty, { keep: false });
  const r = await sender.publishToRoom(room, ty, { keep: true });
  await waitFor(() => got.length >= 1, 10000, 'an event after the restart');
  assert.equal(got[0].id, r.eventId, 'the filter still applies');
  assert.equal(got[0].channel, ty);

  // Unsubscribing tells the hub.
  assert.equal(await bus.unsubscribe(sub.id), true);
  await waitFor(async () => (await hub.socketOf(name)).subscriptions.length === 0, 5000, 'the unsubscribe announced');
});

test('a wrong token: connect() rejects with CONNECTION_ERROR and the exact message', async (t) => {
  const { hub, track } = await setup(t);
  const bus = track(busFor(hub, { client: { authToken: 'wrong' } }));
  const states = stateLog(bus);
  await assert.rejects(bus.connect(), (e) => {
    assert.equal(e.code, 'CONNECTION_ERROR');
    assert.equal(e.message, 'Socket.IO connection rejected by the hub: invalid token');
    return true;
  });
  assert.equal(bus.isConnected(), false);
  assert.equal((await hub.state()).rejected, 1);
  assert.deepEqual(sio(states).filter((e) => e.type === 'error').map((e) => [e.code, e.message]), [
    ['CONNECTION_ERROR', 'Socket.IO connection rejected by the hub: invalid token'],
  ]);
  await assert.rejects(bus.publish('x.y', {}), { message: 'Not connected to Event Bus' });
  await assert.rejects(bus.joinRoom('r'), { code: 'CONNECTION_ERROR', message: 'Socket.IO not connected' });
  // No token at all is refused the same way.
  const none = track(busFor(hub, { client: { authToken: undefined } }));
  await assert.rejects(none.connect(), { code: 'CONNECTION_ERROR', message: 'Socket.IO connection rejected by the hub: invalid token' });
});

test('an unreachable hub: connect() resolves, rooms wait; reconnection:false rejects', async (t) => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const buses = [];
  let hub = null;
  t.after(async () => {
    for (const b of buses) await b.disconnect().catch(() => {});
    if (hub) await hub.stop();
  });

  const strict = new EventBusClient(config('redis', { serviceName: uniq('strict'), client: hubClient(url, { reconnection: false }) }));
  buses.push(strict);
  await assert.rejects(strict.connect(), (e) => {
    assert.equal(e.code, 'CONNECTION_ERROR');
    assert.ok(e.message.startsWith(`Socket.IO connection to 127.0.0.1:${port} failed`), e.message);
    return true;
  });
  assert.equal(strict.isConnected(), false);

  const name = uniq('patient');
  const bus = new EventBusClient(config('redis', { serviceName: name, client: hubClient(url) }));
  buses.push(bus);
  const states = stateLog(bus);
  await bus.connect();
  assert.equal(bus.isConnected(), true);
  const h = await bus.healthCheck();
  assert.equal(h.status, 'degraded', JSON.stringify(h));
  assert.equal(h.checks.redis.status, 'pass');
  assert.equal(h.checks.socketio.status, 'fail');
  assert.equal(h.checks.socketio.details.url, url);
  assert.equal(h.checks.socketio.details.transport, null);
  for (const call of [() => bus.joinRoom('r'), () => bus.leaveRoom('r'), () => bus.getRoomMembers('r')]) {
    await assert.rejects(call(), { code: 'CONNECTION_ERROR', message: 'Socket.IO not connected' });
  }
  // Redis is unaffected.
  const ch = uniq('still');
  const got = [];
  await bus.subscribe(ch, (e) => { got.push(e); });
  assert.equal((await bus.publish(ch, { ok: 1 })).success, true);
  await waitFor(() => got.length === 1, 5000, 'a Redis event');
  await waitFor(() => sio(states).some((e) => e.type === 'reconnecting'), 10000, 'background retries');
  assert.equal(sio(states).some((e) => e.type === 'connected'), false);

  hub = await Hub.start({ port });
  const room = uniq('room');
  await waitFor(() => bus.joinRoom(room).then(() => true, (e) => {
    assert.equal(e.message, 'Socket.IO not connected');
    return false;
  }), 15000, 'joinRoom once the hub is up');
  assert.deepEqual(await bus.getRoomMembers(room), [name]);
  assert.ok(sio(states).some((e) => e.type === 'connected'));
  const up = await bus.healthCheck();
  assert.equal(up.status, 'healthy');
  assert.equal(up.checks.socketio.status, 'pass');
  // The subscription made while the hub was down was announced when it came up.
  await waitFor(async () => {
    const s = await hub.socketOf(name);
    return s && s.subscriptions.some((x) => x.pattern === ch);
  }, 5000, 'the subscription announced');
});

test('polling only: join, members and event delivery over HTTP long-polling', async (t) => {
  const { hub, make } = await setup(t, { args: ['--transports', 'polling', '--ping-interval', '300', '--ping-timeout', '300'] });
  const room = uniq('room');
  const ty = `${uniq('poll')}.p`;
  const members = [];
  // Configured for polling only; and the default (websocket first) falling back to polling.
  for (const websocket of [{ transports: ['polling'] }, undefined]) {
    const bus = await make(websocket ? { websocket } : {});
    const h = await bus.healthCheck();
    assert.equal(h.checks.socketio.details.transport, 'polling', JSON.stringify(h));
    await bus.joinRoom(room);
    const got = [];
    await bus.subscribe(ty, (e) => { got.push(e); });
    members.push({ bus, got });
  }
  assert.equal((await members[0].bus.getRoomMembers(room)).length, 2);
  // Several ping intervals: the sessions stay up (pings answered).
  await sleep(1200);
  const sent = [];
  for (let i = 0; i < 20; i++) sent.push((await members[0].bus.publishToRoom(room, ty, { i })).eventId);
  for (const { bus, got } of members) {
    await waitFor(() => got.length >= 20, 10000, '20 events over polling');
    assert.deepEqual(got.map((e) => e.id), sent);
    const h = await bus.healthCheck();
    assert.equal(h.status, 'healthy');
    assert.equal(h.checks.socketio.details.reconnects, 0);
  }
  assert.equal((await hub.state()).connections, 2, 'no reconnect happened');
});

test('a hub that refuses a room request: PROTOCOL_ERROR with its reason; no ack: TIMEOUT', async (t) => {
  ensureHubDeps();
  const http = require('node:http');
  const { Server } = require(path.join(HUB_DIR, 'node_modules', 'socket.io'));
  const server = http.createServer();
  const io = new Server(server, { serveClient: false });
  io.on('connection', (socket) => {
    socket.on('join_room', (p, ack) => {
      if (p.room !== 'silent') ack({ success: false, error: 'rooms are closed' });
    });
    socket.on('leave_room', (_p, ack) => ack({ success: false, error: { message: 'not today' } }));
    socket.on('get_room_members', (_p, ack) => ack({ success: true }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const bus = busFor(`http://127.0.0.1:${server.address().port}`, { client: { timeout: 2000 } });
  t.after(async () => {
    await bus.disconnect().catch(() => {});
    await new Promise((r) => io.close(() => r()));
  });
  await bus.connect();
  await assert.rejects(bus.joinRoom('r1'), { code: 'PROTOCOL_ERROR', message: 'the Socket.IO hub refused join_room for room "r1": rooms are closed' });
  await assert.rejects(bus.leaveRoom('r1'), { code: 'PROTOCOL_ERROR', message: 'the Socket.IO hub refused leave_room for room "r1": not today' });
  await assert.rejects(bus.getRoomMembers('r1'), (e) => e.code === 'PROTOCOL_ERROR' && /get_room_members without a members list/.test(e.message));
  await assert.rejects(bus.joinRoom('silent'), { code: 'TIMEOUT', message: 'the Socket.IO hub did not acknowledge join_room within 2000 ms' });
  assert.equal((await bus.getStats()).activeRooms, 0, 'a refused or unanswered join is not a joined room');
  assert.deepEqual((await bus.healthCheck()).checks.socketio.details.rooms, []);
});

// ---- the process exits by itself after disconnect() (see exit.test.js) ----------------------

test('exits after disconnect() of a client that had a hub connection, rooms and subscriptions', async (t) => {
  const hub = await Hub.start();
  t.after(() => hub.stop());
  const name = uniq('exit');
  const room = uniq('room');
  const ty = `${uniq('exit')}.e`;
  const r = await runChild(`
    const bus = new EventBusClient({ serviceName: ${JSON.stringify(name)}, redis: { url: REDIS_URL }, logLevel: 'error',
      client: { url: ${JSON.stringify(hub.url)}, authToken: ${JSON.stringify(hub.token)}, reconnectionDelay: 50, reconnectionDelayMax: 200, timeout: 3000 } });
    bus.on('connected', () => {});
    bus.on('error', () => {});
    await bus.connect();
    await bus.joinRoom(${JSON.stringify(room)});
    let got = 0;
    await bus.subscribe(${JSON.stringify(ty)}, () => { got++; });
    await bus.publishToRoom(${JSON.stringify(room)}, ${JSON.stringify(ty)}, { x: 1 });
    while (got < 1) await new Promise((r) => setTimeout(r, 5));
    console.log('members', JSON.stringify(await bus.getRoomMembers(${JSON.stringify(room)})), 'got', got);
    await bus.disconnect();
  `);
  assert.equal(r.alive, false, `process hung after disconnect(): ${r.out} ${r.err}`);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`members \\["${name}"\\] got 1`));
  await waitFor(async () => (await hub.socketOf(name)) === undefined, 5000, 'the hub to drop the socket');
});

test('exits after disconnect() while the hub is unreachable and retried in the background', async () => {
  const port = await freePort();
  const r = await runChild(`
    const bus = new EventBusClient({ serviceName: 'exit-retry', redis: { url: REDIS_URL }, logLevel: 'error',
      client: { url: 'http://127.0.0.1:${port}', authToken: 'x', reconnectionDelay: 50, reconnectionDelayMax: 200, timeout: 3000 } });
    let retries = 0;
    bus.on('reconnecting', (e) => { if (e.connection === 'socketio') retries++; });
    await bus.connect();
    while (retries < 2) await new Promise((r) => setTimeout(r, 5));
    await bus.disconnect();
    console.log('retried', retries >= 2);
  `);
  assert.equal(r.alive, false, `process hung after disconnect(): ${r.out} ${r.err}`);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /retried true/);
});

test('a client connected to the hub keeps the process alive until disconnect()', async (t) => {
  const hub = await Hub.start();
  t.after(() => hub.stop());
  const r = await runChild(`
    const bus = new EventBusClient({ serviceName: 'alive', redis: { url: REDIS_URL }, logLevel: 'error',
      client: { url: ${JSON.stringify(hub.url)}, authToken: ${JSON.stringify(hub.token)}, timeout: 3000 } });
    await bus.connect();
    await bus.joinRoom('r');
    console.log('joined');
  `, { marker: 'joined', aliveAfter: 500 });
  assert.match(r.out, /joined/, r.err);
  assert.equal(r.alive, true, `exited early: ${r.code} ${r.err}`);
});
