// Force-included (-include) by scripts/prebuild.sh into every source of the prebuilds, never
// into a from-source build. It keeps the prebuilds loadable on older distributions than the
// Debian 12 they are built on (test/prebuild.test.js checks the symbol versions):
// - GCC 11+ headers call std::__throw_bad_array_new_length(), which only libstdc++ from GCC 11
//   on exports (GLIBCXX_3.4.29); a private definition keeps the need at GLIBCXX_3.4.22 (GCC 6).
//   It is reached only when an allocation size overflows, which the addon never asks for.
// - GCC 12 headers read glibc 2.32's __libc_single_threaded (shared_ptr reference counts);
//   here it reads as "not single-threaded", so atomic operations are always used, as they
//   were before glibc 2.32. The need stays at GLIBC_2.17.
// - std::make_shared without RTTI (node-gyp builds with -fno-rtti) references
//   std::_Sp_make_shared_tag::_S_eq, exported from GCC 9 on (GLIBCXX_3.4.26). Only
//   std::get_deleter reaches it; the private copy answers by address as GCC 9's does for its
//   own tag, without reading the (fake) type_info.
#pragma once
#if defined(__cplusplus) && defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define __libc_single_threaded procmonitor_compat_libc_single_threaded
static const char procmonitor_compat_libc_single_threaded = 0;
#endif
#endif
#if defined(__cplusplus) && defined(__GNUC__)
namespace std {
__attribute__((weak, visibility("hidden"), noreturn)) void __throw_bad_array_new_length();
__attribute__((weak, visibility("hidden"), noreturn)) void __throw_bad_array_new_length() {
  __builtin_trap();
}
}  // namespace std
#endif

#if defined(__cplusplus) && defined(__GNUC__) && !defined(__cpp_rtti)
#include <memory>
namespace std {
__attribute__((weak, visibility("hidden"))) bool _Sp_make_shared_tag::_S_eq(const type_info& ti) noexcept {
  return &ti == &_S_ti();
}
}  // namespace std
#endif
