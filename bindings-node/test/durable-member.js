'use strict';
// A durable group member in its own process, for durable.test.js: it joins the group named by
// argv, tells the parent each event it receives, and never finishes a handler, so the events it
// took stay pending in the group until another member claims them (the parent SIGKILLs it).
const { EventBusClient } = require('../..');

const [url, type, group, consumer] = process.argv.slice(2);

async function main() {
  const bus = new EventBusClient({ serviceName: 'durable-member', redis: { url }, logLevel: 'error' });
  await bus.connect();
  await bus.subscribe(
    type,
    (ev) => {
      process.send({ got: ev.id, attempt: ev.delivery && ev.delivery.attempt });
      return new Promise(() => {}); // never settles: the entry stays pending
    },
    { timeout: 600000, durable: { group, consumer, minIdleTime: 60000 } }
  );
  process.send({ ready: true });
}

main().catch((err) => {
  process.send({ error: String(err && err.message) });
  process.exit(1);
});
