/**
 * Host values to the JSON text the core takes. The core judges data, options and config; what
 * stays here is only what JSON itself cannot carry (functions, symbols, BigInts, cycles), which
 * is refused with a ValidationError, and the one host type turned into text first (a PEM CA
 * passed as a Buffer).
 */
'use strict';

const { ValidationError } = require('./errors');

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

module.exports = { toJson, optionsJson, withTextCa };
