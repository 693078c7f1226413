#!/usr/bin/env node
// The Node runner of the conformance test (see conformance.py): reads the expanded cases file
// given as the one argument and prints one JSON line per case,
// {"name", "outcome": "ok" | CODE, "message"}.
//
// - config: `new EventBusClient(config)`; a throw is its error's code and message.
// - subscribe / publish: on one connected client made from `client_config`. A subscribe that
//   rejects is its error's code and message; a publish resolves to a PublishResult, whose
//   `error` is the outcome when it did not succeed (a publish that rejects counts as a throw).
// `options: null` is a call without options.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { EventBusClient } = require(path.resolve(__dirname, '..', '..', '..'));

function thrown(err) {
  return { outcome: (err && err.code) || 'UNCODED_ERROR', message: (err && err.message) || String(err) };
}

async function runCase(client, c) {
  const withOptions = (args) => (c.options === null || c.options === undefined ? args : [...args, c.options]);
  try {
    switch (c.op) {
      case 'config':
        new EventBusClient(c.config);
        return { outcome: 'ok', message: '' };
      case 'subscribe': {
        const sub = await client.subscribe(...withOptions([c.pattern, () => {}]));
        await client.unsubscribe(sub.id);
        return { outcome: 'ok', message: '' };
      }
      case 'publish': {
        const r = await client.publish(...withOptions([c.type, c.data]));
        return r.success ? { outcome: 'ok', message: '' } : { outcome: r.error.code, message: r.error.message };
      }
      default:
        throw new Error(`unknown op ${JSON.stringify(c.op)} in case ${JSON.stringify(c.name)}`);
    }
  } catch (err) {
    return thrown(err);
  }
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const client = new EventBusClient(spec.client_config);
  await client.connect();
  try {
    for (const c of spec.cases) {
      const { outcome, message } = await runCase(client, c);
      process.stdout.write(JSON.stringify({ name: c.name, outcome, message }) + '\n');
    }
  } finally {
    await client.disconnect();
  }
}

main().catch((err) => {
  process.stderr.write(`run_node.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
