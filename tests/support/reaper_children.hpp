// Real children for the Reaper tests: shell scripts that report on a pipe, so a test waits for
// the event ("ready", a pid, "eof") instead of sleeping.
#pragma once

#include <teardown/spawn.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace teardown_test {

/// A close-on-exec pipe; children get the write end through SpawnOptions::inherit_fds.
struct ReportPipe {
  teardown::UniqueFd read_end;
  teardown::UniqueFd write_end;

  ReportPipe() {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    read_end.reset(ends[0]);
    write_end.reset(ends[1]);
  }

  /// The shell redirection that writes to this pipe. Through /proc, because dash only accepts
  /// fd numbers up to 9 in ">&N".
  [[nodiscard]] std::string to() const { return ">/proc/self/fd/" + std::to_string(write_end.get()); }
  /// The shell redirection that reads from this pipe.
  [[nodiscard]] std::string from() const { return "</proc/self/fd/" + std::to_string(read_end.get()); }

  /// The next line, or nullopt at the deadline or EOF.
  std::optional<std::string> read_line(teardown::Deadline deadline) {
    std::string line;
    for (;;) {
      pollfd readable{read_end.get(), POLLIN, 0};
      if (teardown::detail::poll_until(&readable, 1, deadline.time_point()) <= 0) return std::nullopt;
      char byte = 0;
      const auto got = teardown::detail::retry_eintr([&] { return ::read(read_end.get(), &byte, 1); });
      if (got <= 0) return std::nullopt;
      if (byte == '\n') return line;
      line.push_back(byte);
    }
  }
};

inline std::vector<std::string> sh(const std::string& script) { return {"/bin/sh", "-c", script}; }

/// A child that ignores SIGTERM (the disposition survives `exec sleep`), spawned and ready.
inline teardown::Child spawn_term_ignoring(
    ReportPipe& ready, teardown::SpawnOptions options = {},
    teardown::detail::PidfdUse use = teardown::detail::PidfdUse::when_available) {
  options.inherit_fds.push_back(ready.write_end.get());
  auto child = teardown::detail::spawn_child(sh("trap '' TERM; echo ready " + ready.to() + "; exec sleep 60"),
                                             std::move(options), use);
  if (ready.read_line(teardown::Deadline::after(std::chrono::seconds(20))) != "ready") {
    throw std::runtime_error("the TERM-ignoring child never reported ready");
  }
  return child;
}

/// True when this process has no child at all, reaped or not (waitid(P_ALL) says ECHILD).
inline bool has_no_children() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

/// True when `pid` is no longer a child of this process: reaped, by us.
inline bool is_reaped(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

/// The fds open in this process.
inline std::set<int> open_fds() {
  std::set<int> fds;
  DIR* directory = ::opendir("/proc/self/fd");
  if (!directory) return fds;
  const int own = ::dirfd(directory);
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::stoi(entry->d_name);
    if (fd != own) fds.insert(fd);
  }
  ::closedir(directory);
  return fds;
}

}  // namespace teardown_test
