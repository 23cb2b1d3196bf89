'use strict';
// The process table (native/process_table.cc) and the reader's pacing (native/pacer.h) on their
// own: test/native/table_test.cc feeds them sequences of events against a fake /proc
// (fuzz/fake_proc_reader.h), no kernel involved. It is a C++ program, built here with g++ under
// AddressSanitizer and UndefinedBehaviorSanitizer (leaks checked at its exit); each of its
// cases is a subtest.
const test = require('node:test');
const { runNativeUnit, TABLE_SOURCES } = require('./native-unit');

test('the process table, fed event sequences (C++ unit tests)', { timeout: 300000 }, (t) => runNativeUnit(t, 'table_test', ['test/native/table_test.cc', ...TABLE_SOURCES]));
