// A piece of a test run as PID 1 of a fresh PID namespace with its own /proc, where nothing but
// that piece allocates pids: writing /proc/sys/kernel/ns_last_pid then hands a chosen, freed pid
// to the next process, so a test recycles a pid at will instead of waiting for pid_max to wrap.
//
//   auto run = teardown_test::run_as_pid1([](const teardown_test::Pid1Output& out) {
//     ... teardown_test::next_pid_will_be(old_pid); fork() ...; out.say("fail: ...");
//   });
//   if (!run.ran) WARN(run.why_not); else CHECK(run.lines == ...);
//
// Needs CAP_SYS_ADMIN (CI runs as root); elsewhere `ran` is false and `why_not` says why. The
// piece runs in a forked copy of the test: it reports through `say`, never through Catch.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "reaper_children.hpp"

namespace teardown_test {

/// Where the piece run as PID 1 writes its lines.
struct Pid1Output {
  int fd;
  void say(const std::string& line) const {
    const std::string text = line + "\n";
    (void)!::write(fd, text.data(), text.size());
  }
};

struct Pid1Run {
  bool ran = false;
  std::string why_not;             // when it could not run
  std::vector<std::string> lines;  // what it said, in order
  int exit_code = -1;              // its exit code (0 when it returned normally)
};

/// Makes `pid` the next pid of this PID namespace, if it is free then (ns_last_pid = pid - 1).
inline bool next_pid_will_be(pid_t pid) {
  const int file = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
  if (file < 0) return false;
  const std::string text = std::to_string(pid - 1);
  const bool wrote = ::write(file, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(file);
  return wrote;
}

/// Runs `piece(output)` as PID 1 of a new PID and mount namespace (/proc remounted for it) and
/// returns what it said. When it returns or throws, PID 1 exits and the kernel kills whatever
/// else runs in its namespace.
template <class Piece>
Pid1Run run_as_pid1(Piece&& piece) {
  Pid1Run run;
  ReportPipe output;
  constexpr int cannot_run = 77;
  std::fflush(nullptr);  // nothing buffered here is written twice
  const pid_t intermediate = ::fork();
  if (intermediate < 0) {
    run.why_not = std::string("fork: ") + std::strerror(errno);
    return run;
  }
  if (intermediate == 0) {
    const Pid1Output out{output.write_end.get()};
    if (::unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) {
      out.say(std::string("unshare(CLONE_NEWPID | CLONE_NEWNS): ") + std::strerror(errno));
      ::_exit(cannot_run);
    }
    const pid_t init = ::fork();  // PID 1 of the new namespace
    if (init == 0) {
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
        out.say(std::string("mounting /proc for the new PID namespace: ") + std::strerror(errno));
        ::_exit(cannot_run);
      }
      try {
        piece(out);
      } catch (const std::exception& error) {
        out.say(std::string("fail: threw ") + error.what());
        ::_exit(1);
      } catch (...) {
        out.say("fail: threw");
        ::_exit(1);
      }
      ::_exit(0);
    }
    int status = 0;
    if (init < 0 || ::waitpid(init, &status, 0) != init) ::_exit(1);
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  output.write_end.reset();
  while (auto line = output.read_line(teardown::Deadline::after(std::chrono::seconds(120)))) {
    run.lines.push_back(std::move(*line));
  }
  int status = 0;
  (void)teardown::detail::retry_eintr([&] { return ::waitpid(intermediate, &status, 0); });
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (run.exit_code == cannot_run) {
    run.why_not = run.lines.empty() ? "no PID namespace here" : run.lines.back();
    run.lines.clear();
    return run;
  }
  run.ran = true;
  return run;
}

}  // namespace teardown_test
