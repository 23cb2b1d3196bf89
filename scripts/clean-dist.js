#!/usr/bin/env node
'use strict';
// Empties dist/ before tsc writes it: a module moved or removed in lib/ leaves no stale copy
// behind to be loaded or packed.
require('node:fs').rmSync(require('node:path').join(__dirname, '..', 'dist'), { recursive: true, force: true });
