'use strict';
// Shared helpers of the Node tests: a real Redis (REDIS_URL or 127.0.0.1:6379) with names
// unique to each test, or the in-process memory transport.
const { randomUUID } = require('node:crypto');
const path = require('node:path');

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const PKG = path.resolve(__dirname, '..', '..');

/** A unique, glob-safe name prefix. */
function uniq(prefix = 't') {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Config for `transport`: 'redis' (the shared server) or 'memory' (an isolated broker). */
function config(transport, extra = {}) {
  const redis = transport === 'memory' ? { url: `memory://${uniq('m')}` } : { url: REDIS_URL };
  return { serviceName: 'node-test', redis, logLevel: 'error', ...extra };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wait until `cond()` is truthy (polling), or fail after `ms`. */
async function waitFor(cond, ms = 3000, what = 'condition') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

module.exports = { REDIS_URL, PKG, uniq, config, sleep, waitFor, TRANSPORTS: ['redis', 'memory'] };
