// teardown/detail/fork_exec.hpp — the fork/exec engine behind teardown::spawn.
//
// Everything the child needs is computed before fork, in the parent, where errors can still be
// thrown: the exec candidates from PATH, the environment, the fds to keep, the stdio plan, the
// working directory. `start_process` then forks and the child runs `exec_in_child`, which calls
// nothing but system calls (another thread may have held the malloc lock at fork) and reports a
// failed step through a close-on-exec pipe that `read_exec_failure` reads: EOF means exec ran.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../core.hpp"
#include "cgroup.hpp"
#include "fd.hpp"
#include "lifeline.hpp"
#include "process.hpp"

namespace teardown::detail {

// ---- Planning, before fork ------------------------------------------------------------------

/// The PATH a bare program name is searched in: this process's, or the default of execvp.
inline std::string search_path() {
  const char* path_variable = std::getenv("PATH");
  return path_variable ? path_variable : "/usr/bin:/bin";
}

/// How error messages name the program: "'/bin/x'", or "'x' (searched PATH=...)".
inline std::string program_for_message(const std::string& program, const std::string& path) {
  if (program.find('/') != std::string::npos) return "'" + program + "'";
  return "'" + program + "' (searched PATH=" + path + ")";
}

/// The paths exec tries in order: `program` itself when it contains a '/', else each PATH entry
/// joined with it (an empty entry is the current directory, as for execvp).
inline std::vector<std::string> exec_candidates(const std::string& program, const std::string& path) {
  if (program.find('/') != std::string::npos) return {program};
  std::vector<std::string> candidates;
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = path.find(':', start);
    std::string directory = path.substr(start, colon == std::string::npos ? colon : colon - start);
    if (directory.empty()) directory = ".";
    candidates.push_back(directory + "/" + program);
    if (colon == std::string::npos) return candidates;
    start = colon + 1;
  }
}

inline std::string key_of(const std::string& entry) { return entry.substr(0, entry.find('=')); }

inline void require_key_value(const std::vector<std::string>& entries, const char* option) {
  for (const auto& entry : entries) {
    if (entry.find('=') == std::string::npos || entry.front() == '=') {
      throw std::invalid_argument(std::string("teardown::spawn: ") + option + " entry '" + entry +
                                  "' is not of the form K=V");
    }
  }
}

/// The child's environment: `replacement` when given, else this process's; then every "K=V" of
/// `added` replaces K or is appended. A TEARDOWN_LIFELINE_FD inherited from our own parent is
/// dropped (its number would mislead the child's ParentWatch), and so is a caller's when the
/// library sets its own (`lifeline`).
inline std::vector<std::string> child_environment(const std::vector<std::string>* replacement,
                                                  const std::vector<std::string>& added, bool lifeline) {
  require_key_value(added, "env_add");
  std::vector<std::string> base;
  if (replacement) {
    require_key_value(*replacement, "env");
    base = *replacement;
  } else {
    for (char** variable = process_environment(); variable && *variable; ++variable) {
      std::string entry = *variable;
      if (key_of(entry) != lifeline_variable) base.push_back(std::move(entry));
    }
  }
  std::vector<std::string> environment;
  for (auto& entry : base) {
    const std::string key = key_of(entry);
    const bool replaced = std::any_of(added.begin(), added.end(),
                                      [&](const std::string& addition) { return key_of(addition) == key; });
    if (!replaced && !(lifeline && key == lifeline_variable)) environment.push_back(std::move(entry));
  }
  for (const auto& entry : added) {
    if (!(lifeline && key_of(entry) == lifeline_variable)) environment.push_back(entry);
  }
  return environment;
}

/// The fds above 2 the child keeps at the same numbers. Every one must be open now: a closed one
/// is a std::system_error (EBADF) naming it, before any child runs.
inline std::vector<int> checked_inherit_fds(const std::vector<int>& fds, const std::string& program) {
  std::vector<int> kept;
  for (const int fd : fds) {
    if (fd < 0 || ::fcntl(fd, F_GETFD) == -1) {
      throw std::system_error(EBADF, std::generic_category(),
                              "teardown::spawn: inherit_fds names fd " + std::to_string(fd) +
                                  ", which is not open, for " + program);
    }
    if (fd > 2) kept.push_back(fd);  // 0-2 stay open anyway: they are the child's stdio
  }
  return kept;
}

