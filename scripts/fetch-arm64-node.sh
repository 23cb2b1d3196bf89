#!/usr/bin/env bash
# Unpacks Debian's arm64 Node.js (bookworm: Node 18) and its arm64 libraries into a folder,
# not installed, so that test/prebuild.test.js can load prebuilds/linux-arm64 under
#   qemu-aarch64-static -L ROOT ROOT/usr/bin/node
# Usage (as root): scripts/fetch-arm64-node.sh [ROOT]   (default /var/tmp/procmonitor-arm64-root,
# or $PROCMONITOR_ARM64_ROOT). Installs qemu-user-static and binutils if missing.
# Idempotent: does nothing when ROOT is already complete.
set -euo pipefail
ROOT="${1:-${PROCMONITOR_ARM64_ROOT:-/var/tmp/procmonitor-arm64-root}}"
if [ -f "$ROOT/.complete" ] && [ -x "$ROOT/usr/bin/node" ]; then
  echo "fetch-arm64-node: $ROOT is ready" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive

need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  need_update=1
fi
if [ "$need_update" = 1 ] || ! apt-cache show nodejs:arm64 >/dev/null 2>&1; then
  apt-get update -qq
fi
if ! command -v qemu-aarch64-static >/dev/null || ! command -v readelf >/dev/null; then
  apt-get install -y -qq qemu-user-static binutils >/dev/null
fi

# nodejs:arm64, libnode108:arm64 and every arm64 library they depend on (recursively), plus
# the architecture-independent Node modules that Debian's libnode loads from /usr/share.
mapfile -t PKGS < <(
  {
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances nodejs:arm64 libnode108:arm64 2>/dev/null |
      grep -v '^ ' | grep -E '^(nodejs|lib[^<>]*|zlib1g):arm64$'
    printf '%s\n' node-cjs-module-lexer node-acorn node-undici node-busboy node-xtend
  } | sort -u
)
echo "fetch-arm64-node: ${#PKGS[@]} packages: ${PKGS[*]}" >&2

DL="$(mktemp -d "${TMPDIR:-/tmp}/arm64-debs.XXXXXX")"
trap 'rm -rf "$DL"' EXIT
chmod 777 "$DL" # apt-get download drops privileges to _apt
(cd "$DL" && apt-get download -qq "${PKGS[@]}" >/dev/null 2>&1) ||
  (cd "$DL" && apt-get download "${PKGS[@]}")

rm -rf "$ROOT.tmp"
mkdir -p "$ROOT.tmp"
for deb in "$DL"/*.deb; do dpkg -x "$deb" "$ROOT.tmp"; done
[ -x "$ROOT.tmp/usr/bin/node" ] || { echo "fetch-arm64-node: no usr/bin/node in the packages" >&2; exit 1; }
qemu-aarch64-static -L "$ROOT.tmp" "$ROOT.tmp/usr/bin/node" -e 0 # fails here when a library is missing
touch "$ROOT.tmp/.complete"
rm -rf "$ROOT"
mv "$ROOT.tmp" "$ROOT"
version="$(qemu-aarch64-static -L "$ROOT" "$ROOT/usr/bin/node" -p 'process.version + " " + process.arch')"
echo "fetch-arm64-node: Node.js $version in $ROOT" >&2
