'use strict';
// The fault proxy (tests/fault-proxy, binary `fault-proxy`) and a private redis-server behind it,
// for the fault tests. The binary is built with `cargo build -p event-bus-fault-proxy` the first
// time it is missing (CARGO_TARGET_DIR honoured; FAULT_PROXY_BIN points at a built one). Its
// control port takes one command a line and answers one line, `ok ...` or `err <reason>`:
// `latency 50 20`, `blackhole :sub`, `reset <service>:pub 40000`, `refuse 3000`, `heal`, `conns`
// (see tests/fault-proxy/src/lib.rs, `FaultProxy::command`).
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, spawnSync } = require('node:child_process');
const { PKG, freePort, waitFor } = require('./helpers');

const SERVER = process.env.REDIS_SERVER_BIN || 'redis-server';
const CLI = process.env.REDIS_CLI_BIN || 'redis-cli';

/** The path of the fault-proxy binary, built once if missing. */
function proxyBinary() {
  if (process.env.FAULT_PROXY_BIN) return process.env.FAULT_PROXY_BIN;
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(PKG, process.env.CARGO_TARGET_DIR)
    : path.join(PKG, 'target');
  const bin = path.join(target, 'debug', 'fault-proxy');
  if (!fs.existsSync(bin)) {
    const r = spawnSync(process.env.CARGO || 'cargo', ['build', '-p', 'event-bus-fault-proxy'], {
      cwd: PKG,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.status !== 0) throw new Error(`cargo build -p event-bus-fault-proxy failed (${r.status}): ${r.error || ''}`);
  }
  return bin;
}

/**
 * A private redis-server on a free port (stopped when the test ends). `restart(args)` kills it
 * and starts it again on the same port, with other arguments if given.
 */
async function privateRedis(t, args = []) {
  const port = await freePort();
  let proc = null;
  let current = args;
  const cli = (...a) => {
    const r = spawnSync(CLI, ['-p', String(port), ...a], { encoding: 'utf8', timeout: 10000 });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  const up = async (auth) => {
    const ping = auth ? () => cli('-a', auth, '--no-auth-warning', 'PING') === 'PONG' : () => cli('PING') === 'PONG';
    await waitFor(ping, 10000, `redis-server on ${port} up`);
  };
  const start = async () => {
    proc = spawn(SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...current], { stdio: 'ignore' });
    const i = current.indexOf('--requirepass');
    await up(i >= 0 ? current[i + 1] : null);
  };
  const kill = async () => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const p = proc;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  await start();
  t.after(kill);
  return {
    port,
    cli,
    kill,
    async restart(newArgs) {
      await kill();
      if (newArgs) current = newArgs;
      await start();
    },
  };
}

/** The fault proxy in front of 127.0.0.1:upstreamPort (stopped when the test ends). */
async function startProxy(t, upstreamPort) {
  const proc = spawn(proxyBinary(), ['--upstream', `127.0.0.1:${upstreamPort}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const ports = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.once('line', (l) => { rl.close(); resolve(JSON.parse(l)); });
    proc.once('exit', (c) => reject(new Error(`fault-proxy exited (${c}) before listening`)));
  });
  const ctl = net.connect(ports.control, '127.0.0.1');
  await new Promise((resolve, reject) => { ctl.once('connect', resolve); ctl.once('error', reject); });
  t.after(() => ctl.destroy());
  const waiting = [];
  readline.createInterface({ input: ctl }).on('line', (l) => { const w = waiting.shift(); if (w) w(l); });
  /** Send one control command; resolves with its reply line. */
  const command = (line) => new Promise((resolve) => { waiting.push(resolve); ctl.write(`${line}\n`); });
  return {
    port: ports.listen,
    url: `redis://127.0.0.1:${ports.listen}`,
    command,
    /** `command`, failing on an `err` reply. */
    async must(line) {
      const r = await command(line);
      if (!r.startsWith('ok')) throw new Error(`fault proxy: ${line}: ${r}`);
      return r;
    },
    /** The proxied connections now open: [{id, name, toServer, toClient, blackholed}]. */
    async conns() {
      return JSON.parse((await this.must('conns')).slice(3));
    },
  };
}

/** CLIENT LIST of a redis-server as objects (`id`, `name`, `sub`, `psub`, ...). */
function clientList(cli) {
  return (cli('CLIENT', 'LIST') || '').split('\n').filter(Boolean).map((line) =>
    Object.fromEntries(line.split(' ').map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 1)]; })));
}

module.exports = { proxyBinary, privateRedis, startProxy, clientList };
