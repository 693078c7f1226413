'use strict';
// Loads the native addon built by bindings-node/scripts/install.js (or shipped prebuilt).
const path = require('node:path');
const { platformTriple } = require('./platform');

const triple = platformTriple();
const file = path.join(__dirname, '..', `event-bus.${triple}.node`);
let binding;
try {
  binding = require(file);
} catch (err) {
  const e = new Error(
    `@shared-infra/event-bus: cannot load the native addon for ${triple} (${file}): ${err.message}. ` +
      'Run `npm install` (or `npm run build`) in a source checkout with Rust installed to build it.'
  );
  e.cause = err;
  throw e;
}
module.exports = binding;
