/**
 * @shared-infra/event-bus 2.x: the TS package's API on the Rust core.
 *
 * This file only converts between JavaScript and the native addon (bindings-node/src/).
 * Validation, options, config, channel choice, the envelope, glob matching, filters, timeouts,
 * retries, counters and log lines are the core's: options and config cross as JSON text the
 * core judges, and its errors arrive with their `code` and message (see mapError). What stays
 * here is what JSON cannot carry (functions, symbols, BigInts, cycles) and what only JS has
 * (handlers, Buffers, V8 memory figures). See index.d.ts for the documented types.
 *
 * Bridge notes:
 * - Data is serialized here with JSON.stringify and crosses as text; received events cross as
 *   one JSON array per batch, parsed with one JSON.parse (cheaper than converting each event
 *   to JS objects natively).
 * - Publishes made in the same tick are coalesced into native calls (publishMany): one at the
 *   end of the tick, or earlier each time 256 events or 256 KB have gathered, so the core
 *   writes while the tick goes on. Each call hands its events to the core (which encodes
 *   them on its own threads, one call after the other) before it returns.
 * - Handlers run here, on the JS thread; each outcome (return, throw, resolve, reject) is
 *   reported to the core, which applies timeout and retry.
 * - A connected client keeps the process alive (a ref'd timer, like an ioredis socket);
 *   after disconnect(), or without connect(), nothing does.
 * - Rooms: the Socket.IO hub connection (`client` config) is the core's; events the hub
 *   forwards reach the handlers through the same queue as Redis ones, and its state changes
 *   come as the same Node events (connection 'socketio').
 */
'use strict';

const { EventEmitter } = require('node:events');
const native = require('./native');

// ---------------------------------------------------------------------------------------------
// Constants and small utilities (same names and shapes as 1.0.0)
// ---------------------------------------------------------------------------------------------

const SocketEvents = Object.freeze({
  CONNECT: 'connect',
  DISCONNECT: 'disconnect',
  ERROR: 'error',
  IDENTIFY: 'identify',
  SUBSCRIBE: 'subscribe',
  UNSUBSCRIBE: 'unsubscribe',
  EVENT: 'event',
  JOIN_ROOM: 'join_room',
  LEAVE_ROOM: 'leave_room',
  PING: 'ping',
  PONG: 'pong',
});

/** Runtime companion of the `LogLevel` type. */
const LogLevel = Object.freeze({ DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' });

/**
 * The 1.0.0 logger: `[ISO time] [LEVEL] [serviceName] message args...` on the console. The
 * line (and whether the level lets it through) is the core's; this class only turns the
 * arguments into text.
 */
class Logger {
  constructor(level = 'info', serviceName = 'event-bus') {
    this.level = level;
    this.serviceName = serviceName;
  }

  debug(message, ...args) {
    this._log('debug', message, ...args);
  }

  info(message, ...args) {
    this._log('info', message, ...args);
  }

  warn(message, ...args) {
    this._log('warn', message, ...args);
  }

  error(message, error, ...args) {
    if (error instanceof Error) {
      this._log('error', message, { error: error.message, stack: error.stack }, ...args);
    } else if (error) {
      this._log('error', message, error, ...args);
    } else {
      this._log('error', message, ...args);
    }
  }

  setLevel(level) {
    this.level = level;
  }

  getLevel() {
    return this.level;
  }

  _log(level, message, ...args) {
    const parts = args.map((arg) => {
      if (typeof arg === 'object') {
        try {
          return JSON.stringify(arg, null, 2);
        } catch {
          return String(arg);
        }
      }
      return String(arg);
    });
    const text = [message, ...parts].join(' ');
    const line = native.formatLogLine(String(this.level), level, String(this.serviceName), text, this._json === true);
    if (line === null) return;
    if (level === 'error') console.error(line);
    else if (level === 'warn') console.warn(line);
    else console.log(line);
  }
}

/** The 1.0.0 validation error. */
class ValidationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ValidationError';
    this.code = 'VALIDATION_ERROR';
    Object.setPrototypeOf(this, ValidationError.prototype);
  }
}

/**
 * The one place that turns native errors into the errors this package throws. Native errors
 * already carry the core's `code` and message; a validation error becomes a `ValidationError`
 * (the 1.0.0 class, so `instanceof` keeps working).
 */
function mapError(err) {
  if (err instanceof Error && err.code === 'VALIDATION_ERROR' && !(err instanceof ValidationError)) {
    return new ValidationError(err.message);
  }
  return err;
}