/// `cwd` when it names a directory, else a std::system_error naming it (ENOENT, ENOTDIR, EACCES...).
/// Empty: the child inherits ours.
inline std::string checked_cwd(const std::string& cwd, const std::string& program) {
  if (cwd.empty()) return cwd;
  struct stat info {};
  if (::stat(cwd.c_str(), &info) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "teardown::spawn: cwd '" + cwd + "' for " + program);
  }
  if (!S_ISDIR(info.st_mode)) {
    throw std::system_error(ENOTDIR, std::generic_category(),
                            "teardown::spawn: cwd '" + cwd + "' for " + program + " is not a directory");
  }
  return cwd;
}

/// What the child's fd 0, 1 or 2 becomes.
enum class StdioKind { inherit, null, pipe, fd };

struct StdioRequest {
  StdioKind kind = StdioKind::inherit;
  int fd = -1;  // StdioKind::fd: the parent's fd the slot becomes a copy of
};

/// The three stdio slots planned: for each, the fd the child dup2s onto it (-1: left as is) and,
/// for a pipe, the parent's end. Every source is this plan's own close-on-exec fd above 2, so the
/// child's dup2s cannot overwrite one another in any order, and the parent's fds are untouched.
struct StdioPlan {
  std::array<UniqueFd, 3> child_sources;
  std::array<UniqueFd, 3> parent_ends;
};

inline const char* stdio_slot_name(std::size_t slot) {
  static constexpr const char* names[] = {"stdin", "stdout", "stderr"};
  return names[slot];
}

