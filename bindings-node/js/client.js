/**
 * EventBusClient: the 1.0.0 client class on a native client (bindings-node/src/). It converts
 * between JavaScript and the addon and runs what only JS can run; the rules (options, config,
 * channels, envelope, filters, timeouts, retries, counters, log lines) are the core's.
 *
 * - Publishing: see publish.js (preparation and the per-tick queue).
 * - Receiving: events cross as one JSON array per batch, parsed with one JSON.parse (cheaper
 *   than converting each event to JS objects natively). Handlers run here, on the JS thread;
 *   each outcome (return, throw, resolve, reject) is reported to the core, which applies
 *   timeout and retry.
 * - A connected client keeps the process alive (a ref'd timer, like an ioredis socket); after
 *   disconnect(), or without connect(), nothing does.
 * - Rooms: the Socket.IO hub connection (`client` config) is the core's; events the hub
 *   forwards reach the handlers through the same queue as Redis ones, and its state changes
 *   come as the same Node events (connection 'socketio').
 */
'use strict';

const { AsyncLocalStorage } = require('node:async_hooks');
const { EventEmitter } = require('node:events');
const native = require('./native');
const { ValidationError, mapError, callNative, awaitNative, notConnected, describeFailure } = require('./errors');
const { Logger } = require('./logger');
const { optionsJson, withTextCa } = require('./json');
const { preparePublish, PublishQueue } = require('./publish');

/** The arguments of the dead-letter calls as the addon takes them (the core checks the rest). */
function deadLetterArgs(type, options) {
  if (typeof type !== 'string') throw new ValidationError('Event type must be a string');
  const o = options && typeof options === 'object' ? options : {};
  if (typeof o.group !== 'string') throw new ValidationError('options.group must be a string');
  const count = o.count === undefined || o.count === null ? undefined : o.count;
  if (count !== undefined && !(Number.isInteger(count) && count >= 0 && count <= 0xffffffff)) {
    throw new ValidationError('options.count must be a non-negative integer');
  }
  return { group: o.group, count };
}

/** A room name must be a string (the core checks the rest: not empty). */
function checkRoom(room) {
  if (typeof room !== 'string') throw new ValidationError('Room name must be a string');
}

/**
 * Connected clients stay reachable until disconnect(), as an ioredis client is kept by its open
 * sockets. The native side's callbacks hold their client only weakly, so a client dropped after
 * disconnect() (or never connected) can be garbage-collected with its native half.
 */
const LIVE = new Set();

/** Event states in a group's shared bytes (NativeClient.groupStates), as the core defines them. */
const { STATE_PENDING, STATE_OK, STATE_RUNNING, STATE_GIVEN_UP } = native;

/** Most events of one group (the core's MAX_HANDLER_BATCH): keys `group * GROUP_KEY + index`. */
const GROUP_KEY = 1024;

/**
 * The handler run the current code belongs to (its HandlerContext), across its awaits: how
 * disconnect() knows that a handler of this client calls it, before or after an await.
 *
 * Only from Node 24 on, where AsyncLocalStorage rides on AsyncContextFrame and costs little.
 * Before, it is built on async_hooks' promise hooks, which slow every promise of the process
 * once it is used: on Node 20, end-to-end into a handler in one process fell from 133k-149k to
 * 111k-113k events/s with it, and ioredis in the same process from 52k-61k to 43k-45k. There,
 * a handler is recognised during the synchronous part of its call (`_syncCtx`), before its
 * first await; after one, disconnect() waits for it like for any running handler (at most
 * disconnectTimeout).
 */
const IN_HANDLER = Number(process.versions.node.split('.')[0]) >= 24 ? new AsyncLocalStorage() : null;

/** Why a handler's signal is aborted: the core stopped waiting for it. */
function givenUpReason() {
  return new DOMException(
    'The event bus stopped waiting for this handler: its timeout passed',
    'TimeoutError'
  );
}

/**
 * The second argument of every handler: `signal`, an AbortSignal aborted when the core stops
 * waiting for this run because its subscription's `timeout` passed.
 * The controller is made on first use, so a handler that never reads `signal` costs none.
 */
class HandlerContext {
  constructor(client) {
    this._client = client;
    this._ctl = null;
    this._reason = undefined;
    // The handler returned (sync) or its promise settled: code it started later is not "inside".
    this._done = false;
  }

