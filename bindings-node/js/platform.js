'use strict';
// The napi-rs platform name of this process (linux-x64-gnu, linux-x64-musl, darwin-arm64, ...)
// and where its prebuilt addon lives.
//
// Prebuilt addons ship the way napi-rs packages do: one package per platform,
// `@shared-infra/event-bus-<platform>`, each an optional dependency of the main package with
// `os`/`cpu`/`libc` fields, so npm installs only the one that fits this machine.

const PACKAGE = '@shared-infra/event-bus';

// The platforms scripts/build-dist.sh builds (and the CI workflow adds macOS to).
const PREBUILT = [
  { platform: 'linux-x64-gnu', target: 'x86_64-unknown-linux-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' },
  { platform: 'linux-x64-musl', target: 'x86_64-unknown-linux-musl', os: 'linux', cpu: 'x64', libc: 'musl' },
  { platform: 'linux-arm64-gnu', target: 'aarch64-unknown-linux-gnu', os: 'linux', cpu: 'arm64', libc: 'glibc' },
  { platform: 'linux-arm64-musl', target: 'aarch64-unknown-linux-musl', os: 'linux', cpu: 'arm64', libc: 'musl' },
  { platform: 'darwin-x64', target: 'x86_64-apple-darwin', os: 'darwin', cpu: 'x64' },
  { platform: 'darwin-arm64', target: 'aarch64-apple-darwin', os: 'darwin', cpu: 'arm64' },
];

function isMusl() {
  if (process.platform !== 'linux') return false;
  try {
    const report = process.report && process.report.getReport();
    const header = report && (typeof report === 'string' ? JSON.parse(report) : report).header;
    return !(header && header.glibcVersionRuntime);
  } catch {
    return false;
  }
}

function platformTriple() {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** The file name of the addon for `triple`, in a checkout build and in its platform package. */
function addonFile(triple) {
  return `event-bus.${triple}.node`;
}

/** The file name of the `event-bus` command-line binary in the platform package of `triple`. */
function cliFile(triple) {
  return triple.startsWith('win32-') ? 'event-bus.exe' : 'event-bus';
}

/** The npm package that carries the prebuilt addon (and the CLI binary) for `triple`. */
function platformPackage(triple) {
  return `${PACKAGE}-${triple}`;
}

module.exports = { PACKAGE, PREBUILT, platformTriple, addonFile, cliFile, platformPackage };