/// Opens what `requests` ask for: /dev/null, pipes, copies of the given fds. An invalid
/// Stdio::fd is a std::system_error (EBADF) naming the fd and the slot, before any child runs.
inline StdioPlan plan_stdio(const std::array<StdioRequest, 3>& requests, const std::string& program) {
  StdioPlan plan;
  for (std::size_t slot = 0; slot < requests.size(); ++slot) {
    UniqueFd& source = plan.child_sources[slot];
    switch (requests[slot].kind) {
      case StdioKind::inherit:
        break;
      case StdioKind::null:
        source.reset(::open("/dev/null", (slot == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
        if (!source) {
          throw std::system_error(errno, std::generic_category(),
                                  std::string("teardown::spawn: open /dev/null for the ") +
                                      stdio_slot_name(slot) + " of " + program);
        }
        break;
      case StdioKind::pipe: {
        auto [read_end, write_end] = make_pipe(std::string("teardown::spawn's ") + stdio_slot_name(slot));
        source = slot == 0 ? std::move(read_end) : std::move(write_end);
        plan.parent_ends[slot] = slot == 0 ? std::move(write_end) : std::move(read_end);
        break;
      }
      case StdioKind::fd:
        source.reset(requests[slot].fd < 0 ? -1 : ::fcntl(requests[slot].fd, F_DUPFD_CLOEXEC, 3));
        if (!source) {
          throw std::system_error(EBADF, std::generic_category(),
                                  "teardown::spawn: Stdio::fd(" + std::to_string(requests[slot].fd) +
                                      ") for the " + stdio_slot_name(slot) + " of " + program +
                                      " is not an open fd");
        }
        break;
    }
    if (source) move_above_stdio(source, stdio_slot_name(slot));
  }
  return plan;
}

/// An extra step the child takes after fork (a prctl, say): `run(context)` returns 0, or -1 with
/// errno to fail the spawn. It must touch only `context` — plain data prepared before fork — and
/// system calls, and be marked TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC.
struct ChildStep {
  int (*run)(const void* context) noexcept;
  const void* context;
  const char* name;  // the step in the error message: "(step: <name>)"
};

/// Everything the child needs, owned by the parent until the child has exec'd (or failed).
struct ExecPlan {
  std::vector<std::string> arguments;
  std::vector<std::string> candidates;
  std::vector<std::string> environment;
  std::vector<int> inherited_fds;  // above 2; their FD_CLOEXEC is cleared in the child
  StdioPlan stdio;
  std::string cwd;  // empty: inherit
  bool new_process_group = false;
  std::vector<ChildStep> extra_steps;  // run in order, after stdio and cwd, before the fd sweep
  int cgroup_fd = -1;                  // the child's cgroup leaf (a directory fd), -1 for none
  std::string cgroup_procs;            // that leaf's cgroup.procs
  UniqueFd lifeline_read;              // the child's end of the lifeline (also in inherited_fds)
  UniqueFd error_write;                // the child's end of the exec error pipe

  // The pointer views exec_args() hands to the child; filled by exec_args().
  std::vector<const char*> candidate_pointers;
  std::vector<const char*> argv_pointers;
  std::vector<const char*> envp_pointers;
  std::vector<int> kept_fds;  // sorted: survive the close sweep
};

/// The error pipe's read end; its write end goes into `plan`, above the stdio slots.
inline UniqueFd plan_error_pipe(ExecPlan& plan) {
  auto [error_read, error_write] = make_pipe("teardown::spawn's exec error report");
  move_above_stdio(error_write, "the exec error pipe");  // our 0-2 were closed: not ours to take
  plan.error_write = std::move(error_write);
  return std::move(error_read);
}

/// The lifeline's write end, which the Child keeps; the read end is inherited by the child and
/// named in its environment.
inline UniqueFd plan_lifeline(ExecPlan& plan) {
  auto [lifeline_read, lifeline_write] = make_pipe("teardown::spawn's lifeline");
  move_above_stdio(lifeline_read, "the lifeline");
  plan.inherited_fds.push_back(lifeline_read.get());
  plan.environment.push_back(lifeline_entry(lifeline_read.get()));
  plan.lifeline_read = std::move(lifeline_read);
  return std::move(lifeline_write);
}

/// Once the child has started, the parent closes its copies of the child's ends.
inline void close_child_ends(ExecPlan& plan) noexcept {
  plan.error_write.reset();
  plan.lifeline_read.reset();
  for (auto& source : plan.stdio.child_sources) source.reset();
}

// ---- The child, after fork --------------------------------------------------------------------

/// What a forked child reports through the error pipe when a step fails.
struct ExecFailure {
  int step;
  int error;
};

/// The child's steps, as numbers the pipe can carry; extra step i is `exec_step_extra + i`.
enum ExecStep : int {
  exec_step_unknown = 0,
  exec_step_setpgid = 1,
  exec_step_inherit_fd = 2,
  exec_step_exec = 3,
  exec_step_stdio = 4,
  exec_step_chdir = 5,
  exec_step_cgroup = 6,
  exec_step_extra = 16,
};

/// What the child needs after fork, as plain pointers and numbers taken from an ExecPlan before
/// fork: between fork and exec the child calls no C++ library code, only system calls.
struct ExecArgs {
  const char* const* candidates;
  std::size_t candidate_count;
  char* const* argv;
  char* const* envp;
  int stdio_sources[3];  // dup2'd onto 0, 1, 2; -1: the slot is inherited as is
  const char* cwd;       // nullptr: inherit
  const int* inherited_fds;
  std::size_t inherited_count;
  const int* kept_fds;
  std::size_t kept_count;
  const ChildStep* extra_steps;
  std::size_t extra_count;
  bool new_process_group;
  int highest_fd;
  int error_fd;
  int cgroup_fd;             // -1, or the leaf the child is born in (clone3 CLONE_INTO_CGROUP)
  const char* cgroup_procs;  // the leaf's cgroup.procs: where a forked child moves itself when
                             // clone3 cannot place it
};

/// The child's view of `plan`. The pointers stay valid while `plan` is neither changed nor moved.
inline ExecArgs exec_args(ExecPlan& plan) {
  plan.candidate_pointers.clear();
  for (const auto& candidate : plan.candidates) plan.candidate_pointers.push_back(candidate.c_str());
  plan.argv_pointers.clear();
  for (const auto& argument : plan.arguments) plan.argv_pointers.push_back(argument.c_str());
  plan.argv_pointers.push_back(nullptr);
  plan.envp_pointers.clear();
  for (const auto& entry : plan.environment) plan.envp_pointers.push_back(entry.c_str());
  plan.envp_pointers.push_back(nullptr);
  plan.kept_fds = plan.inherited_fds;
  plan.kept_fds.push_back(plan.error_write.get());  // close-on-exec: exec itself closes it
  std::sort(plan.kept_fds.begin(), plan.kept_fds.end());
  plan.kept_fds.erase(std::unique(plan.kept_fds.begin(), plan.kept_fds.end()), plan.kept_fds.end());
  return ExecArgs{plan.candidate_pointers.data(),
                  plan.candidate_pointers.size(),
                  const_cast<char* const*>(plan.argv_pointers.data()),
                  const_cast<char* const*>(plan.envp_pointers.data()),
                  {plan.stdio.child_sources[0].get(), plan.stdio.child_sources[1].get(),
                   plan.stdio.child_sources[2].get()},
                  plan.cwd.empty() ? nullptr : plan.cwd.c_str(),
                  plan.inherited_fds.data(),
                  plan.inherited_fds.size(),
                  plan.kept_fds.data(),
                  plan.kept_fds.size(),
                  plan.extra_steps.data(),
                  plan.extra_steps.size(),
                  plan.new_process_group,
                  highest_possible_fd(),
                  plan.error_write.get(),
                  plan.cgroup_fd,
                  plan.cgroup_procs.empty() ? nullptr : plan.cgroup_procs.c_str()};
}

[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void exit_exec_failed(int error_fd,
                                                                                int step) noexcept {
  const ExecFailure failure{step, errno};
  (void)!::write(error_fd, &failure, sizeof failure);
  ::_exit(127);
}

/// Default dispositions and an empty mask: the child must not run our handlers, nor inherit the
/// mask start_process set around fork.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void reset_signals_in_child() noexcept {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int signo = 1; signo < NSIG; ++signo) {
    if (signo != SIGKILL && signo != SIGSTOP) (void)::sigaction(signo, &default_action, nullptr);
  }
  sigset_t no_signals;
  sigemptyset(&no_signals);
  (void)::sigprocmask(SIG_SETMASK, &no_signals, nullptr);
}

/// Closes every fd but 0-2 and the kept ones: a leaked pipe end would keep someone's lifeline
/// open forever.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void close_unkept_fds(const ExecArgs& args) noexcept {
  int next = 3;
  for (std::size_t i = 0; i < args.kept_count; ++i) {
    const int kept = args.kept_fds[i];
    if (kept < 3) continue;  // 0-2 are never swept: a kept fd there must not move `next` below 3
    close_fd_range(next, kept - 1, args.highest_fd);
    next = kept + 1;
  }
  close_fd_range(next, INT_MAX, args.highest_fd);
}

/// Tries every candidate as execvp does; returns only on failure, with errno set: EACCES if
/// some candidate was not executable and none ran, else the first error other than "not here".
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void exec_candidates_in_child(const ExecArgs& args) noexcept {
  int error = ENOENT;
  for (std::size_t i = 0; i < args.candidate_count; ++i) {
    ::execve(args.candidates[i], args.argv, args.envp);
    if (errno == EACCES) {
      error = EACCES;  // as execvp: remember it, but a later PATH entry may still work
    } else if (errno != ENOENT && errno != ENOTDIR) {
      error = errno;
      break;
    }
  }
  errno = error;
}

/// The child's side, from fork to exec; each failed step is reported through the error pipe.
/// A forked child (clone3 could not place it) moves itself into its leaf before it runs anything
/// of the program: there is no window in which the program runs outside.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline int enter_cgroup_in_child(const char* cgroup_procs) noexcept {
  const int procs = ::open(cgroup_procs, O_WRONLY | O_CLOEXEC);
  if (procs < 0) return -1;
  const bool moved = ::write(procs, "0", 1) == 1;
  const int error = errno;
  ::close(procs);
  errno = error;
  return moved ? 0 : -1;
}

