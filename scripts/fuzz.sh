#!/usr/bin/env bash
# Fuzzes the pure native code with libFuzzer (clang), under ASan and UBSan:
#   fuzz/datagram_fuzzer.cc  pm::ParseDatagram / BuildMcastRequest (netlink datagrams)
#   fuzz/status_fuzzer.cc    pm::ParseStatus (/proc/PID/status text)
#   fuzz/wire_fuzzer.cc      pm::AppendJsonString / AppendEventLine (the NDJSON writer), and
#                            pm::ReadEventLine / LineFilter (its lines read back, any bytes)
#   fuzz/table_fuzzer.cc     pm::ProcessTable fed event sequences, against a fake /proc
#                            (fuzz/fake_proc_reader.h): invariants of the table and its exits
#   fuzz/taskstats_fuzzer.cc pm::ParseTaskstats (taskstats exit datagrams) and ExitCost's map
#
#   bash scripts/fuzz.sh [SECONDS]     default 1800 (npm run fuzz); CI runs 60
# Env: FUZZ_JOBS=N parallel workers per target (default 1); FUZZ_CXX=clang++-NN.
# The committed seeds in fuzz/corpus/ are read, never written: new inputs go to
# build/fuzz/corpus-*/ (kept between runs), crashes to build/fuzz/artifacts/ (and fail
# the run). Exit status: 0 clean, 1 a crash/leak/timeout was found, 2 no clang.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-${FUZZ_SECONDS:-1800}}
jobs=${FUZZ_JOBS:-1}
out=build/fuzz

cxx=${FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null; then cxx=$c; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz: no clang++ (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

mkdir -p "$out/artifacts" "$out/corpus-datagram" "$out/corpus-status" "$out/corpus-wire" "$out/corpus-table" "$out/corpus-taskstats" fuzz/corpus/wire
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all)
echo "fuzz: building with $("$cxx" --version | head -1)"
"$cxx" "${flags[@]}" fuzz/datagram_fuzzer.cc native/parser.cc -o "$out/datagram_fuzzer"
"$cxx" "${flags[@]}" fuzz/status_fuzzer.cc native/procfs.cc native/proc_dir.cc native/context.cc native/pattern.cc native/pattern_parse.cc -o "$out/status_fuzzer"
"$cxx" "${flags[@]}" fuzz/wire_fuzzer.cc native/wire.cc native/wire_fields.cc native/line_reader.cc native/line_filter.cc native/filter.cc native/pattern.cc native/pattern_parse.cc -o "$out/wire_fuzzer"
"$cxx" "${flags[@]}" fuzz/table_fuzzer.cc native/process_table.cc native/process_store.cc native/process_context.cc native/lineage.cc native/redact.cc native/pattern.cc native/pattern_parse.cc native/procfs.cc native/proc_dir.cc native/context.cc native/wire.cc native/wire_fields.cc \
  -o "$out/table_fuzzer"
"$cxx" "${flags[@]}" fuzz/taskstats_fuzzer.cc native/taskstats.cc native/exit_cost.cc native/procfs.cc native/proc_dir.cc native/context.cc \
  -o "$out/taskstats_fuzzer"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The same total as before the taskstats parser came: a third for the datagram parser, a
# sixth each for the status parser, the wire writer, the process table and the taskstats
# parser.
t_dgram=$(( total / 3 ))
t_status=$(( total / 6 ))
t_wire=$(( total / 6 ))
t_taskstats=$(( total / 6 ))
t_table=$(( total - t_dgram - t_status - t_wire - t_taskstats ))
[ "$t_dgram" -ge 1 ] || t_dgram=1
[ "$t_status" -ge 1 ] || t_status=1
[ "$t_wire" -ge 1 ] || t_wire=1
[ "$t_table" -ge 1 ] || t_table=1
[ "$t_taskstats" -ge 1 ] || t_taskstats=1

run() {  # name seconds extra-args...
  local name=$1 secs=$2; shift 2
  local par=()
  if [ "$jobs" -gt 1 ]; then par=(-fork="$jobs" -ignore_crashes=0); fi
  echo "fuzz: $name for ${secs}s"
  "$out/${name}_fuzzer" "$@" "${par[@]}" -max_total_time="$secs" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$name-" \
    "$out/corpus-$name" "fuzz/corpus/$name" 2>&1 | tee "$out/$name.log" | grep -E \
    '^(INFO: seed corpus|#[0-9]+[[:space:]]+DONE|stat::|Done [0-9]+ runs|==[0-9]+==|SUMMARY|.*runtime error|.*deadly signal|artifact_prefix|Test unit written)' || true
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $rc); see $out/$name.log and $out/artifacts/" >&2
    return 1
  fi
}

status=0
run datagram "$t_dgram" -dict=fuzz/datagram.dict -max_len=4096 || status=1
run status "$t_status" -max_len=8192 || status=1
run wire "$t_wire" -max_len=4096 || status=1
run table "$t_table" -max_len=4096 || status=1
run taskstats "$t_taskstats" -max_len=4096 || status=1
[ "$status" -eq 0 ] && echo "fuzz: clean (${total}s)"
exit "$status"
