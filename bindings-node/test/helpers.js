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

// ---------------------------------------------------------------------------------------------
// The Socket.IO test hub (tests/fixtures/socketio-hub/hub.js), for the rooms tests
// ---------------------------------------------------------------------------------------------

const HUB_DIR = path.join(PKG, 'tests', 'fixtures', 'socketio-hub');
const HUB_TOKEN = 'hub-secret';

/** Install the hub's dependencies (`npm ci`) when they are missing. */
function ensureHubDeps() {
  const fs = require('node:fs');
  if (fs.existsSync(path.join(HUB_DIR, 'node_modules', 'socket.io'))) return;
  const { spawnSync } = require('node:child_process');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--prefix', HUB_DIR, '--no-audit', '--no-fund'], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`npm ci --prefix ${HUB_DIR} failed (${r.status}): ${r.error || ''}${r.stdout}${r.stderr}`);
  }
}

/** A free TCP port on 127.0.0.1 with nothing listening on it (at the time of the call). */
function freePort() {
  const net = require('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** `method path` on 127.0.0.1:port, the body parsed as JSON. */
function httpJson(port, method, urlPath) {
  const http = require('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`${method} ${urlPath}: ${res.statusCode} ${body}`));
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The test hub as a child process (stdin piped: it exits when this process does). `port` 0
 * picks a free one; `args` are extra hub flags (`--transports polling`, ...).
 */
class Hub {
  constructor({ port = 0, token = HUB_TOKEN, args = [] } = {}) {
    this.port = port;
    this.token = token;
    this.args = args;
    this.child = null;
    this.stderr = '';
  }

  static async start(opts) {
    const hub = new Hub(opts);
    await hub.spawn();
    return hub;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Start the hub process (again, on the same port once it has one). */
  spawn() {
    ensureHubDeps();
    const { spawn } = require('node:child_process');
    const args = [path.join(HUB_DIR, 'hub.js'), '--port', String(this.port), '--token', this.token, '--redis', REDIS_URL, ...this.args];
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    return new Promise((resolve, reject) => {
      let out = '';
      let done = false;
      const onData = (d) => {
        out += d;
        const nl = out.indexOf('\n');
        if (nl < 0 || done) return;
        done = true;
        const m = /^READY (\d+)$/.exec(out.slice(0, nl).trim());
        if (!m) return reject(new Error(`hub did not start: ${JSON.stringify(out)} ${this.stderr}`));
        this.port = Number(m[1]);
        resolve(this);
      };
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', onData);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d) => (this.stderr += d));
      child.on('exit', (code, signal) => {
        if (!done) {
          done = true;
          reject(new Error(`hub exited before READY (${code ?? signal}): ${this.stderr}`));
        }
      });
    });
  }

  /** Kill the hub at once (SIGKILL, like a crash) and wait for the process to be gone. */
  kill() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.on('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** Stop the hub (alias of kill, for cleanup). */
  stop() {
    return this.kill();
  }

  /** GET /state. */
  state() {
    return httpJson(this.port, 'GET', '/state');
  }

  /** The hub's view of the socket of `serviceName` (undefined when it has none). */
  async socketOf(serviceName) {
    const s = await this.state();
    return s.sockets.find((x) => x.serviceName === serviceName);
  }

  /** POST /disconnect-all. */
  disconnectAll() {
    return httpJson(this.port, 'POST', '/disconnect-all');
  }
}

/** The `client` config for `hub`: short reconnect delays and timeout, as the tests want. */
function hubClient(hub, extra = {}) {
  const url = typeof hub === 'string' ? hub : hub.url;
  return { url, authToken: HUB_TOKEN, reconnectionDelay: 50, reconnectionDelayMax: 200, timeout: 3000, ...extra };
}

/**
 * Run `body` in a child process. It must exit by itself within `limitMs`; or, with `aliveAfter`,
 * it is expected to still run `aliveAfter` ms after printing `marker` (then it is killed).
 */
function runChild(body, { limitMs = 15000, marker, aliveAfter } = {}) {
  const script = `
    const { EventBusClient } = require(${JSON.stringify(PKG)});
    const REDIS_URL = ${JSON.stringify(REDIS_URL)};
    (async () => { ${body} })().catch((e) => { console.error('FAILED', e); process.exit(3); });
  `;
  return new Promise((resolve) => {
    const child = require('node:child_process').spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timers = [];
    const kill = () => {
      child.kill('SIGKILL');
      resolve({ alive: true, out, err });
    };
    child.stdout.on('data', (d) => {
      out += d;
      if (marker && out.includes(marker) && timers.length === 1) timers.push(setTimeout(kill, aliveAfter));
    });
    child.stderr.on('data', (d) => (err += d));
    timers.push(setTimeout(kill, limitMs));
    child.on('exit', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ alive: false, code, signal, out, err });
    });
  });
}

module.exports = {
  runChild,
  REDIS_URL,
  PKG,
  uniq,
  config,
  sleep,
  waitFor,
  TRANSPORTS: ['redis', 'memory'],
  HUB_DIR,
  HUB_TOKEN,
  ensureHubDeps,
  freePort,
  httpJson,
  Hub,
  hubClient,
};
