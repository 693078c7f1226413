#!/usr/bin/env node
// Stages the npm packages scripts/build-dist.sh packs (napi-rs layout):
//
//   dist-package.js main STAGE_DIR
//     the JS package @shared-infra/event-bus: this checkout's package.json, with the platform
//     packages as optionalDependencies, and its `files`;
//   dist-package.js platform PLATFORM ADDON STAGE_DIR [CLI]
//     @shared-infra/event-bus-PLATFORM: the prebuilt ADDON (.node), and the `event-bus` CLI
//     binary when given (run by the main package's `event-bus` bin), with os/cpu/libc fields,
//     so npm installs it only where it fits.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { PACKAGE, PREBUILT, addonFile, cliFile, platformPackage } = require('../js/platform');

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const [cmd, ...args] = process.argv.slice(2);

function copy(rel, stage) {
  const from = path.join(root, rel);
  const to = path.join(stage, rel);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.cpSync(from, to, { recursive: true });
}

function write(stage, json) {
  fs.mkdirSync(stage, { recursive: true });
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(json, null, 2)}\n`);
}

if (cmd === 'main') {
  const [stage] = args;
  const out = { ...pkg };
  delete out.devDependencies;
  out.scripts = { install: pkg.scripts.install };
  out.optionalDependencies = Object.fromEntries(
    PREBUILT.map((p) => [platformPackage(p.platform), pkg.version])
  );
  write(stage, out);
  for (const f of ['README.md', 'LICENSE', 'bindings-node/js', 'bindings-node/bin', 'bindings-node/scripts/install.js']) {
    if (fs.existsSync(path.join(root, f))) copy(f, stage);
  }
} else if (cmd === 'platform') {
  const [platform, addon, stage, cli] = args;
  const p = PREBUILT.find((x) => x.platform === platform);
  if (!p) throw new Error(`unknown platform ${platform}; known: ${PREBUILT.map((x) => x.platform)}`);
  const file = addonFile(platform);
  const json = {
    name: platformPackage(platform),
    version: pkg.version,
    description: `The ${platform} native addon of ${PACKAGE} (${p.target})`,
    license: pkg.license,
    main: file,
    files: cli ? [file, cliFile(platform)] : [file],
    os: [p.os],
    cpu: [p.cpu],
    engines: pkg.engines,
  };
  if (p.libc) json.libc = [p.libc];
  write(stage, json);
  fs.copyFileSync(addon, path.join(stage, file));
  if (cli) {
    fs.copyFileSync(cli, path.join(stage, cliFile(platform)));
    fs.chmodSync(path.join(stage, cliFile(platform)), 0o755);
  }
} else {
  process.stderr.write('usage: dist-package.js main STAGE | platform PLATFORM ADDON STAGE [CLI]\n');
  process.exit(2);
}
