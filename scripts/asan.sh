#!/usr/bin/env bash
# Runs the native-touching tests against the addon built with AddressSanitizer +
# UndefinedBehaviorSanitizer (scripts/asan-build.sh):
#   bash scripts/asan.sh [TEST_FILE...]     (npm run test:asan [-- TEST_FILE...])
# With no arguments it runs TESTS below, the one list of sanitized tests (CI runs exactly
# that: .ci/run calls this with no arguments). TEST_FILEs are paths from the package root
# (test/x.test.js); one that does not exist is an error, not a skip.
# Node itself is not sanitized: GCC's libasan is preloaded into node and, through the
# environment, into every process the tests spawn (sh, tr, python3, ...). So:
#  - test/asan.test.js (leaks of start/stop cycles, dropped connectors, failed starts, exits
#    with connectors running) runs first, with LeakSanitizer on: it spawns only node. Node's
#    and V8's own blocks left at exit are suppressed by their function names
#    (build/asan/lsan.supp), which no stack through our code can match;
#  - the other tests run with LeakSanitizer off (the leaks of bash or python3 at exit are
#    not ours), ASan and UBSan on. They take allocation stacks with the fast (frame pointer)
#    unwinder: the slow one costs seconds per node start and the tests spawn many (daemons,
#    clients); detection is the same and the frames of the addon (built with frame
#    pointers) are exact; ASAN_SLOW_UNWIND=1 takes full stacks, through node, for a report.
# Every sanitizer report also goes to build/asan/logs/; any report fails the run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

# The one list of tests run under the sanitizers, here and in CI: the addon's own tests (leaks
# first, the parser, the connector, workers, the process model: snapshot(), ancestry(),
# ancestors, cgroups) and the library, daemon and client paths over the real connector
# (the replay ring and resume, the server, the client, the CLI, the ESM entry), and the exit
# cost (the taskstats socket and the /proc fallback).
TESTS=(test/asan.test.js test/parser.test.js test/connector.test.js test/worker.test.js
       test/process-model.test.js test/resume.test.js test/server-options.test.js
       test/socket-file.test.js test/handshake.test.js test/fanout.test.js test/kernel-e2e.test.js
       test/client.test.js test/cli.test.js test/esm.test.mjs test/cost.test.js)
if [ $# -gt 0 ]; then tests=("$@"); else tests=("${TESTS[@]}"); fi
missing=0
for t in "${tests[@]}"; do
  case "$t" in /*|../*) echo "asan: $t: give test files as paths from the package root (test/x.test.js)" >&2; missing=1; continue ;; esac
  [ -f "$ROOT/$t" ] || { echo "asan: $t: no such test file" >&2; missing=1; }
done
[ "$missing" -eq 0 ] || exit 2

LIBASAN="$(${CC:-gcc} -print-file-name=libasan.so)"
[ -f "$LIBASAN" ] || { echo "asan: GCC's libasan not found (apt-get install g++)" >&2; exit 2; }
[ "${ASAN_SKIP_BUILD:-}" = 1 ] || bash scripts/asan-build.sh
PKG="$ROOT/build/asan/pkg"
LOGS="$ROOT/build/asan/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"

cat > build/asan/lsan.supp <<'SUPP'
# Node/V8 allocations never freed when a process exits (process.exit(), no isolate teardown).
leak:v8::internal::Heap_CombinedGenerationalAndSharedBarrierSlow
leak:v8::internal::MemoryChunk::MemoryChunk
leak:v8::internal::MemoryChunk::AllocateSlotSet
leak:v8::internal::Page::AllocateFreeListCategories
leak:v8::internal::Heap::InsertIntoRememberedSetFromCode
leak:v8::internal::CodeObjectRegistry::RegisterNewlyAllocatedCodeObject
SUPP

leak_tests=()
other_tests=()
for t in "${tests[@]}"; do
  # The staged copy is made from the package's test/ (scripts/asan-build.sh); with
  # ASAN_SKIP_BUILD=1 it may be older than the file asked for.
  [ -f "$PKG/$t" ] || { echo "asan: $t is not in $PKG (stale staged copy? run without ASAN_SKIP_BUILD)" >&2; exit 2; }
  case "$t" in test/asan*) leak_tests+=("$t") ;; *) other_tests+=("$t") ;; esac
done

export PROCMONITOR_ASAN=1
export LD_PRELOAD="$LIBASAN"
# log_path: reports go to files as well as making the process fail, so a report in a
# child whose exit status no test looks at still fails the run.
ASAN_BASE="log_path=$LOGS/asan:halt_on_error=1:detect_odr_violation=0"
# The leak checks need whole allocation stacks (the suppressions match V8's frames).
SLOW_UNWIND="fast_unwind_on_malloc=0"
[ "${ASAN_SLOW_UNWIND:-}" = 1 ] && OTHER_UNWIND="$SLOW_UNWIND" || OTHER_UNWIND="fast_unwind_on_malloc=1"
export LSAN_OPTIONS="suppressions=$ROOT/build/asan/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan"
status=0
if [ "${#leak_tests[@]}" -gt 0 ]; then
  (cd "$PKG" && ASAN_OPTIONS="detect_leaks=1:$SLOW_UNWIND:$ASAN_BASE" node --test --test-concurrency=1 --test-timeout=900000 "${leak_tests[@]}") || status=$?
fi
if [ "${#other_tests[@]}" -gt 0 ]; then
  (cd "$PKG" && ASAN_OPTIONS="detect_leaks=0:$OTHER_UNWIND:$ASAN_BASE" node --test --test-concurrency=1 --test-timeout=900000 "${other_tests[@]}") || status=$?
fi
unset LD_PRELOAD
present=("${leak_tests[@]}" "${other_tests[@]}")
reports=$(find "$LOGS" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
  echo "asan: $reports sanitizer report(s):" >&2
  for f in "$LOGS"/*; do echo "--- $f" >&2; head -60 "$f" >&2; done
  status=1
fi
[ "$status" -eq 0 ] && echo "asan: clean (${#present[@]} test files, no sanitizer reports)"
exit "$status"
