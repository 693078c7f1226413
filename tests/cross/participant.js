// Cross-language participant: the Node face. See run.py for the protocol.
'use strict';
const fs = require('fs');
const { EventBusClient } = require('../..');

const [face, run, planFile, outFile, readyFile, goFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  // CROSS_REDIS: the `redis` config section as JSON (a cluster's seeds, ...); else REDIS_URL.
  const redis = process.env.CROSS_REDIS ? JSON.parse(process.env.CROSS_REDIS) : { url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' };
  const bus = new EventBusClient({ serviceName: `xl-${face}`, redis, logLevel: 'error' });
  await bus.connect();
  const out = [];
  const onEvent = (event) => {
    if (!event.data || event.data.run !== run) return;
    out.push({ channel: event.channel, id: event.id, type: event.type, data: event.data, metadata: event.metadata });
  };
  // subscribeOptions[face]: the durable round's consumer group (see run.py).
  const opts = (plan.subscribeOptions && plan.subscribeOptions[face]) || {};
  for (const p of plan.patterns) await bus.subscribe(p, onEvent, opts);
  fs.writeFileSync(readyFile, 'ready');
  while (!fs.existsSync(goFile)) await sleep(20);
  for (const item of plan.items[face]) {
    const r = await bus.publish(item.type, item.data, item.options);
    if (!r.success) throw new Error(`publish failed: ${JSON.stringify(r.error)}`);
  }
  const deadline = Date.now() + plan.timeoutMs;
  while (out.length < plan.expected && Date.now() < deadline) await sleep(20);
  await sleep(200); // catch duplicates, if any
  fs.writeFileSync(outFile, out.map((e) => JSON.stringify(e)).join('\n') + '\n');
  await bus.disconnect();
}
main().catch((e) => { console.error(e); process.exit(1); });
