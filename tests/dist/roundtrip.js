'use strict';
// One publish/subscribe round trip through an installed @shared-infra/event-bus (run by
// scripts/check-dist.sh in a fresh directory, with no Rust on PATH). Prints one line, exits 0.
const { EventBusClient } = require('@shared-infra/event-bus');
const native = require('@shared-infra/event-bus/package.json');

async function main() {
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const channel = `dist.check.node.${process.pid}.${Date.now()}`;
  const bus = new EventBusClient({ serviceName: 'dist-check', redis: { url } });
  await bus.connect();
  let resolve;
  const got = new Promise((r) => (resolve = r));
  await bus.subscribe(channel, (event) => resolve(event));
  const result = await bus.publish(channel, { n: 1 });
  const timer = setTimeout(() => {
    console.error(`roundtrip: no event on ${channel} within 30 s`);
    process.exit(1);
  }, 30000);
  const event = await got;
  clearTimeout(timer);
  await bus.disconnect();
  if (!result.success || event.id !== result.eventId || event.data.n !== 1) {
    console.error('roundtrip: wrong event', JSON.stringify({ result, event }));
    process.exit(1);
  }
  console.log(`roundtrip ok: node ${process.version} ${process.arch}, ${native.name} ${native.version}`);
}
main().catch((err) => {
  console.error(`roundtrip: ${err.stack || err}`);
  process.exit(1);
});