[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void exec_in_child(
    const ExecArgs& args, bool in_cgroup_already) noexcept {
  if (args.cgroup_procs && !in_cgroup_already && enter_cgroup_in_child(args.cgroup_procs) != 0) {
    exit_exec_failed(args.error_fd, exec_step_cgroup);
  }
  reset_signals_in_child();
  if (args.new_process_group && ::setpgid(0, 0) != 0) exit_exec_failed(args.error_fd, exec_step_setpgid);
  for (int slot = 0; slot < 3; ++slot) {
    if (args.stdio_sources[slot] >= 0 && ::dup2(args.stdio_sources[slot], slot) == -1) {
      exit_exec_failed(args.error_fd, exec_step_stdio);
    }
  }
  if (args.cwd && ::chdir(args.cwd) != 0) exit_exec_failed(args.error_fd, exec_step_chdir);
  for (std::size_t i = 0; i < args.inherited_count; ++i) {
    const int fd = args.inherited_fds[i];
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags == -1 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == -1) {
      exit_exec_failed(args.error_fd, exec_step_inherit_fd);
    }
  }
  for (std::size_t i = 0; i < args.extra_count; ++i) {
    if (args.extra_steps[i].run(args.extra_steps[i].context) != 0) {
      exit_exec_failed(args.error_fd, exec_step_extra + static_cast<int>(i));
    }
  }
  close_unkept_fds(args);
  exec_candidates_in_child(args);
  exit_exec_failed(args.error_fd, exec_step_exec);
}