  get signal() {
    if (this._ctl === null) {
      this._ctl = new AbortController();
      if (this._reason !== undefined) this._ctl.abort(this._reason);
    }
    return this._ctl.signal;
  }

  _abort() {
    if (this._reason !== undefined || this._done) return;
    this._reason = givenUpReason();
    if (this._ctl !== null) this._ctl.abort(this._reason);
  }
}

class EventBusClient extends EventEmitter {
  /**
   * @param {import('./index').EventBusConfig} config
   */
  constructor(config) {
    super();
    let json;
    try {
      json = JSON.stringify(config === undefined || config === null ? {} : withTextCa(config));
    } catch (err) {
      const e = new Error(`EventBusConfig must be JSON-serializable: ${err && err.message}`);
      e.code = 'INVALID_ARGUMENT';
      throw e;
    }
    this._logger = new Logger(
      (config && config.logLevel) || 'info',
      (config && config.serviceName) || 'event-bus'
    );
    // The client's own lines follow the config's format, as the core's do.
    this._logger._json = Boolean(config && config.logFormat === 'json');
    this._handlers = new Map(); // slot -> handler
    this._subs = new Map(); // subscription id -> { sub, slot }
    this._nextSlot = 1;
    // The handler whose synchronous part is running (see IN_HANDLER), where that is all we know.
    this._syncCtx = undefined;
    this._keepAlive = null;
    // Mirrors the native client's isConnected() (set by connect() and disconnect(), the only
    // ways it changes), so publish() does not pay a native call to check it.
    this._connected = false;
    // Async handler successes, reported together.
    this._okq = [];
    this._okqScheduled = false;
    // Handler runs still going after they returned a promise, by token (events run on their
    // own) or by `group * GROUP_KEY + index`: the core may tell us to abort their signal.
    this._running = new Map();
    this._runningGroups = new Map();
    // The threadsafe functions keep their JS callbacks alive for as long as the native client
    // lives, and the native client lives as long as this object: a strong `this` in them would
    // be a cycle through a GC root, and no client would ever be collected.
    const self = new WeakRef(this);
    this._native = callNative(
      (j) =>
        new native.NativeClient(
          j,
          () => {
            const c = self.deref();
            if (c !== undefined) c._drain();
          },
          (s) => {
            const c = self.deref();
            if (c !== undefined) c._onState(s);
          }
        ),
      json
    );
    // Publishes of the current tick, flushed together (see publish.js).
    this._publishes = new PublishQueue(this._native);
  }

  // ----- lifecycle ---------------------------------------------------------------------------

  async connect() {
    await awaitNative(() => this._native.connect());
    this._connected = this._native.isConnected();
    if (!this._keepAlive) this._keepAlive = setInterval(() => {}, 0x7fffffff);
    LIVE.add(this);
  }

  async disconnect() {
    this._publishes.flush();
    // From here on publish() and subscribe() reject, as the core's do once its disconnect runs.
    this._connected = false;
    // From one of this client's handlers (before or after its awaits), while it runs: the
    // core must not wait for handlers, that one cannot finish first.
    const ctx = IN_HANDLER ? IN_HANDLER.getStore() : this._syncCtx;
    const fromHandler = ctx !== undefined && ctx._client === this && !ctx._done;
    try {
      await this._native.disconnect(fromHandler);
    } catch (err) {
      throw mapError(err);
    } finally {
      this._connected = this._native.isConnected();
      for (const { sub } of this._subs.values()) sub.active = false;
      this._subs.clear();
      this._handlers.clear();
      if (this._keepAlive) {
        clearInterval(this._keepAlive);
        this._keepAlive = null;
      }
      LIVE.delete(this);
    }
  }

  isConnected() {
    return this._connected;
  }

  // ----- publishing --------------------------------------------------------------------------

  // Not an async function: that would wrap the promise below in a second one.
  publish(eventType, data, options = {}) {
    if (!this._connected) return Promise.reject(notConnected());
    let p;
    try {
      p = preparePublish(eventType, data, options);
    } catch (err) {
      return Promise.resolve(this._jsFailure(err));
    }
    return new Promise((resolve, reject) => this._publishes.add(p, resolve, reject));
  }

  publishToRoom(room, eventType, data, options = {}) {
    return this.publish(eventType, data, { ...(options || {}), room });
  }

