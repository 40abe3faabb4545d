// teardown/detail/signals.hpp — signal dispositions, masks and what may run in a handler.
//
// The bridge from a handler to a library thread (SignalPipeSlot), the library thread that runs
// with signals blocked, installing and restoring a handler, the parent-death signal, and the two
// async-signal-safe exits a handler or a timer takes. Each is one system call (or a fixed few)
// behind a name, so ShutdownSignals and ParentWatch read as their algorithm.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <pthread.h>

namespace teardown::detail {

/// Installs `handler` for `signo` with SA_RESTART (other threads' blocking calls carry on
/// undisturbed), `blocked_while_running` masked while it runs; the disposition it replaces goes
/// to `previous`. Returns what sigaction returns.
inline int install_handler(int signo, void (*handler)(int), const sigset_t& blocked_while_running,
                           struct sigaction& previous) noexcept {
  struct sigaction action {};
  action.sa_handler = handler;
  action.sa_mask = blocked_while_running;
  action.sa_flags = SA_RESTART;
  return ::sigaction(signo, &action, &previous);
}

/// Puts back a disposition saved by install_handler.
inline void restore_handler(int signo, const struct sigaction& previous) noexcept {
  (void)::sigaction(signo, &previous, nullptr);
}

/// Sends `signo` to this whole process (not just the calling thread), as a supervisor would.
inline void signal_this_process(int signo) noexcept { (void)::kill(::getpid(), signo); }

/// Ends the process at once with `code`: no atexit handlers, no destructors. Async-signal-safe.
[[noreturn]] inline void exit_now(int code) noexcept { ::_exit(code); }

/// PR_SET_PDEATHSIG for the calling thread (0 clears it): the kernel sends `signo` when the
/// parent *thread* that forked this process exits. Returns what prctl returns; -1 with ENOSYS
/// off Linux.
inline int set_parent_death_signal(int signo) noexcept {
#if defined(__linux__)
  return ::prctl(PR_SET_PDEATHSIG, signo);
#else
  (void)signo;
  errno = ENOSYS;
  return -1;
#endif
}

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

}  // namespace teardown::detail
