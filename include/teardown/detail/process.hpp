// teardown/detail/process.hpp — the process syscalls Reaper and the watches are built on, one
// small function each: who we are, waiting for and signalling a pid or a group, closing fds in a
// forked child, and this process's environment.
//
// Every function here returns what the syscall returns (-1 and errno on failure) so callers read
// as the algorithm; `retry_eintr` (detail/fd.hpp) wraps the ones that can be interrupted. The
// pidfd calls live in detail/pidfd.hpp (included here, as is detail/fd.hpp).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#if defined(__APPLE__)
#include <crt_externs.h>
#else
// POSIX defines `environ` but no header has to declare it (glibc does only with _GNU_SOURCE).
extern "C" {
extern char** environ;
}
#endif

#include "../core.hpp"
#include "fd.hpp"
#include "pidfd.hpp"

namespace teardown::detail {

/// This process's pid.
inline pid_t current_pid() noexcept { return ::getpid(); }

/// This process's parent now (a subreaper or init once the parent died).
inline pid_t parent_pid() noexcept { return ::getppid(); }

/// The process group `pid` belongs to, or -1 with errno.
inline pid_t process_group_of(pid_t pid) noexcept { return ::getpgid(pid); }

/// kill(2) to one pid. Safe only while the pid is known unreaped (it cannot have been recycled).
inline int signal_pid(pid_t pid, int signo) noexcept { return ::kill(pid, signo); }

/// kill(2) to every member of process group `group`.
inline int signal_process_group(pid_t group, int signo) noexcept { return ::kill(-group, signo); }

/// waitid(P_PID, pid, ...).
inline int waitid_pid(pid_t pid, siginfo_t* info, int options) noexcept {
  return ::waitid(P_PID, static_cast<id_t>(pid), info, options);
}

/// This process's environment, as `environ` (the C library's, so setenv is seen).
inline char** process_environment() noexcept {
#if defined(__APPLE__)
  return *::_NSGetEnviron();
#else
  return environ;
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

}  // namespace teardown::detail