  publishToUser(userId, eventType, data, options = {}) {
    return this.publish(eventType, data, { ...(options || {}), userId });
  }

  broadcast(eventType, data, options = {}) {
    return this.publish(eventType, data, { ...(options || {}), broadcast: true });
  }

  /**
   * Publish many events, pipelined and in order: `[{ type, data, options }]` (or `eventType`).
   * Resolves to one PublishResult per item, in order.
   */
  async publishBatch(events) {
    if (!this._connected) throw notConnected();
    if (!Array.isArray(events)) throw new ValidationError('publishBatch expects an array');
    const results = new Array(events.length);
    const types = [];
    const datas = [];
    const opts = [];
    const slots = [];
    events.forEach((item, i) => {
      try {
        if (!item || typeof item !== 'object') callNative(native.validateEventType, undefined);
        const type = item.type !== undefined ? item.type : item.eventType;
        const p = preparePublish(type, item.data, item.options);
        types.push(p.type);
        datas.push(p.json);
        opts.push(p.opts);
        slots.push(i);
      } catch (err) {
        results[i] = this._jsFailure(err);
      }
    });
    if (slots.length) {
      const out = JSON.parse(await awaitNative(() => this._native.publishMany(types, datas, opts)));
      slots.forEach((slot, k) => {
        results[slot] = out[k];
      });
    }
    return results;
  }

  /**
   * A publish refused before it reached the core (see preparePublish): the core counts and
   * logs it like any failed publish and makes its result.
   */
  _jsFailure(err) {
    const code = (err && err.code) || 'VALIDATION_ERROR';
    const message = (err && err.message) || String(err);
    return JSON.parse(this._native.refusedPublish(code, message));
  }

  // ----- subscribing -------------------------------------------------------------------------

  /**
   * `pattern` is a Redis glob, or (durable subscriptions, `options.durable`) one exact event
   * type or an array of them; the core decides what each may be combined with.
   */
  async subscribe(pattern, handler, options = {}) {
    if (!this._connected) throw notConnected();
    const types = Array.isArray(pattern) ? pattern : undefined;
    if (types !== undefined) {
      if (!types.every((t) => typeof t === 'string')) {
        throw new ValidationError('Subscription event types must be strings');
      }
    } else if (typeof pattern !== 'string') {
      throw new ValidationError('Subscription pattern must be a string or an array of event types');
    }
    if (typeof handler !== 'function') throw new ValidationError('Subscription handler must be a function');
    const optsJson = optionsJson(options, 'Subscription options', false);
    const slot = this._nextSlot++;
    this._handlers.set(slot, handler);
    let info;
    try {
      info = JSON.parse(
        await this._native.subscribe(types === undefined ? pattern : '', slot, optsJson, types && [...types])
      );
    } catch (err) {
      this._handlers.delete(slot);
      throw mapError(err);
    }
    const sub = {
      id: info.id,
      pattern: types === undefined ? pattern : info.pattern,
      handler,
      options: options && typeof options === 'object' ? options : {},
      createdAt: new Date(info.createdAt),
      active: true,
    };
    if (options && options.filter) sub.filter = options.filter;
    if (types !== undefined) sub.types = [...types];
    this._subs.set(sub.id, { sub, slot });
    return sub;
  }

  async unsubscribe(subscriptionId) {
    if (typeof subscriptionId !== 'string') return false;
    const removed = await awaitNative(() => this._native.unsubscribe(subscriptionId));
    const entry = this._subs.get(subscriptionId);
    if (entry) {
      entry.sub.active = false;
      this._subs.delete(subscriptionId);
      this._handlers.delete(entry.slot);
    }
    return removed;
  }

