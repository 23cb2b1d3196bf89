#!/usr/bin/env bash
# Line/branch coverage of the native parsers and the process table by the fuzz corpora (committed seeds plus
# what scripts/fuzz.sh found in build/fuzz/corpus-*): clang source-based coverage.
#   bash scripts/fuzz-coverage.sh [--seeds-only]
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/fuzz/cov
mkdir -p "$out"
cxx=${FUZZ_CXX:-clang++}
ver=$("$cxx" --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p')
profdata=$(command -v llvm-profdata-"$ver" || command -v llvm-profdata)
llvmcov=$(command -v llvm-cov-"$ver" || command -v llvm-cov)
flags=(-std=c++17 -O0 -g -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping)
"$cxx" "${flags[@]}" fuzz/datagram_fuzzer.cc native/parser.cc -o "$out/datagram"
"$cxx" "${flags[@]}" fuzz/status_fuzzer.cc native/procfs.cc native/proc_dir.cc native/context.cc native/pattern.cc native/pattern_parse.cc -o "$out/status"
"$cxx" "${flags[@]}" fuzz/table_fuzzer.cc native/process_table.cc native/process_store.cc native/process_context.cc native/lineage.cc native/redact.cc native/pattern.cc native/pattern_parse.cc native/procfs.cc native/proc_dir.cc native/context.cc native/wire.cc native/wire_fields.cc -o "$out/table"
"$cxx" "${flags[@]}" fuzz/wire_fuzzer.cc native/wire.cc native/wire_fields.cc native/line_reader.cc native/line_filter.cc native/filter.cc native/pattern.cc native/pattern_parse.cc -o "$out/wire"
"$cxx" "${flags[@]}" fuzz/taskstats_fuzzer.cc native/taskstats.cc native/exit_cost.cc native/procfs.cc native/proc_dir.cc native/context.cc -o "$out/taskstats"
for t in datagram status table taskstats wire; do
  dirs=("fuzz/corpus/$t")
  if [ "${1:-}" != --seeds-only ] && [ -d "build/fuzz/corpus-$t" ]; then dirs+=("build/fuzz/corpus-$t"); fi
  n=$(find "${dirs[@]}" -type f | wc -l)
  LLVM_PROFILE_FILE="$out/$t.profraw" "$out/$t" -runs=0 "${dirs[@]}" >/dev/null 2>&1
  "$profdata" merge -sparse "$out/$t.profraw" -o "$out/$t.profdata"
  echo "== $t: $n inputs"
  src=(native/parser.cc)
  [ "$t" = status ] && src=(native/procfs.cc native/proc_dir.cc native/context.cc native/pattern.cc native/pattern_parse.cc)
  [ "$t" = table ] && src=(native/process_table.cc native/process_store.cc native/process_context.cc native/lineage.cc)
  [ "$t" = taskstats ] && src=(native/taskstats.cc native/exit_cost.cc)
  [ "$t" = wire ] && src=(native/wire.cc native/wire_fields.cc native/line_reader.cc native/line_filter.cc)
  "$llvmcov" report "$out/$t" -instr-profile="$out/$t.profdata" -show-functions "${src[@]}" |
    sed -n '1,40p'
done
