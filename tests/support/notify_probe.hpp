// Checks that a condition variable is notified while its mutex is held. A notify after the
// unlock lets a waiter that sees the new state return and destroy the object (cv included)
// before the notifier touches it: a use-after-free. Include in ONE test file per executable:
// it interposes pthread_mutex_lock/unlock and pthread_cond_broadcast for the executable, and
// counts, on the thread that enables it, the mutexes held at each broadcast.
// Unavailable under ThreadSanitizer, whose own interceptors must see these calls.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define TEARDOWN_TEST_NOTIFY_PROBE 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEARDOWN_TEST_NOTIFY_PROBE 0
#endif
#endif
#ifndef TEARDOWN_TEST_NOTIFY_PROBE
#define TEARDOWN_TEST_NOTIFY_PROBE 1
#endif

#if TEARDOWN_TEST_NOTIFY_PROBE
#include <dlfcn.h>
#include <pthread.h>

namespace teardown_test::notify_probe {

struct Counts {
  bool enabled = false;
  int held = 0;                 // mutexes this thread holds (std::mutex locks)
  int broadcasts = 0;           // broadcasts while enabled
  int broadcasts_unlocked = 0;  // ... of which with no mutex held
};
inline thread_local Counts counts;

/// Counts on the current thread while alive.
struct Scope {
  Scope() { counts = Counts{true, 0, 0, 0}; }
  ~Scope() { counts.enabled = false; }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
};

template <class Fn>
Fn next_symbol(const char* name, const char* version) {
  void* symbol = version ? dlvsym(RTLD_NEXT, name, version) : nullptr;
  if (symbol == nullptr) symbol = dlsym(RTLD_NEXT, name);
  return reinterpret_cast<Fn>(symbol);
}

}  // namespace teardown_test::notify_probe

extern "C" int pthread_mutex_lock(pthread_mutex_t* mutex) {
  using Fn = int (*)(pthread_mutex_t*);
  static const Fn real = teardown_test::notify_probe::next_symbol<Fn>("pthread_mutex_lock", nullptr);
  const int result = real(mutex);
  if (result == 0 && teardown_test::notify_probe::counts.enabled) ++teardown_test::notify_probe::counts.held;
  return result;
}

extern "C" int pthread_mutex_unlock(pthread_mutex_t* mutex) {
  using Fn = int (*)(pthread_mutex_t*);
  static const Fn real = teardown_test::notify_probe::next_symbol<Fn>("pthread_mutex_unlock", nullptr);
  if (teardown_test::notify_probe::counts.enabled) --teardown_test::notify_probe::counts.held;
  return real(mutex);
}

extern "C" int pthread_cond_broadcast(pthread_cond_t* cond) {
  using Fn = int (*)(pthread_cond_t*);
  static const Fn real =
      teardown_test::notify_probe::next_symbol<Fn>("pthread_cond_broadcast", "GLIBC_2.3.2");
  auto& counts = teardown_test::notify_probe::counts;
  if (counts.enabled) {
    ++counts.broadcasts;
    if (counts.held <= 0) ++counts.broadcasts_unlocked;
  }
  return real(cond);
}
#endif
