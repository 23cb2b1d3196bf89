#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer into a staged copy
# of the package, build/asan/pkg/, so that the normal build/Release and prebuilds/ are
# left alone and the unchanged tests and lib/ load the sanitized addon from there:
#   build/asan/pkg/build/Release/procmonitor.node   the sanitized addon (g++, -O1 -g)
#   build/asan/pkg/{package.json,README.md,docs,dist,esm,bin,test,contrib}   copies (the CLI test
#   compares docs/cli.md's --help); node_modules: a link
# node-gyp-build(pkg) finds no prebuilds/ there, so it loads build/Release. Node itself is
# not sanitized: run it with LD_PRELOAD of GCC's libasan (scripts/asan.sh does).
#   bash scripts/asan-build.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PKG=build/asan/pkg
CXX=${ASAN_CXX:-g++}

[ -f dist/index.js ] || npx tsc -p tsconfig.json
NODE_INC=""
for d in "${npm_config_nodedir:-}/include/node" /usr/include/node /usr/local/include/node; do
  if [ -f "$d/node_api.h" ]; then NODE_INC=$d; break; fi
done
[ -n "$NODE_INC" ] || { echo "asan: no Node headers (node_api.h); set npm_config_nodedir" >&2; exit 2; }
NAPI_INC="$(node -p "require('node-addon-api').include_dir")"

rm -rf "$PKG"
mkdir -p "$PKG/build/Release" "$PKG/asan" build/asan/obj
cp -r package.json README.md docs dist esm bin test "$PKG/"
[ -d contrib ] && cp -r contrib "$PKG/"
ln -s "$ROOT/node_modules" "$PKG/node_modules"

# The sources and defines binding.gyp builds with, so this build cannot drift from it.
# binding.gyp is a Python literal with comments; its Linux build sits in the OS=='linux'
# condition.
gyp() {  # key: one line per item of the Linux target's list
  python3 - "$1" <<'PY'
import ast, re, sys
text = re.sub(r"^\s*#.*$", "", open("binding.gyp").read(), flags=re.M)
target = ast.literal_eval(text)["targets"][0]
linux = next(c[1] for c in target.get("conditions", []) if c[0] == "OS=='linux'")
for item in {**target, **linux}.get(sys.argv[1], []):
    print(item)
PY
}
mapfile -t SOURCES < <(gyp sources)
mapfile -t DEFINES < <(gyp defines | sed 's/^/-D/')
[ "${#SOURCES[@]}" -gt 0 ] || { echo "asan: cannot read the sources from binding.gyp" >&2; exit 1; }
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fPIC -fvisibility=hidden -Wall -Wextra
       -fsanitize=address,undefined -fno-sanitize-recover=undefined
       "${DEFINES[@]}" -DBUILDING_NODE_EXTENSION -I"$NODE_INC" -I"$NAPI_INC")
objs=()
pids=()
for src in "${SOURCES[@]}"; do
  obj=build/asan/obj/$(basename "${src%.cc}").o
  "$CXX" "${flags[@]}" -c "$src" -o "$obj" & pids+=($!)
  objs+=("$obj")
done
for p in "${pids[@]}"; do wait "$p"; done
# Undefined symbols (napi_*) resolve against node at load time.
"$CXX" -shared -fsanitize=address,undefined -o "$PKG/build/Release/procmonitor.node" "${objs[@]}" \
  -Wl,--allow-shlib-undefined -pthread

# A tiny probe addon for the leak tests (in pkg/asan/: node-gyp-build takes any .node
# in build/Release): the sanitizer's own heap figures and an on-demand
# leak check (unreachable blocks, with the suppressions of scripts/asan.sh).
cat > build/asan/probe.c <<'C'
#include <node_api.h>
#include <stddef.h>
size_t __sanitizer_get_current_allocated_bytes(void);
int __lsan_do_recoverable_leak_check(void);
static napi_value Allocated(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_create_double(env, (double)__sanitizer_get_current_allocated_bytes(), &v);
  return v;
}
static napi_value LeakCheck(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_create_int32(env, __lsan_do_recoverable_leak_check(), &v);
  return v;
}
NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "allocated", NAPI_AUTO_LENGTH, Allocated, NULL, &f);
  napi_set_named_property(env, exports, "allocated", f);
  napi_create_function(env, "leakCheck", NAPI_AUTO_LENGTH, LeakCheck, NULL, &f);
  napi_set_named_property(env, exports, "leakCheck", f);
  return exports;
}
C
"${CC:-gcc}" -shared -fPIC -O1 -fsanitize=address -I"$NODE_INC" build/asan/probe.c \
  -o "$PKG/asan/asan_probe.node" -Wl,--allow-shlib-undefined
echo "asan: built $PKG/build/Release/procmonitor.node with $("$CXX" --version | head -1)"