function callNative(fn, ...args) {
  try {
    return fn(...args);
  } catch (err) {
    throw mapError(err);
  }
}

/** The core's not-connected error (the connection is checked here, without a native call). */
function notConnected() {
  try {
    native.notConnected();
  } catch (err) {
    return err;
  }
  throw new Error('native notConnected() did not throw');
}

/** A short description of anything a handler threw or rejected with. */
function describeFailure(reason) {
  try {
    if (reason instanceof Error) return String(reason.message || reason.name || 'Error');
    return `handler failed with a non-Error value: ${String(reason)}`;
  } catch {
    // A getter or toString that throws (or a revoked Proxy): say what we can.
    return `handler failed with a value of type ${typeof reason} that cannot be described`;
  }
}

/** `JSON.stringify(value)`, or a ValidationError saying why it cannot be. */
function toJson(value, what) {
  const t = typeof value;
  if (t === 'function' || t === 'symbol') {
    throw new ValidationError(`${what} must be JSON-serializable (got a ${t})`);
  }
  let s;
  try {
    s = JSON.stringify(value);
  } catch (err) {
    throw new ValidationError(`${what} must be JSON-serializable: ${err && err.message}`);
  }
  return s === undefined ? 'null' : s;
}

/** `matchesPattern(pattern, channel)`: Redis's glob semantics, byte for byte. */
function matchesPattern(pattern, channel) {
  if (typeof pattern !== 'string' || typeof channel !== 'string') return false;
  return native.matchesPattern(pattern, channel);
}

// ---------------------------------------------------------------------------------------------
// EventValidator: the 1.0.0 class; the rules run in the core
// ---------------------------------------------------------------------------------------------

class EventValidator {
  constructor(maxEventSize = 1024 * 1024, maxDataSize = 512 * 1024) {
    this.maxEventSize = maxEventSize;
    this.maxDataSize = maxDataSize;
  }

  validateEvent(event) {
    callNative(native.validateEvent, toJson(event, 'Event'), this.maxEventSize, this.maxDataSize);
  }

  // The single-value rules take strings: a value of another type cannot reach the core.

  validateEventType(eventType) {
    if (typeof eventType !== 'string') throw new ValidationError('Event type must be a string');
    callNative(native.validateEventType, eventType);
  }

  validateMetadata(metadata) {
    callNative(native.validateMetadata, metadata === undefined ? undefined : toJson(metadata, 'Metadata'));
  }

  validateTimestamp(timestamp) {
    if (typeof timestamp !== 'string') throw new ValidationError('Timestamp must be a string');
    callNative(native.validateTimestamp, timestamp);
  }

  validateId(id, fieldName) {
    if (typeof id !== 'string') throw new ValidationError(`${fieldName} must be a string`);
    callNative(native.validateId, id, String(fieldName));
  }

  validateEventSize(event) {
    const size = Buffer.byteLength(toJson(event, 'Event'), 'utf8');
    callNative(native.validateSizes, size, 0, this.maxEventSize, Infinity);
  }

  validateDataSize(data) {
    const size = Buffer.byteLength(toJson(data, 'Event data'), 'utf8');
    callNative(native.validateSizes, 0, size, Infinity, this.maxDataSize);
  }

  validateEventData(eventType, data) {
    callNative(native.validateEventData, String(eventType), toJson(data, 'Event data'));
  }

  setMaxEventSize(maxEventSize) {
    this.maxEventSize = maxEventSize;
  }

  setMaxDataSize(maxDataSize) {
    this.maxDataSize = maxDataSize;
  }
}

// ---------------------------------------------------------------------------------------------
// EventBusClient
// ---------------------------------------------------------------------------------------------

// The publishes queued in one tick go to the core in one native call once this many are
// waiting (or these many bytes), so the core writes them while the tick makes the rest.
const EARLY_FLUSH = 256;
const EARLY_FLUSH_BYTES = 256 * 1024;

/**
 * Options as JSON text for the core, which judges them; `''` for none (so a publish without
 * options costs no JSON). Only what JSON cannot carry is refused here: a cycle, a BigInt, and
 * (with `strict`) a function or symbol, which JSON.stringify would drop silently.
 */
function optionsJson(options, what, strict) {
  if (options === undefined || options === null) return '';
  if (typeof options === 'object' && !Array.isArray(options)) {
    let empty = true;
    for (const _ in options) {
      empty = false;
      break;
    }
    if (empty) return '';
  }
  let s;
  try {
    s = JSON.stringify(options, strict ? refuseFunctions : undefined);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(`${what} must be JSON-serializable (${err.message})`);
    throw new ValidationError(`${what} must be JSON-serializable: ${err && err.message}`);
  }
  if (s === undefined) throw new ValidationError(`${what} must be JSON-serializable (got a ${typeof options})`);
  return s;
}

