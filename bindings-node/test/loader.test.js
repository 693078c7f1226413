'use strict';
// Where the native addon comes from: the checkout's build, else this platform's package
// (@shared-infra/event-bus-<platform>), and what the error says when neither is there.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { PREBUILT, platformTriple, platformPackage, addonFile } = require('../js/platform');

const JS = path.resolve(__dirname, '..', 'js');
const BUILT = path.resolve(__dirname, '..', addonFile(platformTriple()));

// A package laid out as npm installs it: node_modules/@shared-infra/event-bus/bindings-node/js,
// without the checkout's addon.
function installedLayout() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'event-bus-loader-'));
  const pkg = path.join(dir, 'node_modules', '@shared-infra', 'event-bus');
  fs.cpSync(JS, path.join(pkg, 'bindings-node', 'js'), { recursive: true });
  return { dir, pkg };
}

function load(pkg) {
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(pkg, 'bindings-node', 'js', 'native.js'))})`], {
    encoding: 'utf8',
  });
}

test('the platform name follows napi-rs and every prebuilt one has its package', () => {
  assert.match(platformTriple(), /^(linux-(x64|arm64|ia32|arm)-(gnu|musl)|darwin-(x64|arm64)|win32-\w+-msvc|\w+-\w+)$/);
  const linux = PREBUILT.filter((p) => p.os === 'linux').map((p) => p.platform);
  assert.deepEqual(linux, ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl']);
  assert.equal(platformPackage('linux-x64-musl'), '@shared-infra/event-bus-linux-x64-musl');
});

test('without the platform package the error names the platform, the package and what to do', () => {
  const { dir, pkg } = installedLayout();
  try {
    const r = load(pkg);
    assert.notEqual(r.status, 0);
    const triple = platformTriple();
    assert.match(r.stderr, new RegExp(`no native addon for ${triple}: the package ${platformPackage(triple)} is not installed`));
    assert.match(r.stderr, /--omit=optional/);
    assert.match(r.stderr, /Rust >= 1\.88/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the addon is loaded from the platform package when the checkout has none', () => {
  const { dir, pkg } = installedLayout();
  try {
    const triple = platformTriple();
    const plat = path.join(dir, 'node_modules', ...platformPackage(triple).split('/'));
    fs.mkdirSync(plat, { recursive: true });
    fs.writeFileSync(path.join(plat, 'package.json'), JSON.stringify({ name: platformPackage(triple), main: addonFile(triple) }));
    fs.copyFileSync(BUILT, path.join(plat, addonFile(triple)));
    const r = spawnSync(process.execPath, ['-e',
      `const n = require(${JSON.stringify(path.join(pkg, 'bindings-node', 'js', 'native.js'))}); ` +
      "process.stdout.write(typeof n.NativeClient + ' ' + require.resolve(" + JSON.stringify(platformPackage(triple)) +
      ", { paths: [" + JSON.stringify(pkg) + "] }))"], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^function .*${addonFile(triple).replace(/\./g, '\\.')}$`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
