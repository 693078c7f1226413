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

/**
 * A throwaway CA and a server certificate signed by it (openssl CLI) in a temporary directory
 * removed when the test ends: `san` is the certificate's subjectAltName, `days` its validity
 * (-1: it expired yesterday). Returns the paths `{ dir, ca, cert, key }` and the CA's PEM text.
 */
function tlsFiles(t, { san = 'IP:127.0.0.1, DNS:localhost', days = '2' } = {}) {
  const os = require('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'event-bus-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr || r.error}`);
  };
  fs.writeFileSync(f('server.ext'), 'basicConstraints = critical, CA:FALSE\n'
    + 'keyUsage = critical, digitalSignature, keyEncipherment\n'
    + `extendedKeyUsage = serverAuth\nsubjectAltName = ${san}\n`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  openssl('req', '-x509', '-nodes', '-days', '2', '-sha256', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'),
    '-subj', `/CN=event-bus test CA ${process.pid}-${Date.now()}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-new', '-nodes', '-sha256', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-days', String(days), '-sha256', '-in', f('server.csr'), '-CA', f('ca.crt'),
    '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-extfile', f('server.ext'));
  return { dir, ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key'), caPem: fs.readFileSync(f('ca.crt'), 'utf8') };
}

/**
 * A private TLS-only redis-server with `files`' certificate (stopped when the test ends).
 * `cli(...)` runs redis-cli over TLS without checking the certificate (the test's own client:
 * the certificate may be one the client under test must refuse).
 */
async function privateTlsRedis(t, files) {
  const port = await freePort();
  const proc = spawn(SERVER, ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--tls-cert-file', files.cert, '--tls-key-file', files.key,
    '--tls-ca-cert-file', files.ca, '--tls-auth-clients', 'no'], { stdio: 'ignore' });
  t.after(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
  const cli = (...a) => {
    const r = spawnSync(CLI, ['--tls', '--insecure', '-p', String(port), ...a], { encoding: 'utf8', timeout: 10000 });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  await waitFor(() => cli('PING') === 'PONG', 10000, `TLS redis-server on ${port} up (is it built with TLS?)`);
  return { port, cli, url: `rediss://127.0.0.1:${port}` };
}

module.exports = { proxyBinary, privateRedis, startProxy, clientList, tlsFiles, privateTlsRedis };
