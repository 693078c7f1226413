#!/usr/bin/env node
// The `event-bus` command of @shared-infra/event-bus: runs the prebuilt CLI binary that this
// platform's package (@shared-infra/event-bus-<platform>) carries beside the addon, with the
// same arguments, stdio and exit status. In a source checkout it runs the workspace's own build
// (cargo build --release -p event-bus-cli) when there is one.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { PREBUILT, platformTriple, platformPackage, cliFile } = require('../js/platform');

function fail(lines) {
  for (const l of lines) process.stderr.write(`event-bus: ${l}\n`);
  process.exit(1);
}

function findBinary() {
  const triple = platformTriple();
  const pkg = platformPackage(triple);
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), cliFile(triple));
  } catch {
    // Not installed: a checkout, or said below.
  }
  const root = path.resolve(__dirname, '..', '..');
  if (fs.existsSync(path.join(root, 'Cargo.toml'))) {
    const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
    const built = path.join(target, 'release', 'event-bus');
    if (fs.existsSync(built)) return built;
    fail([`no CLI binary in this checkout (${built}); build it with`, '  cargo build --release -p event-bus-cli']);
  }
  if (PREBUILT.some((p) => p.platform === triple)) {
    fail([
      `the prebuilt binary for ${triple} is in ${pkg}, which is not installed`,
      '(npm installs it as an optional dependency: do not install with --omit=optional).',
    ]);
  }
  fail([
    `no prebuilt binary for ${triple}; there are for ${PREBUILT.map((p) => p.platform).join(', ')}.`,
    'Build it from source with Rust: cargo install --path cli (in the source repository).',
  ]);
}

const bin = findBinary();
// npm may unpack a package's files without their executable bit.
try {
  fs.accessSync(bin, fs.constants.X_OK);
} catch {
  try {
    fs.chmodSync(bin, 0o755);
  } catch (e) {
    fail([`${bin} is not executable and cannot be made so (${e.code || e.message})`]);
  }
}
const r = spawnSync(bin, process.argv.slice(2), { stdio: 'inherit' });
if (r.error) fail([`cannot run ${bin}: ${r.error.message}`]);
if (r.signal) {
  // Die of the same signal, so the shell sees what the CLI saw.
  process.kill(process.pid, r.signal);
}
process.exit(r.status === null ? 1 : r.status);
