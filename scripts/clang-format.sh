#!/usr/bin/env bash
# clang-format (.clang-format) over the C++ of native/, fuzz/ and test/native/: rewrites the
# files, or with --check lists those that differ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(native/*.cc native/*.h fuzz/*.cc fuzz/*.h test/native/*.cc)
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format "$f" | cmp -s "$f" -; then
      echo "clang-format: $f is not formatted (npm run format)" >&2
      bad=1
    fi
  done
  exit "$bad"
fi
clang-format -i "${files[@]}"