// ---- Starting, and learning whether exec ran ------------------------------------------------

/// Starts the child process: it runs `exec_in_child(args)`. Returns its pid, or -1 with errno.
/// With a cgroup leaf the child is born in it (clone3 CLONE_INTO_CGROUP, which also hands back
/// its pidfd in `*pidfd`); where clone3 cannot (ENOSYS before Linux 5.7, E2BIG/EINVAL without
/// CLONE_INTO_CGROUP) — and under ThreadSanitizer, whose runtime a raw clone would bypass — it
/// forks and the child moves itself before anything else.
/// Every signal is blocked across fork: until the child has reset its dispositions, a signal
/// would run one of our handlers in the child (writing, say, into our own shutdown self-pipe).
inline pid_t start_process(const ExecArgs& args, int* pidfd) noexcept {
  sigset_t all_signals;
  sigset_t previous_mask;
  sigfillset(&all_signals);
  ::pthread_sigmask(SIG_SETMASK, &all_signals, &previous_mask);
  pid_t pid = -1;
  bool cloned = false;
  if (args.cgroup_fd >= 0 && !running_under_thread_sanitizer) {
    pid = clone_into_cgroup(args.cgroup_fd, pidfd);
    if (pid == 0) exec_in_child(args, true);
    cloned = pid > 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL);
  }
  if (!cloned) {
    *pidfd = -1;
    pid = ::fork();
    if (pid == 0) exec_in_child(args, false);
  }
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  errno = fork_error;
  return pid;
}

/// Blocks until the child has exec'd (the pipe closes: nullopt) or reported the step that failed.
/// `error_read` must be the only read end, with the parent's write end already closed.
inline std::optional<ExecFailure> read_exec_failure(int error_read) noexcept {
  ExecFailure failure{};
  const auto got = retry_eintr([&] { return ::read(error_read, &failure, sizeof failure); });
  if (got == 0) return std::nullopt;
  if (got != static_cast<ssize_t>(sizeof failure)) return ExecFailure{exec_step_unknown, EIO};
  return failure;
}

/// The failed step, for the error message.
inline std::string exec_step_text(const ExecFailure& failure, const ExecPlan& plan) {
  switch (failure.step) {
    case exec_step_setpgid:
      return "setpgid for new_process_group";
    case exec_step_inherit_fd:
      return "clearing FD_CLOEXEC on an inherited fd";
    case exec_step_stdio:
      return "dup2 of a stdio redirection";
    case exec_step_chdir:
      return "chdir to cwd '" + plan.cwd + "'";
    case exec_step_cgroup:
      return "entering the cgroup leaf " + plan.cgroup_procs;
    case exec_step_exec:
      return "exec";
    default:
      break;
  }
  const auto extra = static_cast<std::size_t>(failure.step - exec_step_extra);
  if (failure.step >= exec_step_extra && extra < plan.extra_steps.size()) return plan.extra_steps[extra].name;
  return "exec (no report from the child)";
}

}  // namespace teardown::detail
