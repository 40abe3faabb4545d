// teardown/detail/fd.hpp — file descriptors: the owner (UniqueFd), close-on-exec pipes, fd flags,
// poll with a deadline, and the EINTR retry every blocking call goes through.
//
// Each function is one system call (or a fixed few) behind a name that says what it is for, so
// the components read as their algorithm. Unless noted, a function returns what the call returns
// (-1 and errno on failure); the ones that throw say so and name what the fd was for.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "../core.hpp"

namespace teardown::detail {

[[noreturn]] inline void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

/// Calls `call()` until it does not fail with EINTR; returns its last result. A signal
/// delivered to the calling thread must never abort a wait or a reap.
template <class Call>
auto retry_eintr(Call&& call) noexcept(noexcept(call())) {
  for (;;) {
    auto result = call();
    if (!(result == -1 && errno == EINTR)) return result;
  }
}

/// Owns a POSIX file descriptor; -1 means empty. Public as teardown::UniqueFd
/// (unique_resource.hpp).
///
/// `close()` is called once and never retried: on Linux the descriptor is released even when
/// close fails with EINTR, and retrying could close a descriptor another thread just opened.
/// Move-only; the moved-from object is empty. Thread-safety: one owner. Signal-safety: the
/// destructor only calls close(2), which is async-signal-safe.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  /// Closes the owned descriptor (if any) and takes `fd` (-1: none).
  void reset(int fd = -1) noexcept {
    const int previous = std::exchange(fd_, fd < 0 ? -1 : fd);
    if (previous >= 0) ::close(previous);
  }
  /// Gives up ownership; returns the descriptor (-1 if empty).
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

 private:
  int fd_ = -1;
};

/// Closes an fd that no UniqueFd owns (one published to a signal handler, say). Never retried.
inline void close_fd(int fd) noexcept {
  if (fd >= 0) (void)::close(fd);
}

/// Sets FD_CLOEXEC on `fd`; false when fcntl fails.
inline bool set_cloexec(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0;
}

/// Whether `fd` is an open descriptor now.
inline bool is_open_fd(int fd) noexcept { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

/// Sets O_NONBLOCK on `fd` (for the signal handler's end of a self-pipe: a full pipe must not
/// block inside a handler). Throws std::system_error.
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

/// A pipe, both ends close-on-exec.
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

/// A close-on-exec pipe. Throws std::system_error naming `purpose`, what the pipe is for.
inline Pipe make_pipe(std::string_view purpose) {
  int ends[2];
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
  if (::pipe2(ends, O_CLOEXEC) != 0) throw_errno(errno, "pipe2(O_CLOEXEC) for " + std::string(purpose));
  return Pipe{UniqueFd(ends[0]), UniqueFd(ends[1])};
#else
  // No pipe2 (macOS, older POSIX): the window before FD_CLOEXEC is the best the platform offers.
  if (::pipe(ends) != 0) throw_errno(errno, "pipe() for " + std::string(purpose));
  Pipe made{UniqueFd(ends[0]), UniqueFd(ends[1])};
  if (!set_cloexec(ends[0]) || !set_cloexec(ends[1])) {
    throw_errno(errno, "fcntl(FD_CLOEXEC) for " + std::string(purpose));
  }
  return made;
#endif
}

/// Moves `fd` to a number ≥ 3 (close-on-exec) when it landed on 0, 1 or 2 — which happens when
/// this process runs with its stdio closed. A child's fds 0-2 are its stdio: an fd the child
/// must keep, or that is dup2'd onto a stdio slot, must not sit in one. Throws naming `what`.
inline void move_above_stdio(UniqueFd& fd, const char* what) {
  if (fd.get() >= 3) return;
  fd.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!fd) {
    throw std::system_error(errno, std::generic_category(), std::string("teardown::spawn: dup ") + what);
  }
}

/// A close-on-exec copy of `fd` numbered 3 or above, or -1 with errno (EBADF: `fd` is not open).
inline int duplicate_above_stdio(int fd) noexcept { return fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 3); }

/// Opens `path` close-on-exec, or -1 with errno.
inline int open_cloexec(const char* path, int flags) noexcept { return ::open(path, flags | O_CLOEXEC); }

/// Writes one byte (a wake-up, a "signalled"); EINTR retried. Returns what write returns.
inline ssize_t write_byte(int fd, char byte) noexcept {
  return retry_eintr([&] { return ::write(fd, &byte, 1); });
}

/// One read(2) of up to `size` bytes, not retried: the caller decides what EINTR means.
inline ssize_t read_some(int fd, void* buffer, std::size_t size) noexcept { return ::read(fd, buffer, size); }

/// One read(2) of up to `size` bytes, EINTR retried.
inline ssize_t read_retrying(int fd, void* buffer, std::size_t size) noexcept {
  return retry_eintr([&] { return ::read(fd, buffer, size); });
}

/// poll(2) with a timeout in milliseconds (-1: none), EINTR restarting with the whole timeout.
/// Returns the number of ready fds, 0 at the timeout, -1 with errno on failure.
inline int poll_retrying(pollfd* fds, nfds_t count, int timeout_ms) noexcept {
  return retry_eintr([&] { return ::poll(fds, count, timeout_ms); });
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
  return poll_retrying(&entry, 1, 0) > 0;
}

/// Whether `fd` reports a hang-up or an error right now (a pipe whose write ends all closed).
inline bool hung_up_now(int fd) noexcept {
  pollfd entry{fd, POLLIN, 0};
  if (poll_retrying(&entry, 1, 0) <= 0) return false;
  return (entry.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace teardown::detail
