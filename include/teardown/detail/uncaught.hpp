// teardown/detail/uncaught.hpp — how many exceptions are in flight on this thread, cheaply:
// what a failure/success scope guard and a DrainGroup ticket's outcome ask when they end.
#pragma once

#include <exception>

#if defined(__GLIBCXX__) && __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace teardown::detail {

/// `std::uncaught_exceptions()`, read where the C++ ABI keeps it. libstdc++'s own function
/// reaches the count through two PLT calls and `__tls_get_addr` (a few ns each, paid twice per
/// failure/success guard); the count is the `uncaughtExceptions` field of the thread's
/// `__cxa_eh_globals` (Itanium C++ ABI 2.2.2), whose address is fixed for the thread's life, so
/// it is looked up once per thread and kept in a `thread_local`. Elsewhere: the standard call.
#if defined(__GLIBCXX__) && __has_include(<cxxabi.h>)
struct ItaniumEhGlobals {  // the ABI's layout of __cxa_eh_globals
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

[[gnu::cold, gnu::noinline]] inline const ItaniumEhGlobals* find_eh_globals() noexcept {
  return reinterpret_cast<const ItaniumEhGlobals*>(abi::__cxa_get_globals());
}

inline int uncaught_exceptions() noexcept {
  constinit thread_local const ItaniumEhGlobals* globals = nullptr;
  if (globals == nullptr) [[unlikely]]
    globals = find_eh_globals();
  return static_cast<int>(globals->uncaught_exceptions);
}
#else
inline int uncaught_exceptions() noexcept { return std::uncaught_exceptions(); }
#endif

}  // namespace teardown::detail