function refuseFunctions(key, value) {
  const t = typeof value;
  if (t === 'function' || t === 'symbol') throw new ValidationError(key === '' ? `got a ${t}` : `${key} is a ${t}`);
  return value;
}

/**
 * Turn `(eventType, data, options)` into what the core takes, or throw a ValidationError for
 * what cannot reach it (a type that is not a string, data or options JSON cannot carry).
 */
function preparePublish(eventType, data, options) {
  if (typeof eventType !== 'string') throw new ValidationError('Event type must be a string');
  const json = data === undefined || data === null ? 'null' : toJson(data, 'Event data');
  return { type: eventType, json, opts: optionsJson(options, 'Publish options', true) };
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
const { STATE_PENDING, STATE_OK, STATE_RUNNING } = native;

/** PEM text from a Buffer or Uint8Array (what fs.readFileSync returns); anything else as is. */
function pemText(v) {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8') : v;
}

/**
 * `config` with `redis.tls.ca` as text: ioredis users pass the CA as a Buffer
 * (`fs.readFileSync(path)`), which JSON would turn into `{type: 'Buffer', data: [...]}`.
 */
function withTextCa(config) {
  const redis = config && config.redis;
  const tls = redis && redis.tls;
  if (!tls || typeof tls !== 'object' || tls.ca === undefined) return config;
  const ca = Array.isArray(tls.ca) ? tls.ca.map(pemText) : pemText(tls.ca);
  return { ...config, redis: { ...redis, tls: { ...tls, ca } } };
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
    this._keepAlive = null;
    // Mirrors the native client's isConnected() (set by connect() and disconnect(), the only
    // ways it changes), so publish() does not pay a native call (~0.8 µs) to check it.
    this._connected = false;
    // Publishes of the current tick, flushed together: parallel arrays (no object per
    // publish), the first three as publishMany takes them.
    this._pqTypes = [];
    this._pqDatas = [];
    this._pqOpts = [];
    this._pqResolves = [];
    this._pqRejects = [];
    this._pqBytes = 0;
    this._pqScheduled = false;
    // Async handler successes, reported together.
    this._okq = [];
    this._okqScheduled = false;
    // > 0 while a handler runs synchronously (its body up to its first await): a disconnect()
    // made there comes from a handler, which disconnect() must not wait for.
    this._inHandler = 0;
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
  }

  // ----- lifecycle ---------------------------------------------------------------------------

  async connect() {
    try {
      await this._native.connect();
    } catch (err) {
      throw mapError(err);
    }
    this._connected = this._native.isConnected();
    if (!this._keepAlive) this._keepAlive = setInterval(() => {}, 0x7fffffff);
    LIVE.add(this);
  }

  async disconnect() {
    if (this._pqTypes.length) this._flushPublishes();
    // From here on publish() and subscribe() reject, as the core's do once its disconnect runs.
    this._connected = false;
    const fromHandler = this._inHandler > 0;
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
    return new Promise((resolve, reject) => {
      const n = this._pqTypes.push(p.type);
      this._pqDatas.push(p.json);
      this._pqOpts.push(p.opts);
      this._pqResolves.push(resolve);
      this._pqRejects.push(reject);
      this._pqBytes += p.json.length;
      // A long run of publishes in one tick goes out in chunks as it grows, so the core
      // writes the first chunk while this tick makes the rest (still in call order).
      if (n >= EARLY_FLUSH || this._pqBytes >= EARLY_FLUSH_BYTES) {
        this._flushPublishes();
      } else if (!this._pqScheduled) {
        this._pqScheduled = true;
        process.nextTick(() => this._flushPublishes());
      }
    });
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
        if (!item || typeof item !== 'object') throw new ValidationError('Event type must be a string');
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
      let out;
      try {
        out = JSON.parse(await this._native.publishMany(types, datas, opts));
      } catch (err) {
        throw mapError(err);
      }
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

  _flushPublishes() {
    this._pqScheduled = false;
    const types = this._pqTypes;
    const n = types.length;
    if (n === 0) return;
    const datas = this._pqDatas;
    const opts = this._pqOpts;
    const resolves = this._pqResolves;
    const rejects = this._pqRejects;
    this._pqTypes = [];
    this._pqDatas = [];
    this._pqOpts = [];
    this._pqResolves = [];
    this._pqRejects = [];
    this._pqBytes = 0;
    let promise;
    try {
      promise = this._native.publishMany(types, datas, opts);
    } catch (err) {
      const e = mapError(err);
      for (let i = 0; i < n; i++) rejects[i](e);
      return;
    }
    promise.then(
      (json) => {
        const results = JSON.parse(json);
        for (let i = 0; i < n; i++) resolves[i](results[i]);
      },
      (err) => {
        const e = mapError(err);
        for (let i = 0; i < n; i++) rejects[i](e);
      }
    );
  }

  // ----- subscribing -------------------------------------------------------------------------

  async subscribe(pattern, handler, options = {}) {
    if (!this._connected) throw notConnected();
    if (typeof pattern !== 'string') throw new ValidationError('Subscription pattern must be a string');
    if (typeof handler !== 'function') throw new ValidationError('Subscription handler must be a function');
    const optsJson = optionsJson(options, 'Subscription options', false);
    const slot = this._nextSlot++;
    this._handlers.set(slot, handler);
    let info;
    try {
      info = JSON.parse(await this._native.subscribe(pattern, slot, optsJson));
    } catch (err) {
      this._handlers.delete(slot);
      throw mapError(err);
    }
    const sub = {
      id: info.id,
      pattern,
      handler,
      options: options && typeof options === 'object' ? options : {},
      createdAt: new Date(info.createdAt),
      active: true,
    };
    if (options && options.filter) sub.filter = options.filter;
    this._subs.set(sub.id, { sub, slot });
    return sub;
  }

  async unsubscribe(subscriptionId) {
    if (typeof subscriptionId !== 'string') return false;
    let removed;
    try {
      removed = await this._native.unsubscribe(subscriptionId);
    } catch (err) {
      throw mapError(err);
    }
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
      if (batch.tokens.length === 0) return;
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
  }

  /** Start one handler; sync successes go to `ok`, async outcomes are reported when settled. */
  _runOne(slot, token, event, ok) {
    const handler = this._handlers.get(slot);
    if (handler === undefined) {
      ok.push(token); // unsubscribed meanwhile: nothing to run
      return;
    }
    try {
      const r = this._call(handler, event);
      if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
        r.then(
          () => this._settleOk(token),
          (reason) => this._fail(token, reason)
        );
      } else {
        ok.push(token);
      }
    } catch (err) {
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
      try {
        r = this._call(handler, events[k]);
      } catch (err) {
        this._native.reportFailure(g, i, describeFailure(err));
        continue;
      }
      if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
        this._native.groupWake(g);
        const next = k + 1;
        let settled = false;
        const resume = () => {
          if (settled) return;
          settled = true;
          this._runGroup(g, states, slots, events, first, next, end);
        };
        try {
          r.then(
            () => {
              Atomics.store(states, i, STATE_OK);
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
      Atomics.store(states, i, STATE_OK);
    }
    this._native.groupEnd(g);
  }

  /** Call a handler, counting it as running until it returns (its body up to its first await). */
  _call(handler, event) {
    this._inHandler++;
    try {
      return handler(event);
    } finally {
      this._inHandler--;
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
        err.code = 'CONNECTION_ERROR';
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
    try {
      await this._native.joinRoom(room);
    } catch (err) {
      throw mapError(err);
    }
  }

  async leaveRoom(room) {
    checkRoom(room);
    try {
      await this._native.leaveRoom(room);
    } catch (err) {
      throw mapError(err);
    }
  }

  async getRoomMembers(room) {
    checkRoom(room);
    try {
      return await this._native.getRoomMembers(room);
    } catch (err) {
      throw mapError(err);
    }
  }

  // ----- monitoring --------------------------------------------------------------------------

  async healthCheck() {
    try {
      return JSON.parse(await this._native.healthCheck());
    } catch (err) {
      throw mapError(err);
    }
  }

  async getStats() {
    const s = JSON.parse(callNative(() => this._native.stats()));
    const m = process.memoryUsage();
    s.memoryUsage = { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, rss: m.rss };
    return s;
  }
}

/** Create an Event Bus client with configuration. */
function createEventBusClient(config) {
  return new EventBusClient(config);
}

Object.defineProperty(exports, '__esModule', { value: true });
exports.EventBusClient = EventBusClient;
exports.default = EventBusClient;
exports.createEventBusClient = createEventBusClient;
exports.Logger = Logger;
exports.LogLevel = LogLevel;
exports.EventValidator = EventValidator;
exports.ValidationError = ValidationError;
exports.SocketEvents = SocketEvents;
exports.matchesPattern = matchesPattern;
