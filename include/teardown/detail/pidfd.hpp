// teardown/detail/pidfd.hpp — descriptors for processes: a pidfd (Linux) or a kqueue exit watch
// (BSD, macOS), and the calls made through them.
//
// A pidfd names one process for good: signalling or waiting through it never reaches a recycled
// pid. Linux gets pidfds (pidfd_open 5.3, waitid(P_PIDFD) 5.4); elsewhere the pidfd functions
// fail with ENOSYS, which is exactly what an old Linux kernel says, so there is one fallback path.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
#define TEARDOWN_DETAIL_HAVE_KQUEUE 1
#include <sys/event.h>
#endif

#include "fd.hpp"

namespace teardown::detail {

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

#if defined(TEARDOWN_DETAIL_HAVE_KQUEUE)
/// A kqueue fd (pollable) that becomes readable when `pid` exits; -1 with errno on failure
/// (ESRCH: it is already gone).
inline int kqueue_watch_exit(pid_t pid) noexcept {
  const int queue = ::kqueue();
  if (queue < 0) return -1;
  set_cloexec(queue);
  struct kevent change;
  EV_SET(&change, static_cast<uintptr_t>(pid), EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, nullptr);
  if (retry_eintr([&] { return ::kevent(queue, &change, 1, nullptr, 0, nullptr); }) != 0) {
    const int error = errno;
    ::close(queue);
    errno = error;
    return -1;
  }
  return queue;
}
#endif

}  // namespace teardown::detail
