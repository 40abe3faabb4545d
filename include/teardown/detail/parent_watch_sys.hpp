// teardown/detail/parent_watch_sys.hpp — the POSIX calls behind ParentWatch and ShutdownSignals,
// each behind a small named function so the components read as their algorithm.
//
// Generic helpers (retry_eintr, pidfd_open, poll_until) come from detail/process.hpp and are
// found from `teardown::detail::watch_sys` by ordinary lookup.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
#define TEARDOWN_WATCH_HAVE_KQUEUE 1
#include <sys/event.h>
#endif

#include "../core.hpp"
#include "../unique_resource.hpp"
#include "process.hpp"

namespace teardown::detail::watch_sys {

[[noreturn]] inline void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

/// A pipe, both ends close-on-exec.
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

inline Pipe make_pipe(const char* purpose) {
  int fds[2];
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, std::string("pipe2(O_CLOEXEC) for ") + purpose);
#else  // macOS has no pipe2: the window before FD_CLOEXEC is the best the platform offers
  if (::pipe(fds) != 0) throw_errno(errno, std::string("pipe() for ") + purpose);
  ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

/// Sets O_NONBLOCK on `fd` (for the signal handler's end of a self-pipe: a full pipe must not
/// block inside a handler).
inline void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno(errno, "fcntl(O_NONBLOCK)");
}

/// Whether `fd` is open, and is the read end of a pipe or FIFO.
inline bool is_pipe_read_end(int fd) noexcept {
  struct stat info {};
  if (::fcntl(fd, F_GETFD) < 0) return false;
  if (::fstat(fd, &info) != 0 || !S_ISFIFO(info.st_mode)) return false;
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_ACCMODE) == O_RDONLY;
}

inline bool set_cloexec(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0;
}

/// Whether `fd` reports readable/hang-up/error within `deadline` (EINTR retried against the same
/// deadline). Throws when poll itself fails.
inline bool wait_readable(int fd, Deadline deadline) {
  pollfd entry{fd, POLLIN, 0};
  const int ready = poll_until(&entry, 1, deadline.time_point());
  if (ready < 0) throw_errno(errno, "poll() on a teardown watch fd");
  return ready > 0;
}

/// Whether `fd` is readable (or hung up) right now.
inline bool readable_now(int fd) noexcept {
  pollfd entry{fd, POLLIN, 0};
  return retry_eintr([&] { return ::poll(&entry, 1, 0); }) > 0;
}

#if defined(TEARDOWN_WATCH_HAVE_KQUEUE)
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

/// Starts a std::thread that runs with every signal blocked, so that process-directed signals
/// are delivered to the application's threads and never land on a library thread, except those
/// in `unblocked` (the library thread then guarantees a thread that can run their handler).
template <class F>
std::thread start_thread_with_signals_blocked(F&& body, const sigset_t* unblocked = nullptr) {
  sigset_t all;
  sigfillset(&all);
  if (unblocked != nullptr) {
    for (int signo = 1; signo < NSIG; ++signo) {
      if (sigismember(unblocked, signo) == 1) sigdelset(&all, signo);
    }
  }
  sigset_t previous;
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{previous};
  return std::thread(std::forward<F>(body));
}

/// The bridge from a signal handler to a library thread: the handler writes one byte to a
/// self-pipe whose write end is published here. Constant-initialised and lock-free, so a handler
/// may touch it at any time. `disconnect()` unpublishes the pipe and waits until no handler is
/// still inside `notify()`, after which the pipe may be closed without a handler writing into a
/// recycled descriptor number.
struct SignalPipeSlot {
  static_assert(std::atomic<int>::is_always_lock_free,
                "teardown needs lock-free std::atomic<int> to talk to signal handlers");
  std::atomic<int> write_fd{-1};
  std::atomic<int> handlers_inside{0};

  void notify() noexcept {
    handlers_inside.fetch_add(1);
    const int fd = write_fd.load();
    if (fd >= 0) {
      const char byte = '!';
      (void)::write(fd, &byte, 1);  // non-blocking: a full pipe already says "signalled"
    }
    handlers_inside.fetch_sub(1);
  }
  void connect(int fd) noexcept { write_fd.store(fd); }
  void disconnect() noexcept {
    write_fd.store(-1);
    while (handlers_inside.load() != 0) std::this_thread::yield();
  }
};

}  // namespace teardown::detail::watch_sys
