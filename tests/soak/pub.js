'use strict';
// Soak publisher (scripts/soak.sh): publishes numbered events on one channel at a steady rate
// and writes every publish and its one outcome to an NDJSON ledger:
//   {"k":"send","id":N,"t":ms,"p":bool}  {"k":"out","id":N,"t":ms,"p":bool,"ok":bool,"code":..,"deliveredTo":..}
//   {"k":"state","type":..,"t":ms,...}  {"k":"end","t":ms,"sent":N}
// One publish in `persistentEvery` (default 4; 0: none) is persistent (`p`: appended to the
// type's stream for the durable groups, then published live as the others).
// SIGTERM: stop publishing, wait for every outcome, write `end`, disconnect.
//   node pub.js <redis-url> <channel> <ledger> [per-second] [persistentEvery]
const fs = require('node:fs');
const path = require('node:path');
const { EventBusClient } = require(path.resolve(__dirname, '..', '..'));

const [url, channel, ledger, rateArg] = process.argv.slice(2);
const rate = Number(rateArg || 100);
const persistentEvery = Number(process.argv[6] ?? 4);
const fd = fs.openSync(ledger, 'a');
const write = (o) => fs.writeSync(fd, `${JSON.stringify(o)}\n`);

const bus = new EventBusClient({
  serviceName: 'soak-node-pub',
  logLevel: 'error',
  redis: { url, heartbeatInterval: 1000, reconnectDelay: 50, reconnectDelayMax: 1000, publishTimeout: 5000, offlineQueueSize: 2000, connectTimeout: 2000 },
});
for (const type of ['connected', 'disconnected', 'reconnecting', 'gap', 'error']) {
  bus.on(type, (e) => write({ k: 'state', type, t: Date.now(), connection: e.connection, reason: e.reason, message: e.message, from: e.from, to: e.to }));
}

let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  for (;;) {
    try {
      await bus.connect();
      break;
    } catch (e) {
      write({ k: 'state', type: 'connect-failed', t: Date.now(), message: e.message });
      if (stopping) return;
      await sleep(500);
    }
  }
  write({ k: 'ready', t: Date.now() });
  const inflight = new Set();
  let n = 0;
  const start = Date.now();
  while (!stopping) {
    // Steady rate, catching up after a slow tick; never more than 20000 publishes waiting.
    const due = Math.floor(((Date.now() - start) * rate) / 1000);
    while (n < due && inflight.size < 20000 && !stopping) {
      const id = n++;
      const persistent = persistentEvery > 0 && id % persistentEvery === 0;
      write({ k: 'send', id, t: Date.now(), p: persistent });
      const p = bus.publish(channel, { id }, persistent ? { persistent: true } : undefined).then(
        (r) => write({ k: 'out', id, t: Date.now(), p: persistent, ok: r.success, code: r.success ? null : r.error.code, deliveredTo: r.success ? r.deliveredTo : null }),
        (e) => write({ k: 'out', id, t: Date.now(), p: persistent, ok: false, code: e.code || 'THROWN', message: e.message }),
      );
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
    await sleep(10);
  }
  await Promise.all([...inflight]);
  write({ k: 'end', t: Date.now(), sent: n });
  await bus.disconnect();
}

main().then(() => process.exit(0), (e) => { write({ k: 'crash', t: Date.now(), message: String(e && e.stack) }); process.exit(1); });
