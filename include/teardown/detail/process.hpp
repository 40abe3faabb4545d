// teardown/detail/process.hpp — the process syscalls Reaper is built on, one small function each.
//
// Every function here returns what the syscall returns (-1 and errno on failure) so callers read
// as the algorithm; `retry_eintr` wraps the ones that can be interrupted. Linux gets pidfds
// (pidfd_open 5.3, waitid(P_PIDFD) 5.4, close_range 5.9); elsewhere the pidfd functions fail
// with ENOSYS, which is exactly what an old Linux kernel says, so there is one fallback path.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <ctime>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "../core.hpp"

namespace teardown::detail {

/// Calls `call()` until it does not fail with EINTR; returns its last result. A signal
/// delivered to the calling thread must never abort a wait or a reap.
template <class Call>
auto retry_eintr(Call&& call) noexcept(noexcept(call())) {
  for (;;) {
    auto result = call();
    if (!(result == -1 && errno == EINTR)) return result;
  }
}

/// A pidfd for `pid` (always close-on-exec), or -1 with errno (ENOSYS without pidfd support).
inline int pidfd_open(pid_t pid) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/// Sends `signo` to the process behind `pidfd`: never to a recycled pid.
inline int pidfd_send_signal(int pidfd, int signo) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0));
#else
  (void)pidfd;
  (void)signo;
  errno = ENOSYS;
  return -1;
#endif
}

/// waitid(P_PIDFD, pidfd, ...): EINVAL on kernels before 5.4, ECHILD once reaped elsewhere.
inline int waitid_pidfd(int pidfd, siginfo_t* info, int options) noexcept {
#if defined(__linux__)
  constexpr auto p_pidfd = static_cast<idtype_t>(3);  // P_PIDFD, absent from older headers
  return ::waitid(p_pidfd, static_cast<id_t>(pidfd), info, options);
#else
  (void)pidfd;
  (void)info;
  (void)options;
  errno = EINVAL;
  return -1;
#endif
}

/// Closes every fd in [first, last] (INT_MAX: every fd from `first` on). Async-signal-safe: runs
/// in a forked child before exec. close_range(2) when the kernel has it (5.9), otherwise one
/// close(2) per number up to `fallback_last`, computed before fork by highest_possible_fd().
// Code that runs between fork() and exec() must not enter a sanitizer's runtime: after a
// multithreaded fork, its internal locks may be held by threads that do not exist in the child,
// and ThreadSanitizer (before LLVM 19) can hang there. Such functions touch only plain data and
// system calls. Feature detection only: compilers without the attribute instrument as usual.
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC
#define TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC
#endif

TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void close_fd_range(int first, int last,
                                                                 int fallback_last) noexcept {
  if (first > last) return;
#if defined(__linux__) && defined(SYS_close_range)
  const unsigned range_end = last == INT_MAX ? ~0U : static_cast<unsigned>(last);
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), range_end, 0U) == 0) return;
#endif
  const int end = last < fallback_last ? last : fallback_last;  // no library call: runs after fork
  for (int fd = first; fd <= end; ++fd) (void)::close(fd);
}

/// The highest fd number worth closing by hand when close_range is missing.
inline int highest_possible_fd() noexcept {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 65535;
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, static_cast<rlim_t>(INT_MAX)) - 1);
}

/// poll(2) until an event, or until `until` (never: no timeout). Returns the number of ready fds,
/// 0 at the deadline, -1 with errno on failure. EINTR restarts with the time that is left.
inline int poll_until(pollfd* fds, nfds_t count, Clock::time_point until) noexcept {
  for (;;) {
    int timeout_ms = -1;
    if (until != Clock::time_point::max()) {
      const auto left = until - Clock::now();
      if (left <= Clock::duration::zero()) {
        timeout_ms = 0;
      } else {
        // Round up: waking a little late is harmless, waking early spins.
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        timeout_ms = static_cast<int>(std::min<long long>(ms, INT_MAX));
      }
    }
    const int ready = ::poll(fds, count, timeout_ms);
    if (ready == -1 && errno == EINTR) continue;
    if (ready == 0 && timeout_ms != 0 && Clock::now() < until) continue;  // woke a hair early
    return ready;
  }
}

}  // namespace teardown::detail
