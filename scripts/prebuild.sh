#!/usr/bin/env bash
# Makes the Node-API prebuilds in prebuilds/ (run as `npm run prebuilds`):
#   prebuilds/linux-x64/procmonitor.glibc.node     native build
#   prebuilds/linux-arm64/procmonitor.glibc.node   cross-compiled with Debian's g++-aarch64-linux-gnu
# Each is one binary for every Node.js >= 20 and Electron (Node-API 8, ABI-stable), stripped,
# needing glibc >= 2.17 and the libstdc++ of GCC >= 6 (GLIBCXX_3.4.22), which Node.js itself links.
# Then records the sha256 of their build inputs in prebuilds/SOURCE_HASH (native/, binding.gyp,
# this script, scripts/glibcxx-compat.h, node-addon-api's version); test/prebuild.test.js fails
# when any of them no longer matches it.
#
# Needs: g++, make, python3, g++-aarch64-linux-gnu (apt-get install g++-aarch64-linux-gnu).
# Node's headers come from nodedir (npm config nodedir, else /usr): no download.
# The build runs in a temporary copy, so the repository's build/ is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

ARCHES="${PREBUILD_ARCHES:-x64 arm64}"
NODEDIR="${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}"
if [ -z "$NODEDIR" ] || [ "$NODEDIR" = "undefined" ] || [ "$NODEDIR" = "null" ]; then NODEDIR=/usr; fi
[ -f "$NODEDIR/include/node/node_api.h" ] || { echo "prebuild: no Node headers in $NODEDIR/include/node (set npm_config_nodedir)" >&2; exit 1; }

# node-gyp: the one npm runs scripts with, else npm's bundled copy.
NODE_GYP_JS="${npm_config_node_gyp:-}"
if [ -z "$NODE_GYP_JS" ] || [ ! -f "$NODE_GYP_JS" ]; then
  NODE_GYP_JS="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
fi
[ -f "$NODE_GYP_JS" ] || { echo "prebuild: node-gyp not found (looked at $NODE_GYP_JS)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/procmonitor-prebuild.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin" "$WORK/src"
printf '#!/bin/sh\nexec node "%s" "$@"\n' "$NODE_GYP_JS" > "$WORK/bin/node-gyp"
chmod +x "$WORK/bin/node-gyp"
# PREBUILD_FROM=REV builds the sources committed at REV (e.g. HEAD) instead of the work tree,
# so that prebuilds committed next to them match them while others edit native/.
# The copy holds every input that SOURCE_HASH records, and the build uses that copy's
# glibcxx-compat.h; the script that runs must be the one recorded.
if [ -n "${PREBUILD_FROM:-}" ]; then
  git archive "$PREBUILD_FROM" binding.gyp native scripts/glibcxx-compat.h scripts/prebuild.sh | tar -x -C "$WORK/src"
  cmp -s "$WORK/src/scripts/prebuild.sh" "$ROOT/scripts/prebuild.sh" ||
    { echo "prebuild: scripts/prebuild.sh differs from the one at $PREBUILD_FROM: commit it first" >&2; exit 1; }
  cp package.json "$WORK/src/"
else
  cp -r binding.gyp package.json native "$WORK/src/"
  mkdir -p "$WORK/src/scripts"
  cp scripts/glibcxx-compat.h scripts/prebuild.sh "$WORK/src/scripts/"
fi
ln -s "$ROOT/node_modules" "$WORK/src/node_modules"

# libstdc++ stays a shared library (Node.js itself needs it, so it is there wherever Node
# runs; linking it statically would pull in glibc 2.36 symbols); glibcxx-compat.h keeps the
# libstdc++ symbol versions needed at GCC 6's level (GLIBCXX_3.4.22).
PB_CXXFLAGS="-include $WORK/src/scripts/glibcxx-compat.h"
PB_LDFLAGS="-Wl,--as-needed"

build() { # arch cc cxx strip
  local arch="$1" cc="$2" cxx="$3" strip="$4"
  command -v "$cxx" >/dev/null || { echo "prebuild: $cxx not found (linux-$arch)" >&2; exit 1; }
  echo "prebuild: linux-$arch with $cxx" >&2
  (cd "$WORK/src" && rm -rf build &&
    env PATH="$WORK/bin:$PATH" npm_config_nodedir="$NODEDIR" npm_config_node_gyp="$NODE_GYP_JS" \
      CC="$cc" CXX="$cxx" LINK="$cxx" CXXFLAGS="$PB_CXXFLAGS" LDFLAGS="$PB_LDFLAGS" \
      "$ROOT/node_modules/.bin/prebuildify" --napi --strip --tag-libc --libc=glibc \
      --arch="$arch" --platform=linux --strip-bin="$strip" --node-gyp="$WORK/bin/node-gyp" --quiet)
}

rm -rf "$WORK/src/prebuilds"
for arch in $ARCHES; do
  case "$arch" in
    x64) build x64 gcc g++ strip ;;
    arm64) build arm64 aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ aarch64-linux-gnu-strip ;;
    *) echo "prebuild: unsupported arch $arch" >&2; exit 1 ;;
  esac
done

# Replace the committed prebuilds only when every build succeeded.
for arch in $ARCHES; do
  rm -rf "prebuilds/linux-$arch"
  mkdir -p prebuilds
  cp -r "$WORK/src/prebuilds/linux-$arch" "prebuilds/linux-$arch"
done
node scripts/source-hash.js --write "$WORK/src"
node scripts/source-hash.js --info
