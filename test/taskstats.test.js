'use strict';
// The exit cost's pure parts on their own: test/native/taskstats_test.cc runs the taskstats
// parser (native/taskstats.cc) on real datagrams (fuzz/corpus/taskstats/) and crafted ones,
// ExitCost's bounded map of records (native/exit_cost.cc), the /proc cost parsers and the cost
// on the wire. A C++ program, built here with g++ under AddressSanitizer and
// UndefinedBehaviorSanitizer (leaks checked at its exit); each of its cases is a subtest.
const test = require('node:test');
const { runNativeUnit } = require('./native-unit');

test('taskstats records, the exit cost map, /proc cost parsers (C++ unit tests)', { timeout: 300000 }, (t) =>
  runNativeUnit(t, 'taskstats_test', [
    'test/native/taskstats_test.cc',
    'native/taskstats.cc',
    'native/exit_cost.cc',
    'native/procfs.cc',
    'native/proc_dir.cc',
    'native/context.cc',
    'native/wire.cc',
    'native/wire_fields.cc',
  ]),
);
