/**
 * Publishing on the JS side: turning `(eventType, data, options)` into what the core takes, and
 * the per-tick queue that coalesces publishes into native calls.
 *
 * Publishes made in the same tick go to the core together (NativeClient.publishMany): at the
 * end of the tick, or earlier each time EARLY_FLUSH events or EARLY_FLUSH_BYTES bytes have
 * gathered, so the core writes while the tick goes on. Each call hands its events to the core
 * (which encodes them on its own threads, one call after the other) before it returns, so call
 * order is publish order.
 */
'use strict';

const native = require('./native');
const { mapError, callNative } = require('./errors');
const { toJson, optionsJson } = require('./json');

// The publishes queued in one tick go to the core in one native call once this many are
// waiting (or these many bytes), so the core writes them while the tick makes the rest.
const EARLY_FLUSH = 256;
const EARLY_FLUSH_BYTES = 256 * 1024;

/**
 * Turn `(eventType, data, options)` into what the core takes, or throw a ValidationError for
 * what cannot reach it (a type that is not a string, data or options JSON cannot carry).
 */
function preparePublish(eventType, data, options) {
  // A type that is not a string cannot cross as one: the core's rule says why.
  if (typeof eventType !== 'string') callNative(native.validateEventType, eventType);
  const json = data === undefined || data === null ? 'null' : toJson(data, 'Event data');
  return { type: eventType, json, opts: optionsJson(options, 'Publish options', true) };
}

/**
 * The publishes of the current tick, for one native client: parallel arrays (no object per
 * publish), the first three as publishMany takes them, and each publish's promise settlers.
 */
class PublishQueue {
  constructor(nativeClient) {
    this._native = nativeClient;
    this._empty();
    this._scheduled = false;
  }

  /** Start a new, empty set of arrays (the old ones belong to the native call made of them). */
  _empty() {
    this._types = [];
    this._datas = [];
    this._opts = [];
    this._resolves = [];
    this._rejects = [];
    this._bytes = 0;
  }

  /** Queue one prepared publish (see preparePublish); its result settles `resolve`/`reject`. */
  add(p, resolve, reject) {
    const n = this._types.push(p.type);
    this._datas.push(p.json);
    this._opts.push(p.opts);
    this._resolves.push(resolve);
    this._rejects.push(reject);
    this._bytes += p.json.length;
    // A long run of publishes in one tick goes out in chunks as it grows, so the core
    // writes the first chunk while this tick makes the rest (still in call order).
    if (n >= EARLY_FLUSH || this._bytes >= EARLY_FLUSH_BYTES) {
      this.flush();
    } else if (!this._scheduled) {
      this._scheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Hand everything queued to the core now (nothing if the queue is empty). */
  flush() {
    this._scheduled = false;
    const types = this._types;
    const n = types.length;
    if (n === 0) return;
    const datas = this._datas;
    const opts = this._opts;
    const resolves = this._resolves;
    const rejects = this._rejects;
    this._empty();
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
}

module.exports = { preparePublish, PublishQueue };