  /** Called (through the weak threadsafe function) when events are waiting: run them all. */
  _drain() {
    let batch;
    let events;
    try {
      batch = this._native.takeBatch();
      if (batch.tokens.length === 0) {
        this._abortGivenUp(batch.aborts);
        return;
      }
      events = JSON.parse(batch.events);
    } catch (err) {
      this._logger.error('Failed to take events from the native queue', err);
      if (batch) for (const t of batch.tokens) this._fail(t, err);
      return;
    }
    const ok = [];
    const { slots, tokens, groups } = batch;
    const n = tokens.length;
    let i = 0;
    while (i < n) {
      const g = groups[i];
      if (g === 0) {
        this._runOne(slots[i], tokens[i], events[i], ok);
        i++;
        continue;
      }
      // An in-order batch of one subscription (contiguous): one handler after the other.
      let end = i + 1;
      while (end < n && groups[end] === g) end++;
      let states;
      try {
        // undefined: the client disconnected meanwhile, and the core failed the group.
        states = this._native.groupStates(g);
      } catch (err) {
        // Out of memory, in practice: the group's events fail (counted) rather than run.
        this._logger.error('Failed to share event states with the native side', err);
        this._native.groupEnd(g);
      }
      if (states !== undefined) this._runGroup(g, states, slots, events, i, i, end);
      i = end;
    }
    if (ok.length) this._native.completeOk(new Uint32Array(ok));
    this._abortGivenUp(batch.aborts);
  }

  /** Abort the signals of the handler runs the core gave up: pairs `group, id`. */
  _abortGivenUp(aborts) {
    for (let k = 0; k + 1 < aborts.length; k += 2) {
      const g = aborts[k];
      const ctx = g === 0 ? this._running.get(aborts[k + 1]) : this._runningGroups.get(g * GROUP_KEY + aborts[k + 1]);
      if (ctx !== undefined) ctx._abort();
    }
  }

