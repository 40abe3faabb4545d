// Real-process plumbing for the ParentWatch and ShutdownSignals tests: start the watch_helper
// program (tests/process/helpers/watch_helper.cpp) with chosen descriptors inherited, read its
// report lines with a deadline, wait for a process to exit with a deadline (pidfd, no sleeps),
// and SIGKILL + reap whatever a test leaves behind.
#pragma once

#include <teardown/core.hpp>
#include <teardown/detail/fd.hpp>
#include <teardown/detail/pidfd.hpp>
#include <teardown/unique_resource.hpp>

#include <chrono>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TEARDOWN_WATCH_HELPER
#error "TEARDOWN_WATCH_HELPER (the path of the watch_helper program) must be defined by the build"
#endif

namespace teardown_test {

namespace sys = teardown::detail;
using namespace std::chrono_literals;

inline const char* watch_helper_path() { return TEARDOWN_WATCH_HELPER; }

inline long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(teardown::Clock::now().time_since_epoch())
      .count();
}

/// fork + exec of `argv`, with `inherit` descriptors kept open across exec and `stdin_fd` (if
/// >= 0) as standard input. Everything is prepared before fork.
inline pid_t spawn(std::vector<std::string> argv, std::vector<int> inherit = {}, int stdin_fd = -1) {
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (stdin_fd >= 0) ::dup2(stdin_fd, STDIN_FILENO);
    for (int fd : inherit) ::fcntl(fd, F_SETFD, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

/// Reads newline-terminated lines from a pipe, each within a deadline.
///
/// Several processes write to one pipe, so lines arrive in any order: a helper's child may run
/// (and report "armed") before its parent, just back from fork, reports "child <pid>". A line
/// skipped while looking for another prefix is therefore kept for a later `next_starting`.
class LineReader {
 public:
  explicit LineReader(teardown::UniqueFd fd) : fd_(std::move(fd)) {}
  /// The next line not yet returned (kept lines first), or nullopt at the deadline or EOF.
  std::optional<std::string> next(teardown::Deadline deadline) {
    if (!kept_.empty()) {
      std::string line = std::move(kept_.front());
      kept_.pop_front();
      return line;
    }
    return read_line(deadline);
  }
  /// The first line that starts with `prefix` (others are kept), or nullopt at the deadline.
  std::optional<std::string> next_starting(const std::string& prefix, teardown::Deadline deadline) {
    for (auto line = kept_.begin(); line != kept_.end(); ++line) {
      if (line->rfind(prefix, 0) == 0) {
        std::string found = line->substr(prefix.size());
        kept_.erase(line);
        return found;
      }
    }
    while (auto line = read_line(deadline)) {
      if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
      kept_.push_back(std::move(*line));
    }
    return std::nullopt;
  }

 private:
  std::optional<std::string> read_line(teardown::Deadline deadline) {
    for (;;) {
      const auto newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      if (!sys::wait_readable(fd_.get(), deadline)) return std::nullopt;
      char chunk[256];
      const auto got = teardown::detail::retry_eintr([&] { return ::read(fd_.get(), chunk, sizeof chunk); });
      if (got <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(got));
    }
  }

  teardown::UniqueFd fd_;
  std::string buffer_;
  std::deque<std::string> kept_;
};

/// Whether `pid`, a child of this process, is still running: not exited, reaped or not.
/// (kill(pid, 0) cannot tell: it also succeeds on an unreaped zombie.)
inline bool still_running(pid_t pid) {
  siginfo_t info{};
  const int result = teardown::detail::retry_eintr(
      [&] { return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT); });
  return result == 0 && info.si_pid == 0;
}

/// Waits for `pid` to exit, without reaping it; false at the deadline.
inline bool wait_exited(pid_t pid, teardown::Deadline deadline) {
  teardown::UniqueFd pidfd(teardown::detail::pidfd_open(pid));
  if (!pidfd) return true;  // already gone and reaped
  return sys::wait_readable(pidfd.get(), deadline);
}

/// Reaps our child `pid` within the deadline; its wait status, or nullopt.
inline std::optional<int> reap(pid_t pid, teardown::Deadline deadline) {
  if (!wait_exited(pid, deadline)) return std::nullopt;
  int status = 0;
  if (teardown::detail::retry_eintr([&] { return ::waitpid(pid, &status, 0); }) != pid) return std::nullopt;
  return status;
}

/// SIGKILLs and reaps every registered process that is still around when the test ends.
class ProcessCleanup {
 public:
  ProcessCleanup() = default;
  ProcessCleanup(const ProcessCleanup&) = delete;
  ProcessCleanup& operator=(const ProcessCleanup&) = delete;
  void add(pid_t pid) { pids_.push_back(pid); }
  ~ProcessCleanup() {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      int status = 0;
      (void)teardown::detail::retry_eintr(
          [&] { return ::waitpid(pid, &status, 0); });  // ECHILD: not ours, or reaped
    }
  }

 private:
  std::vector<pid_t> pids_;
};

/// Makes this test process the subreaper of its descendants, so that an orphaned grandchild is
/// re-parented here (and can be reaped with its exit status) instead of to init.
inline void become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    throw std::runtime_error("prctl(PR_SET_CHILD_SUBREAPER) failed");
}

}  // namespace teardown_test
