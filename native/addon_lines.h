// Node-API binding, part two (addon_lines.cc): the LineFilter class, for addon.cc's exports.
#pragma once

#include <napi.h>

namespace pm_addon {

Napi::Function LineFilterClass(Napi::Env env);

}  // namespace pm_addon
