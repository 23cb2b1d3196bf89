// Node-API binding, part three (addon_journal.cc): the JournalSocket class, for addon.cc's exports.
#pragma once

#include <napi.h>

namespace pm_addon {

Napi::Function JournalSocketClass(Napi::Env env);

}  // namespace pm_addon
