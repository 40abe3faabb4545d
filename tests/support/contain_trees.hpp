// Process trees for the containment tests: children that daemonize (double fork + setsid), fork
// many grandchildren, or move a grandchild to another process group. Every process of a tree
// reports "<role> <pid>" on a pipe, so a test holds a pidfd to each and waits on events only.
#pragma once

#include <teardown/reaper.hpp>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "reaper_children.hpp"

namespace teardown_test {

/// A pidfd to each reported process, opened while the process is known to run.
struct Watched {
  std::vector<std::string> roles;
  std::vector<pid_t> pids;
  std::vector<teardown::UniqueFd> pidfds;

  void add(pid_t pid) {
    teardown::UniqueFd pidfd(teardown::detail::pidfd_open(pid));
    if (!pidfd) throw std::runtime_error("pidfd_open(" + std::to_string(pid) + ") failed");
    pids.push_back(pid);
    pidfds.push_back(std::move(pidfd));
  }

  /// The pid reported as `role`.
  [[nodiscard]] pid_t pid_of(const std::string& role) const {
    for (std::size_t i = 0; i < roles.size(); ++i) {
      if (roles[i] == role) return pids[i];
    }
    throw std::runtime_error("no process reported as " + role);
  }

  /// How many are still running now (a pidfd is readable once its process has exited).
  [[nodiscard]] std::size_t alive_now() const {
    std::size_t alive = 0;
    for (const auto& pidfd : pidfds) {
      pollfd exited{pidfd.get(), POLLIN, 0};
      if (::poll(&exited, 1, 0) == 0) ++alive;
    }
    return alive;
  }

  /// Waits until all have exited or `deadline`; true when all have.
  [[nodiscard]] bool wait_all_gone(teardown::Deadline deadline) const {
    for (const auto& pidfd : pidfds) {
      pollfd exited{pidfd.get(), POLLIN, 0};
      if (teardown::detail::poll_until(&exited, 1, deadline.time_point()) != 1) return false;
    }
    return true;
  }
};

/// Reads `count` lines "<role> <pid>" and watches each pid.
inline Watched watch_reported(ReportPipe& report, std::size_t count) {
  Watched watched;
  const auto deadline = teardown::Deadline::after(std::chrono::seconds(30));
  for (std::size_t i = 0; i < count; ++i) {
    const auto line = report.read_line(deadline);
    if (!line) throw std::runtime_error("a process of the tree never reported its pid");
    watched.add(std::stoi(line->substr(line->find(' ') + 1)));
    watched.roles.push_back(line->substr(0, line->find(' ')));
  }
  return watched;
}

/// `sh -c` that reports as `role` on `report` and then runs `then`.
inline std::string reporting(const ReportPipe& report, const std::string& role, const std::string& then) {
  return "echo " + role + " $$ " + report.to() + "; " + then;
}

/// A leader that starts a classic daemon — a subshell forks it and exits at once (double fork),
/// and the daemon setsid()s into its own session — then sleeps. Reports 2 lines.
inline std::vector<std::string> daemonizing_leader(const ReportPipe& report) {
  const std::string daemon =
      "setsid /bin/sh -c '" + reporting(report, "daemon", "exec sleep 60") + "' </dev/null &";
  return sh("( " + daemon + " ); " + reporting(report, "leader", "exec sleep 60"));
}

/// A leader that forks `pairs` plain grandchildren and `pairs` setsid'd ones, then waits.
/// Reports 2 * pairs + 1 lines.
inline std::vector<std::string> forking_leader(const ReportPipe& report, int pairs) {
  const std::string plain = "/bin/sh -c '" + reporting(report, "plain", "exec sleep 60") + "' &";
  const std::string setsid = "setsid /bin/sh -c '" + reporting(report, "setsid", "exec sleep 60") + "' &";
  return sh("i=0; while [ $i -lt " + std::to_string(pairs) + " ]; do " + plain + " " + setsid +
            " i=$((i+1)); done; " + reporting(report, "leader", "wait"));
}

/// A leader whose grandchild moves to a process group of its own (perl's setpgrp: perl-base is
/// essential on Debian). Reports 2 lines.
inline std::vector<std::string> group_leaving_leader(const ReportPipe& report) {
  const std::string fd = std::to_string(report.write_end.get());
  const std::string moved = "perl -e 'setpgrp(0, 0); open(my $r, \">&=\", " + fd +
                            ") or die; print $r \"moved $$\\n\"; close $r; exec \"sleep\", \"60\"' &";
  return sh(moved + " " + reporting(report, "leader", "wait"));
}

/// The process group of `pid` now (-1 once it is gone).
inline pid_t process_group_of(pid_t pid) { return ::getpgid(pid); }

}  // namespace teardown_test
