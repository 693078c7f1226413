'use strict';
// Loads the native addon: the one a source checkout built (bindings-node/scripts/install.js puts
// it next to this directory), else the prebuilt one from this platform's package.
const fs = require('node:fs');
const path = require('node:path');
const { PREBUILT, platformTriple, addonFile, platformPackage } = require('./platform');

const triple = platformTriple();

function noAddon(detail, cause) {
  const prebuilt = PREBUILT.map((p) => p.platform).join(', ');
  const known = PREBUILT.some((p) => p.platform === triple);
  const e = new Error(
    `@shared-infra/event-bus: no native addon for ${triple}: ${detail}. ` +
      (known
        ? `Install ${platformPackage(triple)} (npm installs it with this package unless optional ` +
          'dependencies are omitted: do not use --omit=optional / --no-optional), '
        : `Prebuilt addons exist for ${prebuilt} only; `) +
      'or build it from a source checkout with Rust >= 1.88 (`npm install /path/to/checkout`).'
  );
  if (cause) e.cause = cause;
  return e;
}

function load() {
  const local = path.join(__dirname, '..', addonFile(triple));
  if (fs.existsSync(local)) {
    try {
      return require(local);
    } catch (err) {
      throw noAddon(`${local} does not load (${err.message})`, err);
    }
  }
  const pkg = platformPackage(triple);
  let file;
  try {
    file = require.resolve(pkg);
  } catch (err) {
    throw noAddon(`the package ${pkg} is not installed`, err);
  }
  try {
    return require(file);
  } catch (err) {
    throw noAddon(`${file} does not load (${err.message})`, err);
  }
}

module.exports = load();
