#!/usr/bin/env node
// npm `install` script of @shared-infra/event-bus.
//
// - In a source checkout (the workspace's Cargo.toml is next to package.json): build the native
//   addon in release with cargo and copy it to bindings-node/event-bus.<platform>.node. An
//   unchanged rebuild takes about a second, so this always runs and never serves a stale addon.
// - In an installed package (no Rust sources): the prebuilt addon comes from this platform's
//   package, @shared-infra/event-bus-<platform>, an optional dependency npm installs beside this
//   one; fail with a clear message when it is missing.
//
// Flags: --force (same as default; kept for `npm run build`), --debug (debug profile).
// Env: CARGO (cargo binary), CARGO_TARGET_DIR (honoured), EVENT_BUS_SKIP_BUILD=1 (do nothing).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { PREBUILT, platformTriple, addonFile, platformPackage } = require('../js/platform');

const pkgRoot = path.resolve(__dirname, '..', '..');
const bindingDir = path.resolve(__dirname, '..');
const args = new Set(process.argv.slice(2));
const debug = args.has('--debug');
const triple = platformTriple();
const dest = path.join(bindingDir, addonFile(triple));
const isCheckout = fs.existsSync(path.join(pkgRoot, 'Cargo.toml')) &&
  fs.existsSync(path.join(bindingDir, 'Cargo.toml'));

function log(msg) {
  process.stderr.write(`[event-bus] ${msg}\n`);
}

if (process.env.EVENT_BUS_SKIP_BUILD === '1') {
  log('EVENT_BUS_SKIP_BUILD=1: not building the native addon');
  process.exit(0);
}

if (!isCheckout) {
  const pkg = platformPackage(triple);
  try {
    log(`using the prebuilt addon from ${pkg} (${path.dirname(require.resolve(`${pkg}/package.json`))})`);
    process.exit(0);
  } catch {
    // Not installed: said below.
  }
  if (PREBUILT.some((p) => p.platform === triple)) {
    log(`the prebuilt addon for ${triple} is in ${pkg}, which is not installed.`);
    log('npm installs it as an optional dependency: do not install with --omit=optional (or');
    log(`--no-optional), or install ${pkg} explicitly (from the registry or its tarball).`);
  } else {
    log(`no prebuilt addon for ${triple}; there are prebuilt addons for ${PREBUILT.map((p) => p.platform).join(', ')}.`);
    log('Install from a source checkout (needs Rust >= 1.88) to build it.');
  }
  process.exit(1);
}

const cargo = process.env.CARGO || 'cargo';
const cargoArgs = ['build', '-p', 'event-bus-node'];
if (!debug) cargoArgs.push('--release');
log(`building the native addon: ${cargo} ${cargoArgs.join(' ')}`);
const r = spawnSync(cargo, cargoArgs, { cwd: pkgRoot, stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error) {
  log(`could not run ${cargo}: ${r.error.message}. Install Rust (https://rustup.rs) and retry.`);
  process.exit(1);
}
if (r.status !== 0) {
  log(`cargo failed with status ${r.status}`);
  process.exit(r.status || 1);
}

const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(pkgRoot, process.env.CARGO_TARGET_DIR)
  : path.join(pkgRoot, 'target');
const profile = debug ? 'debug' : 'release';
const libName = {
  linux: 'libevent_bus_node.so',
  darwin: 'libevent_bus_node.dylib',
  win32: 'event_bus_node.dll',
}[process.platform] || 'libevent_bus_node.so';
const built = path.join(targetDir, profile, libName);
if (!fs.existsSync(built)) {
  log(`cargo succeeded but ${built} is missing`);
  process.exit(1);
}
// Copy to a temporary name and rename, so a running process never maps a half-written file.
const tmp = `${dest}.tmp-${process.pid}`;
fs.copyFileSync(built, tmp);
fs.renameSync(tmp, dest);
log(`installed ${path.relative(pkgRoot, dest)}`);