  /** Start one handler; sync successes go to `ok`, async outcomes are reported when settled. */
  _runOne(slot, token, event, ok) {
    const handler = this._handlers.get(slot);
    if (handler === undefined) {
      ok.push(token); // unsubscribed meanwhile: nothing to run
      return;
    }
    const ctx = new HandlerContext(this);
    try {
      const r = this._call(handler, event, ctx);
      if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
        this._running.set(token, ctx);
        const end = () => {
          ctx._done = true;
          this._running.delete(token);
        };
        r.then(
          () => {
            end();
            this._settleOk(token);
          },
          (reason) => {
            end();
            this._fail(token, reason);
          }
        );
      } else {
        ctx._done = true;
        ok.push(token);
      }
    } catch (err) {
      ctx._done = true;
      this._fail(token, err);
    }
  }

  /**
   * Run the events [k, end) of group `g` (which starts at `first`) in order: sync handlers back
   * to back, a returned promise awaited before the next handler starts. `states` is the
   * group's state bytes, shared with the core (no native call per event): each event is
   * claimed there before it runs, and the run ends at the first the core gave up (after a
   * timeout the core calls the events JS has not claimed on their own, in order; or
   * unsubscribed), so each event runs once; a success is marked there too. The core is woken
   * to read the marks before a promise is awaited and when the run ends; a failure is
   * reported at once.
   */
  _runGroup(g, states, slots, events, first, k, end) {
    for (; k < end; k++) {
      const i = k - first;
      // Not claimed: the core gave up this event and the rest (it calls them on its own).
      if (Atomics.compareExchange(states, i, STATE_PENDING, STATE_RUNNING) !== STATE_PENDING) break;
      const handler = this._handlers.get(slots[k]);
      if (handler === undefined) {
        Atomics.store(states, i, STATE_OK); // unsubscribed meanwhile
        continue;
      }
      let r;
      const ctx = new HandlerContext(this);
      try {
        r = this._call(handler, events[k], ctx);
      } catch (err) {
        ctx._done = true;
        this._native.reportFailure(g, i, describeFailure(err));
        continue;
      }
      if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
        const key = g * GROUP_KEY + i;
        this._runningGroups.set(key, ctx);
        this._native.groupWake(g);
        const next = k + 1;
        let settled = false;
        const resume = () => {
          if (settled) return;
          settled = true;
          ctx._done = true;
          this._runningGroups.delete(key);
          this._runGroup(g, states, slots, events, first, next, end);
        };
        try {
          r.then(
            () => {
              this._storeOk(g, states, i);
              resume();
            },
            (reason) => {
              this._native.reportFailure(g, i, describeFailure(reason));
              resume();
            }
          );
        } catch (err) {
          // A thenable whose then() throws: count it as this handler's failure and go on.
          this._native.reportFailure(g, i, describeFailure(err));
          resume();
        }
        return;
      }
      ctx._done = true;
      this._storeOk(g, states, i);
    }
    this._native.groupEnd(g);
  }

  /**
   * Mark event `i` of group `g` a success; when the core gave it up meanwhile (its timeout
   * passed), report the late completion instead.
   */
  _storeOk(g, states, i) {
    if (Atomics.compareExchange(states, i, STATE_RUNNING, STATE_OK) === STATE_GIVEN_UP) {
      this._native.groupLate(g, i);
    }
  }

  /** Call a handler with its context, in its async context (see IN_HANDLER). */
  _call(handler, event, ctx) {
    if (IN_HANDLER) return IN_HANDLER.run(ctx, handler, event, ctx);
    const outer = this._syncCtx;
    this._syncCtx = ctx;
    try {
      return handler(event, ctx);
    } finally {
      this._syncCtx = outer;
    }
  }

  _settleOk(token) {
    this._okq.push(token);
    if (!this._okqScheduled) {
      this._okqScheduled = true;
      process.nextTick(() => {
        this._okqScheduled = false;
        const q = this._okq;
        this._okq = [];
        this._native.completeOk(new Uint32Array(q));
      });
    }
  }

  _fail(token, reason) {
    try {
      this._native.reportFailure(0, token, describeFailure(reason));
    } catch {
      // The native side never throws here; nothing sensible to do if it did.
    }
  }

  /** A connection state change from the core: emitted as a Node event. */
  _onState(json) {
    let ev;
    try {
      ev = JSON.parse(json);
    } catch {
      return;
    }
    const name = ev.type;
    try {
      if (name === 'error') {
        // Never emit 'error' without a listener: Node would throw it. The core logged it.
        if (this.listenerCount('error') === 0) return;
        const err = new Error(ev.message);
        // The core's code when it has one (DEAD_LETTERED, EVENTS_TRIMMED, ...).
        err.code = ev.code || 'CONNECTION_ERROR';
        err.connection = ev.connection;
        this.emit('error', err);
      } else {
        this.emit(name, ev);
      }
    } catch (err) {
      this._logger.error(`A '${name}' listener threw`, err);
    }
  }

  // ----- rooms (over the Socket.IO hub of the `client` config) -------------------------------
  //
  // Each call is one acknowledged request to the hub. Without `client` config, after
  // disconnect() and while the hub is unreachable they reject with CONNECTION_ERROR
  // `Socket.IO not connected`; an empty or non-string name with a ValidationError; a refusal by
  // the hub with PROTOCOL_ERROR. Joined rooms are rejoined after every reconnect by the core.

  async joinRoom(room) {
    checkRoom(room);
    await awaitNative(() => this._native.joinRoom(room));
  }

  async leaveRoom(room) {
    checkRoom(room);
    await awaitNative(() => this._native.leaveRoom(room));
  }

  async getRoomMembers(room) {
    checkRoom(room);
    return awaitNative(() => this._native.getRoomMembers(room));
  }

  // ----- dead letters (durable subscriptions) ------------------------------------------------
  //
  // Events a durable group gave up on after `maxDeliveries` failed deliveries; the core keeps
  // them in the type's dead-letter stream.

  /** The group's dead letters of `type`: `[{event, error, deliveries, failedAt, streamId, originalId}]`. */
  async deadLetters(type, options = {}) {
    const { group, count } = deadLetterArgs(type, options);
    return JSON.parse(await awaitNative(() => this._native.deadLetters(type, group, count)));
  }

  /** Put the group's dead letters of `type` back on the type's stream; resolves to how many. */
  async replayDeadLetters(type, options = {}) {
    const { group, count } = deadLetterArgs(type, options);
    return awaitNative(() => this._native.replayDeadLetters(type, group, count));
  }

  /** Delete the group's dead letters of `type`; resolves to how many. */
  async purgeDeadLetters(type, options = {}) {
    const { group } = deadLetterArgs(type, options);
    return awaitNative(() => this._native.purgeDeadLetters(type, group));
  }

  // ----- monitoring --------------------------------------------------------------------------

  async healthCheck() {
    return JSON.parse(await awaitNative(() => this._native.healthCheck()));
  }

  async getStats() {
    const s = JSON.parse(callNative(() => this._native.stats()));
    const m = process.memoryUsage();
    s.memoryUsage = { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, rss: m.rss };
    return s;
  }

  metrics() {
    return callNative(() => this._native.metrics());
  }
}

module.exports = { EventBusClient };
