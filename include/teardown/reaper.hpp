// teardown/reaper.hpp — every child this process starts is reaped, on every path, in bounded
// time, without zombies, orphans, or a signal to a recycled pid (seed 002, wool #276).
//
//   auto worker = teardown::spawn({"/usr/bin/worker", "--port=0"},
//                                 {.new_process_group = true, .lifeline = true});
//   teardown::Reaper reaper(std::move(worker),
//                           teardown::ladder(rung::Request{stop_rpc, 10s},      // ask nicely
//                                            rung::Signal{SIGTERM, 5s},         // then TERM (+CONT)
//                                            rung::Kill{Target::process_group}));// always ends here
//   ExitStatus status = reaper.reap(budget);   // or let the destructor do it
//
//   teardown::ReapGroup pool;                  // many children: one poll, one grace for all
//   for (auto& argv : workers) pool.add(teardown::spawn(argv));
//   ReapReport report = pool.reap_all(teardown::default_ladder(), budget);
//
// Linux ≥ 5.3 waits and signals through pidfds (event-driven, never a recycled pid). Without
// them (ENOSYS, other POSIX) waiting falls back to waitid(WNOHANG) with a bounded backoff and
// kill(2) only while the child is known unreaped. Never a SIGCHLD handler, never waitpid(-1).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core.hpp"
#include "detail/process.hpp"
#include "detail/wait.hpp"
#include "unique_resource.hpp"

namespace teardown {

/// Whom a signal goes to: the child alone, or the process group it leads (so its own children,
/// which inherit the group, die with it). The group needs `SpawnOptions::new_process_group`.
enum class Target { process, process_group };

namespace detail {

inline std::string signal_name(int signo) {
  switch (signo) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(signo);
  }
}

inline std::string milliseconds_text(Clock::duration duration) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
  return std::to_string(micros / 1000) + "." + std::to_string((micros % 1000) / 100) + " ms";
}

}  // namespace detail

/// How a child ended, and at which step of the ladder.
///
/// `rung` is the index of the ladder step in force when the end was observed (0 outside a
/// ladder); `took` is the time from the start of the reap (or of the wait) to that moment.
/// `reaped_elsewhere`: someone else collected the child (waitid said ECHILD); code and signal
/// are then unknown (0). `kill_refused`: the kernel refused SIGKILL (EPERM: say, the reaper
/// dropped its privileges) and the child had not ended when the bounded Kill wait ran out; it is
/// still owned and unreaped, and a later reap tries again.
struct ExitStatus {
  enum class Kind { exited, signaled, reaped_elsewhere, kill_refused };
  Kind kind = Kind::exited;
  int code = 0;    // exit code when kind == exited
  int signal = 0;  // terminating signal when kind == signaled
  std::size_t rung = 0;
  Clock::duration took{};
  pid_t pid = -1;

  /// Exited by itself with code 0.
  [[nodiscard]] bool clean() const noexcept { return kind == Kind::exited && code == 0; }

  /// One line, e.g. "pid 4242 was killed by SIGKILL at rung 2 after 503.1 ms".
  [[nodiscard]] std::string describe() const {
    std::string text = "pid " + std::to_string(pid);
    switch (kind) {
      case Kind::exited:
        text += " exited with code " + std::to_string(code);
        break;
      case Kind::signaled:
        text += " was killed by " + detail::signal_name(signal);
        break;
      case Kind::reaped_elsewhere:
        text += " was reaped by someone else";
        break;
      case Kind::kill_refused:
        text += " could not be killed (SIGKILL refused) and still runs";
        break;
    }
    return text + " at rung " + std::to_string(rung) + " after " + detail::milliseconds_text(took);
  }
};

/// What `ReapGroup::reap_all` did: one status per child in `add()` order, the total time, and
/// what went wrong on the way (a Request whose ask threw or hung, a failed signal).
struct ReapReport {
  std::vector<ExitStatus> statuses;
  Clock::duration took{};
  std::vector<std::string> errors;

  /// Every child exited by itself with code 0.
  [[nodiscard]] bool clean() const noexcept {
    return std::all_of(statuses.begin(), statuses.end(), [](const ExitStatus& s) { return s.clean(); });
  }
};

/// The steps of a ladder. Each waits at most its `grace` (shrunk to what is left of the overall
/// deadline) for the child to end, after doing its action.
namespace rung {

/// Let the child exit by itself.
struct Wait {
  Clock::duration grace;
};

/// Ask for a graceful stop (an RPC). `ask` runs on its own thread with its own deadline (the
/// end of this rung): a throw is recorded and the ladder goes on at once; an ask still running
/// when the grace ends is left behind, and the ladder goes on. In a ReapGroup `ask` runs once
/// for the whole group. It must own what it uses (capture by value or shared_ptr): it may
/// outlive the reap.
struct Request {
  std::function<void(Deadline)> ask;
  Clock::duration grace;
};

/// Send `signo`, then SIGCONT (a stopped child with a handler must be able to run it).
struct Signal {
  int signo;
  Clock::duration grace;
  Target target = Target::process;
};

/// SIGKILL, then wait for the kernel to finish the child. The last rung of every ladder.
/// With `Target::process_group`, the group dies with its leader: whenever the ladder sees the
/// leader ended (at any rung), it SIGKILLs what is left of the group before reaping the leader,
/// whose unreaped zombie keeps the group id from being reused. If the kernel refuses SIGKILL
/// (EPERM), the wait is bounded by the overall deadline (5 s when there is none).
struct Kill {
  Target target = Target::process;
};

}  // namespace rung

namespace detail {

template <class Rung>
inline constexpr bool is_rung_v = std::is_same_v<Rung, rung::Wait> || std::is_same_v<Rung, rung::Request> ||
                                  std::is_same_v<Rung, rung::Signal> || std::is_same_v<Rung, rung::Kill>;

template <class... Rungs>
constexpr bool last_rung_is_kill() {
  if constexpr (sizeof...(Rungs) == 0) {
    return false;
  } else {
    return std::is_same_v<std::tuple_element_t<sizeof...(Rungs) - 1, std::tuple<Rungs...>>, rung::Kill>;
  }
}

using AnyRung = std::variant<rung::Wait, rung::Request, rung::Signal, rung::Kill>;
using RungList = std::vector<AnyRung>;

}  // namespace detail

/// An escalation ladder: rungs tried in order until the child is gone, ending with `Kill`.
///
///   auto ladder = teardown::ladder(rung::Request{stop, 10s}, rung::Signal{SIGTERM, 5s}, rung::Kill{});
///
/// A ladder whose last rung is not `Kill` does not compile: reaping always ends. It is plain
/// data (copyable, comparable by its rungs), so it can be built once and reused by any Reaper
/// or ReapGroup; running it never changes it.
template <class... Rungs>
class Ladder {
  static_assert((detail::is_rung_v<Rungs> && ...),
                "teardown::Ladder: every rung must be rung::Wait, rung::Request, rung::Signal or rung::Kill");
  static_assert(detail::last_rung_is_kill<Rungs...>(),
                "teardown::Ladder: the last rung must be rung::Kill, so that reaping always ends");
  static_assert((std::size_t{std::is_same_v<Rungs, rung::Kill>} + ... + 0) <= 1,
                "teardown::Ladder: rung::Kill may appear only once, as the last rung (rungs after it "
                "could never run)");

 public:
  explicit Ladder(Rungs... rungs) : rungs_(std::move(rungs)...) {}

  static constexpr std::size_t size() noexcept { return sizeof...(Rungs); }
  [[nodiscard]] const std::tuple<Rungs...>& rungs() const noexcept { return rungs_; }

  /// The rungs as a runtime list, for the (non-template) Reaper and ReapGroup.
  [[nodiscard]] detail::RungList steps() const {
    return std::apply([](const auto&... rung) { return detail::RungList{detail::AnyRung(rung)...}; }, rungs_);
  }

 private:
  std::tuple<Rungs...> rungs_;
};

/// Builds a `Ladder` from its rungs; see `Ladder`.
template <class... Rungs>
[[nodiscard]] Ladder<std::decay_t<Rungs>...> ladder(Rungs&&... rungs) {
  return Ladder<std::decay_t<Rungs>...>(std::forward<Rungs>(rungs)...);
}

/// `Signal{SIGTERM, 5s}, Kill{}`: what a Reaper, ReapGroup or Child uses unless told otherwise.
[[nodiscard]] inline Ladder<rung::Signal, rung::Kill> default_ladder() {
  return ladder(rung::Signal{SIGTERM, std::chrono::seconds(5)}, rung::Kill{});
}

/// How `spawn` starts a child.
struct SpawnOptions {
  bool new_process_group = false;      // the child leads its own group: Target::process_group works
  bool lifeline = false;               // pass a lifeline fd for the child's ParentWatch
  std::vector<std::string> env_add{};  // "K=V" added to (or replacing in) the inherited environment
  std::vector<int> inherit_fds{};      // kept open at the same numbers; every other fd but 0-2 and
                                       // the lifeline is closed in the child
};

class Child;

namespace detail {

/// Whether a Child may use a pidfd. `never` forces the fallback that kernels without pidfd
/// (ENOSYS) and other POSIX systems take, so that path is tested on every machine.
enum class PidfdUse { when_available, never };

struct ChildAccess;
Child spawn_child(std::vector<std::string> argv, SpawnOptions options, PidfdUse use);
Child adopt_child(pid_t pid, PidfdUse use);
std::vector<std::string> climb_ladder(const std::vector<Child*>& children, const RungList& rungs,
                                      Deadline overall);
void report_ladder_errors(const std::vector<std::string>& errors, const char* context);

}  // namespace detail

/// An owned child process, not yet reaped (or reaped, with its status kept). Move-only.
///
///   auto child = teardown::spawn({"sleep", "60"});
///   child.signal(SIGTERM);
///   if (auto status = child.wait_until(Deadline::after(1s))) puts(status->describe().c_str());
///
/// Holds the child's pidfd (or -1 on the fallback path) and, with `lifeline`, the write end of
/// the child's lifeline, closed only when the Child ends. Thread-safety: one owner. Signal-
/// safety: none. Fork: a copy in a forked process sees ECHILD and never signals the child.
/// Destructor: a child not yet reaped is reaped through `default_ladder()` (SIGTERM, 5 s, SIGKILL).
class Child {
 public:
  /// Takes over `pid`, a child of this process started elsewhere; opens its pidfd now.
  /// Throws std::system_error if `pid` is not a child of this process (ECHILD) or is gone.
  static Child adopt(pid_t pid) { return detail::adopt_child(pid, detail::PidfdUse::when_available); }

  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        pidfd_(std::move(other.pidfd_)),
        lifeline_(std::move(other.lifeline_)),
        status_(std::exchange(other.status_, std::nullopt)),
        waitid_pidfd_works_(other.waitid_pidfd_works_) {}
  /// Reaps the child this one held (like the destructor), then takes `other`'s.
  Child& operator=(Child&& other) noexcept {
    if (this != &other) {
      reap_if_owned();
      pid_ = std::exchange(other.pid_, -1);
      pidfd_ = std::move(other.pidfd_);
      lifeline_ = std::move(other.lifeline_);
      status_ = std::exchange(other.status_, std::nullopt);
      waitid_pidfd_works_ = other.waitid_pidfd_works_;
    }
    return *this;
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { reap_if_owned(); }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// The pidfd, or -1 on the fallback path (no pidfd support). Readable once the child exited.
  [[nodiscard]] int fd() const noexcept { return pidfd_.get(); }
  /// The status, once reaped.
  [[nodiscard]] const std::optional<ExitStatus>& status() const noexcept { return status_; }

  /// Reaps the child if it has ended; never blocks.
  std::optional<ExitStatus> try_wait() {
    if (status_) return status_;
    if (pid_ <= 0) throw std::logic_error("teardown::Child: used after it was moved from");
    siginfo_t info{};
    int result = -1;
    if (pidfd_ && waitid_pidfd_works_) {
      result =
          detail::retry_eintr([&] { return detail::waitid_pidfd(pidfd_.get(), &info, WEXITED | WNOHANG); });
      if (result == -1 && errno == EINVAL) waitid_pidfd_works_ = false;  // kernel 5.3: pidfd, no P_PIDFD
    }
    if (!pidfd_ || !waitid_pidfd_works_) {
      // Safe by pid: the child is ours and unreaped, so its pid cannot have been recycled.
      result = detail::retry_eintr(
          [&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG); });
    }
    if (result == -1) {
      if (errno != ECHILD) {
        throw std::system_error(errno, std::generic_category(),
                                "teardown::Child::try_wait: waitid for pid " + std::to_string(pid_));
      }
      status_ = ExitStatus{ExitStatus::Kind::reaped_elsewhere, 0, 0, 0, {}, pid_};
      return status_;
    }
    if (info.si_pid == 0) return std::nullopt;
    if (info.si_code == CLD_EXITED) {
      status_ = ExitStatus{ExitStatus::Kind::exited, info.si_status, 0, 0, {}, pid_};
    } else {
      status_ = ExitStatus{ExitStatus::Kind::signaled, 0, info.si_status, 0, {}, pid_};
    }
    return status_;
  }

  /// Waits (event-driven on the pidfd) until the child ends or `deadline`; nullopt at the
  /// deadline. EINTR never cuts the wait short.
  std::optional<ExitStatus> wait_until(Deadline deadline) {
    const auto started = Clock::now();
    auto backoff = std::chrono::microseconds(100);
    for (;;) {
      if (auto status = try_wait()) {
        if (status_->took == Clock::duration::zero()) status_->took = Clock::now() - started;
        return status_;
      }
      if (deadline.expired()) return std::nullopt;
      if (pidfd_) {
        pollfd exit_event{pidfd_.get(), POLLIN, 0};
        if (detail::poll_until(&exit_event, 1, deadline.time_point()) == -1) {
          throw std::system_error(
              errno, std::generic_category(),
              "teardown::Child::wait_until: poll on the pidfd of pid " + std::to_string(pid_));
        }
      } else {
        // The fallback has no event to wait on: a bounded backoff (100 µs doubling to 10 ms).
        std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline.remaining()));
        backoff = std::min(backoff * 2, std::chrono::microseconds(10'000));
      }
    }
  }

  /// Sends `signo` to the child (through its pidfd) or to the group it leads. False once the
  /// child has ended (it is then reaped). Throws std::logic_error for `process_group` when the
  /// child does not lead its own group, and std::system_error when the kernel refuses.
  ///
  /// With `process_group` the group is signalled as long as the leader is unreaped, even after
  /// the leader itself exited: its zombie keeps the group id from being reused, and the rest of
  /// the group may live on (a group never dies with its leader by itself).
  bool signal(int signo, Target target = Target::process) {
    if (target == Target::process_group) {
      if (status_) return false;
      if (pid_ <= 0) throw std::logic_error("teardown::Child: used after it was moved from");
      if (peek() == Liveness::gone) {
        (void)try_wait();  // reaped elsewhere: the group id may be anybody's now
        return false;
      }
    } else if (try_wait()) {
      return false;
    }
    int result = 0;
    if (target == Target::process_group) {
      // While the leader is unreaped its pid cannot be recycled, so its group id is still ours.
      const pid_t group = ::getpgid(pid_);
      if (group == -1) return false;
      if (group != pid_) {
        throw std::logic_error("teardown::Child::signal: pid " + std::to_string(pid_) +
                               " does not lead its own process group (start it with "
                               "SpawnOptions::new_process_group); not signalling group " +
                               std::to_string(group));
      }
      result = ::kill(-pid_, signo);
    } else if (pidfd_) {
      result = detail::pidfd_send_signal(pidfd_.get(), signo);
    } else {
      result = ::kill(pid_, signo);  // the fallback: safe only because the child is unreaped
    }
    if (result == -1) {
      if (errno == ESRCH) return false;
      throw std::system_error(
          errno, std::generic_category(),
          "teardown::Child::signal: " + detail::signal_name(signo) + " to pid " + std::to_string(pid_));
    }
    return true;
  }

 private:
  friend struct detail::ChildAccess;

  Child(pid_t pid, UniqueFd pidfd, UniqueFd lifeline) noexcept
      : pid_(pid), pidfd_(std::move(pidfd)), lifeline_(std::move(lifeline)) {}

  enum class Liveness { running, ended_unreaped, gone };

  /// Whether the child has ended, without reaping it (WNOWAIT): `gone` once reaped elsewhere.
  Liveness peek() {
    siginfo_t info{};
    int result = -1;
    constexpr int options = WEXITED | WNOHANG | WNOWAIT;
    if (pidfd_ && waitid_pidfd_works_) {
      result = detail::retry_eintr([&] { return detail::waitid_pidfd(pidfd_.get(), &info, options); });
      if (result == -1 && errno == EINVAL) waitid_pidfd_works_ = false;
    }
    if (!pidfd_ || !waitid_pidfd_works_) {
      result = detail::retry_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &info, options); });
    }
    if (result == -1) return errno == ECHILD ? Liveness::gone : Liveness::running;
    return info.si_pid == 0 ? Liveness::running : Liveness::ended_unreaped;
  }

  void reap_if_owned() noexcept {
    if (pid_ <= 0 || status_) return;
    try {
      detail::report_ladder_errors(detail::climb_ladder({this}, default_ladder().steps(), Deadline::never()),
                                   "teardown::Child destructor");
    } catch (...) {
      report_error(std::current_exception(),
                   "teardown::Child destructor: reaping pid " + std::to_string(pid_));
    }
  }

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd lifeline_;  // write end; never written: its closing is the message
  std::optional<ExitStatus> status_;
  bool waitid_pidfd_works_ = true;
};

/// Starts `argv` (argv[0] searched in PATH unless it contains a '/') with `options`.
/// A failed exec — missing binary, no permission, bad format — is a std::system_error carrying
/// the errno, with the path in what(); never a child that exits 127. The child starts with
/// default signal dispositions and an empty signal mask.
inline Child spawn(std::vector<std::string> argv, SpawnOptions options = {}) {
  return detail::spawn_child(std::move(argv), std::move(options), detail::PidfdUse::when_available);
}

namespace detail {

struct ChildAccess {
  static Child make(pid_t pid, UniqueFd pidfd, UniqueFd lifeline) noexcept {
    return Child(pid, std::move(pidfd), std::move(lifeline));
  }
  static std::optional<ExitStatus>& status(Child& child) noexcept { return child.status_; }
  static bool ended_unreaped(Child& child) {
    return !child.status_ && child.peek() == Child::Liveness::ended_unreaped;
  }
};

/// What a forked child reports through the error pipe when it cannot exec.
struct ExecFailure {
  int step;
  int error;
};

enum ExecStep : int { exec_step_setpgid = 1, exec_step_inherit_fd = 2, exec_step_exec = 3 };

inline const char* exec_step_text(int step) {
  switch (step) {
    case exec_step_setpgid:
      return "setpgid for new_process_group";
    case exec_step_inherit_fd:
      return "clearing FD_CLOEXEC on an inherited fd";
    default:
      return "exec";
  }
}

/// Everything the forked child needs, computed before fork: after fork only async-signal-safe
/// calls are allowed (another thread may hold the malloc lock).
struct ExecPlan {
  std::vector<std::string> candidates;  // argv[0], or PATH entries joined with it
  std::vector<const char*> argv;
  std::vector<std::string> environment;
  std::vector<const char*> envp;
  std::vector<int> kept_fds;  // sorted: stay open across the close sweep
  std::vector<int> inherited_fds;
  int lifeline_fd = -1;
  bool new_process_group = false;
  int highest_fd = 0;
};

/// What the child needs after fork, as plain pointers and numbers taken from an ExecPlan before
/// fork: between fork and exec the child calls no C++ library code, only system calls.
struct ExecArgs {
  const char* const* candidates;
  std::size_t candidate_count;
  char* const* argv;
  char* const* envp;
  const int* kept_fds;
  std::size_t kept_count;
  const int* inherited_fds;
  std::size_t inherited_count;
  bool new_process_group;
  int highest_fd;
  int error_fd;
};

[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void exit_exec_failed(int error_fd,
                                                                                int step) noexcept {
  const ExecFailure failure{step, errno};
  (void)!::write(error_fd, &failure, sizeof failure);
  ::_exit(127);
}

[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void exec_in_child(const ExecArgs& args) noexcept {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int signo = 1; signo < NSIG; ++signo) {
    if (signo != SIGKILL && signo != SIGSTOP) (void)::sigaction(signo, &default_action, nullptr);
  }
  sigset_t no_signals;
  sigemptyset(&no_signals);
  (void)::sigprocmask(SIG_SETMASK, &no_signals, nullptr);

  if (args.new_process_group && ::setpgid(0, 0) != 0) exit_exec_failed(args.error_fd, exec_step_setpgid);
  for (std::size_t i = 0; i < args.inherited_count; ++i) {
    const int fd = args.inherited_fds[i];
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags == -1 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == -1) {
      exit_exec_failed(args.error_fd, exec_step_inherit_fd);
    }
  }
  // Close everything else: a leaked pipe end would keep someone's lifeline open forever.
  int next = 3;
  for (std::size_t i = 0; i < args.kept_count; ++i) {
    const int kept = args.kept_fds[i];
    if (kept < 3) continue;  // 0-2 are never swept: a kept fd there must not move `next` below 3
    detail::close_fd_range(next, kept - 1, args.highest_fd);
    next = kept + 1;
  }
  detail::close_fd_range(next, INT_MAX, args.highest_fd);

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
  exit_exec_failed(args.error_fd, exec_step_exec);
}

inline std::string path_for_message(const std::vector<std::string>& argv, const std::string& search_path) {
  if (argv[0].find('/') != std::string::npos) return "'" + argv[0] + "'";
  return "'" + argv[0] + "' (searched PATH=" + search_path + ")";
}

inline std::pair<UniqueFd, UniqueFd> cloexec_pipe(const char* what) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            std::string("teardown::spawn: pipe2 for ") + what);
  }
  return {UniqueFd(ends[0]), UniqueFd(ends[1])};
}

inline Child spawn_child(std::vector<std::string> argv, SpawnOptions options, PidfdUse use) {
  if (argv.empty() || argv[0].empty()) throw std::invalid_argument("teardown::spawn: argv[0] is empty");
  ExecPlan plan;
  const char* path_variable = std::getenv("PATH");
  const std::string search_path = path_variable ? path_variable : "/usr/bin:/bin";
  if (argv[0].find('/') != std::string::npos) {
    plan.candidates.push_back(argv[0]);
  } else {
    std::size_t start = 0;
    for (;;) {
      const std::size_t colon = search_path.find(':', start);
      std::string directory = search_path.substr(start, colon == std::string::npos ? colon : colon - start);
      if (directory.empty()) directory = ".";
      plan.candidates.push_back(directory + "/" + argv[0]);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  for (const auto& arg : argv) plan.argv.push_back(arg.c_str());
  plan.argv.push_back(nullptr);

  for (const auto& entry : options.env_add) {
    if (entry.find('=') == std::string::npos || entry.front() == '=') {
      throw std::invalid_argument("teardown::spawn: env_add entry '" + entry + "' is not of the form K=V");
    }
  }
  const auto key_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  for (char** variable = environ; variable && *variable; ++variable) {
    std::string entry = *variable;
    const std::string key = key_of(entry);
    // A stale lifeline number from our own parent would mislead the child's ParentWatch.
    if (key == "TEARDOWN_LIFELINE_FD") continue;
    const bool replaced = std::any_of(options.env_add.begin(), options.env_add.end(),
                                      [&](const std::string& added) { return key_of(added) == key; });
    if (!replaced) plan.environment.push_back(std::move(entry));
  }
  for (const auto& entry : options.env_add) {
    // With a lifeline the library sets TEARDOWN_LIFELINE_FD itself; a caller's value would be stale.
    if (options.lifeline && key_of(entry) == "TEARDOWN_LIFELINE_FD") continue;
    plan.environment.push_back(entry);
  }

  for (const int fd : options.inherit_fds) {
    if (fd < 0 || ::fcntl(fd, F_GETFD) == -1) {
      throw std::system_error(EBADF, std::generic_category(),
                              "teardown::spawn: inherit_fds names fd " + std::to_string(fd) +
                                  ", which is not open, for " + path_for_message(argv, search_path));
    }
    if (fd > 2) plan.inherited_fds.push_back(fd);
  }

  UniqueFd error_read;
  UniqueFd error_write;
  std::tie(error_read, error_write) = cloexec_pipe("the exec error report");
  if (error_write.get() < 3) {  // our 0-2 were closed: the child's stdio slots are not ours to take
    error_write.reset(::fcntl(error_write.get(), F_DUPFD_CLOEXEC, 3));
    if (!error_write)
      throw std::system_error(errno, std::generic_category(), "teardown::spawn: dup the exec error pipe");
  }
  UniqueFd lifeline_read;
  UniqueFd lifeline_write;
  if (options.lifeline) {
    std::tie(lifeline_read, lifeline_write) = cloexec_pipe("the lifeline");
    if (lifeline_read.get() < 3) {  // our 0-2 were closed: keep the child's stdio slots free
      lifeline_read.reset(::fcntl(lifeline_read.get(), F_DUPFD_CLOEXEC, 3));
      if (!lifeline_read)
        throw std::system_error(errno, std::generic_category(), "teardown::spawn: dup lifeline");
    }
    plan.lifeline_fd = lifeline_read.get();
    plan.inherited_fds.push_back(plan.lifeline_fd);
    plan.environment.push_back("TEARDOWN_LIFELINE_FD=" + std::to_string(plan.lifeline_fd));
  }
  for (const auto& entry : plan.environment) plan.envp.push_back(entry.c_str());
  plan.envp.push_back(nullptr);

  plan.kept_fds = plan.inherited_fds;
  plan.kept_fds.push_back(error_write.get());  // close-on-exec: exec itself closes it
  std::sort(plan.kept_fds.begin(), plan.kept_fds.end());
  plan.kept_fds.erase(std::unique(plan.kept_fds.begin(), plan.kept_fds.end()), plan.kept_fds.end());
  plan.new_process_group = options.new_process_group;
  plan.highest_fd = highest_possible_fd();
  std::vector<const char*> candidate_paths;
  for (const auto& candidate : plan.candidates) candidate_paths.push_back(candidate.c_str());
  const ExecArgs child_args{candidate_paths.data(),
                            candidate_paths.size(),
                            const_cast<char* const*>(plan.argv.data()),
                            const_cast<char* const*>(plan.envp.data()),
                            plan.kept_fds.data(),
                            plan.kept_fds.size(),
                            plan.inherited_fds.data(),
                            plan.inherited_fds.size(),
                            plan.new_process_group,
                            plan.highest_fd,
                            error_write.get()};

  // Block every signal across fork: until the child resets its dispositions, a signal would run
  // one of our handlers in the child (writing, say, into our own shutdown self-pipe).
  sigset_t all_signals;
  sigset_t previous_mask;
  sigfillset(&all_signals);
  ::pthread_sigmask(SIG_SETMASK, &all_signals, &previous_mask);
  const pid_t pid = ::fork();
  if (pid == 0) exec_in_child(child_args);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  if (pid < 0) {
    throw std::system_error(fork_error, std::generic_category(),
                            "teardown::spawn: fork for " + path_for_message(argv, search_path));
  }
  error_write.reset();
  lifeline_read.reset();

  // Right after fork, before anyone could reap it: the pid cannot have been recycled.
  UniqueFd pidfd;
  if (use == PidfdUse::when_available) {
    // ENOSYS (old kernel), EMFILE...: pid-based waiting is still safe, because nothing in this
    // process reaps children it does not own (no SIGCHLD handler, no waitpid(-1)).
    pidfd.reset(detail::pidfd_open(pid));
  }

  ExecFailure failure{};
  const auto got = detail::retry_eintr([&] { return ::read(error_read.get(), &failure, sizeof failure); });
  if (got != 0) {
    const int error = got == static_cast<ssize_t>(sizeof failure) ? failure.error : EIO;
    siginfo_t ignored{};
    (void)detail::retry_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid), &ignored, WEXITED); });
    throw std::system_error(error, std::generic_category(),
                            std::string("teardown::spawn: cannot start ") +
                                path_for_message(argv, search_path) +
                                " (step: " + exec_step_text(got > 0 ? failure.step : 0) + ")");
  }
  return ChildAccess::make(pid, std::move(pidfd), std::move(lifeline_write));
}

inline Child adopt_child(pid_t pid, PidfdUse use) {
  if (pid <= 0)
    throw std::invalid_argument("teardown::Child::adopt: pid " + std::to_string(pid) + " is not a child");
  UniqueFd pidfd;
  if (use == PidfdUse::when_available) {
    pidfd.reset(detail::pidfd_open(pid));
    if (!pidfd && errno != ENOSYS) {
      throw std::system_error(errno, std::generic_category(),
                              "teardown::Child::adopt: pidfd_open for pid " + std::to_string(pid));
    }
  }
  // WNOWAIT: only ask whether it is ours; the status stays for try_wait.
  siginfo_t info{};
  const int result = detail::retry_eintr(
      [&] { return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT); });
  if (result == -1) {
    throw std::system_error(
        errno, std::generic_category(),
        "teardown::Child::adopt: pid " + std::to_string(pid) + " is not a child of this process");
  }
  return ChildAccess::make(pid, std::move(pidfd), UniqueFd());
}

template <class... Visitors>
struct Overloaded : Visitors... {
  using Visitors::operator()...;
};
template <class... Visitors>
Overloaded(Visitors...) -> Overloaded<Visitors...>;

/// A Request's ask, running on its own thread. Shared with that thread, so whatever the ask
/// does after the ladder moved on touches only memory it co-owns.
///
/// Its completion is the closing of `done_write` (the ladder polls the read end, which it owns
/// alone, for POLLHUP): whoever comes first closes it — the thread when the ask returns, or the
/// ladder when it leaves the rung (`abandon`). So an ask that hangs for good costs its thread,
/// never a descriptor, and no write can ever meet a closed pipe (SIGPIPE).
struct AskInFlight {
  std::function<void(Deadline)> ask;
  Deadline deadline = Deadline::never();
  std::mutex done_mutex;
  UniqueFd done_write;  // guarded by done_mutex
  std::atomic<bool> finished{false};
  std::exception_ptr error;  // written before `finished`, read after it

  /// Starts `ask` on its own thread; returns its state and the read end of its completion pipe.
  static std::pair<std::shared_ptr<AskInFlight>, UniqueFd> start(const std::function<void(Deadline)>& ask,
                                                                 Deadline deadline) {
    auto state = std::make_shared<AskInFlight>();
    state->ask = ask;
    state->deadline = deadline;
    UniqueFd done_read;
    std::tie(done_read, state->done_write) = cloexec_pipe("a Request's completion");
    std::thread([state] {
      try {
        state->ask(state->deadline);
      } catch (...) {
        state->error = std::current_exception();
      }
      state->finished.store(true, std::memory_order_release);
      std::lock_guard lock(state->done_mutex);
      state->done_write.reset();  // POLLHUP on the ladder's read end, if it still listens
    }).detach();
    return {std::move(state), std::move(done_read)};
  }

  /// The ladder leaves the rung: the thread keeps running (if it still does) but holds no fd.
  void abandon() noexcept {
    std::lock_guard lock(done_mutex);
    done_write.reset();
  }
};

inline std::string rung_name(const AnyRung& step) {
  return std::visit(Overloaded{[](const rung::Wait&) { return std::string("Wait"); },
                               [](const rung::Request&) { return std::string("Request"); },
                               [](const rung::Signal& s) { return "Signal " + signal_name(s.signo); },
                               [](const rung::Kill&) { return std::string("Kill"); }},
                    step);
}

/// Walks `children` through `rungs` in lockstep: each rung acts on every child still alive, then
/// one poll over all their pidfds waits until they are gone or the rung's grace (shrunk to the
/// overall deadline) ends. When the overall deadline has passed, the ladder jumps to Kill.
/// Returns what went wrong on the way; the statuses land in the children.
inline std::vector<std::string> climb_ladder(const std::vector<Child*>& children, const RungList& rungs,
                                             Deadline overall) {
  const auto started = Clock::now();
  std::vector<std::string> errors;
  std::vector<bool> ended(children.size());
  for (std::size_t k = 0; k < children.size(); ++k) ended[k] = children[k]->status().has_value();

  // Kill{process_group}: the group dies with its leader. Seen ended (but not yet reaped, so the
  // group id is still ours), the leader's group gets SIGKILL before the leader is reaped;
  // otherwise its members that ignore the earlier rungs would be orphaned (reparented to init).
  const bool group_dies_with_leader = !rungs.empty() && std::holds_alternative<rung::Kill>(rungs.back()) &&
                                      std::get<rung::Kill>(rungs.back()).target == Target::process_group;
  bool kill_refused = false;  // SIGKILL failed with something other than ESRCH (EPERM)

  // Reaps child k if it has ended, stamping the rung in force and the time.
  const auto observe = [&](std::size_t k, std::size_t rung_index) {
    if (ended[k]) return true;
    if (group_dies_with_leader && ChildAccess::ended_unreaped(*children[k])) {
      try {
        (void)children[k]->signal(SIGKILL, Target::process_group);
      } catch (const std::logic_error&) {
        // Not a group leader: there is no group of its own to kill (the Kill rung reports it).
      } catch (const std::exception& refused) {
        errors.push_back("rung " + std::to_string(rung_index) + ": the group of pid " +
                         std::to_string(children[k]->pid()) + ", whose leader ended: " + refused.what());
      }
    }
    if (!children[k]->try_wait()) return false;
    auto& status = ChildAccess::status(*children[k]);
    status->rung = rung_index;
    status->took = Clock::now() - started;
    ended[k] = true;
    return true;
  };
  const auto signal_child = [&](std::size_t k, std::size_t rung_index, int signo, Target target) {
    try {
      try {
        return children[k]->signal(signo, target);
      } catch (const std::logic_error& not_a_group_leader) {
        errors.push_back("rung " + std::to_string(rung_index) + ": " + not_a_group_leader.what() +
                         "; signalled the process alone");
        return children[k]->signal(signo, Target::process);
      }
    } catch (const std::exception& refused) {
      errors.push_back("rung " + std::to_string(rung_index) + ": " + refused.what());
      if (signo == SIGKILL) kill_refused = true;
      return false;
    }
  };

  std::size_t in_force = 0;  // the last rung that acted: a child found ended now ended under it
  for (std::size_t rung_index = 0; rung_index < rungs.size(); ++rung_index) {
    const AnyRung& step = rungs[rung_index];
    const bool is_kill = std::holds_alternative<rung::Kill>(step);
    std::size_t alive = 0;
    for (std::size_t k = 0; k < children.size(); ++k) alive += observe(k, in_force) ? 0 : 1;
    if (alive == 0) break;
    if (!is_kill && overall.expired()) continue;  // the budget is spent: straight on to Kill
    in_force = rung_index;

    const Clock::duration grace = std::visit(
        Overloaded{[](const rung::Kill&) { return Clock::duration::max(); },
                   [](const auto& timed) { return std::max(timed.grace, Clock::duration::zero()); }},
        step);
    Deadline rung_end = is_kill ? Deadline::never() : earliest(Deadline::after(grace), overall);

    std::shared_ptr<AskInFlight> ask;
    UniqueFd ask_done;  // the read end of the ask's completion pipe, closed when the rung ends
    std::visit(
        Overloaded{[](const rung::Wait&) {},
                   [&](const rung::Request& request) {
                     try {
                       std::tie(ask, ask_done) = AskInFlight::start(request.ask, rung_end);
                     } catch (const std::exception& failed) {
                       errors.push_back("rung " + std::to_string(rung_index) +
                                        " (Request): could not start the ask: " + failed.what());
                     }
                   },
                   [&](const rung::Signal& signal_rung) {
                     for (std::size_t k = 0; k < children.size(); ++k) {
                       if (!ended[k] && signal_child(k, rung_index, signal_rung.signo, signal_rung.target)) {
                         // A stopped child cannot act on SIGTERM's handler until continued.
                         (void)signal_child(k, rung_index, SIGCONT, signal_rung.target);
                       }
                     }
                   },
                   [&](const rung::Kill& kill_rung) {
                     for (std::size_t k = 0; k < children.size(); ++k) {
                       if (!ended[k]) (void)signal_child(k, rung_index, SIGKILL, kill_rung.target);
                     }
                   }},
        step);
    if (std::holds_alternative<rung::Request>(step) && !ask) continue;
    if (is_kill && kill_refused) {
      // Waiting for a SIGKILL that was never delivered would never end: bound it, and leave the
      // child unreaped (Kind::kill_refused) for a later reap.
      rung_end = overall.is_never() ? Deadline::after(std::chrono::seconds(5)) : overall;
    }

    // One poll over every live pidfd (+ the ask's completion pipe) until all ended or rung_end.
    std::vector<pollfd> events;
    std::vector<std::size_t> event_owner;  // child index; children.size() for the ask
    auto backoff = std::chrono::microseconds(100);
    bool ask_seen = false;
    bool ask_threw = false;
    for (;;) {
      events.clear();
      event_owner.clear();
      bool any_alive = false;
      bool any_without_pidfd = false;
      for (std::size_t k = 0; k < children.size(); ++k) {
        if (ended[k]) continue;
        any_alive = true;
        if (children[k]->fd() >= 0) {
          events.push_back(pollfd{children[k]->fd(), POLLIN, 0});
          event_owner.push_back(k);
        } else {
          any_without_pidfd = true;
        }
      }
      if (!any_alive || rung_end.expired()) break;
      if (ask && !ask_seen) {
        events.push_back(pollfd{ask_done.get(), POLLIN, 0});
        event_owner.push_back(children.size());
      }
      auto until = rung_end.time_point();
      if (any_without_pidfd) {  // the fallback: bounded backoff, 100 µs doubling to 10 ms
        until = std::min(until, Clock::now() + backoff);
        backoff = std::min(backoff * 2, std::chrono::microseconds(10'000));
      }
      if (detail::poll_until(events.data(), static_cast<nfds_t>(events.size()), until) == -1) {
        // Out of memory or fds for poll: degrade to checking each child, never abandon the reap.
        errors.push_back("rung " + std::to_string(rung_index) + ": poll failed (" +
                         std::system_category().message(errno) + "); checking children by waitid");
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (std::size_t k = 0; k < children.size(); ++k) (void)observe(k, rung_index);
        continue;
      }
      for (std::size_t e = 0; e < events.size(); ++e) {
        if (events[e].revents == 0) continue;
        if (event_owner[e] == children.size()) {
          ask_seen = true;
          if (ask->finished.load(std::memory_order_acquire) && ask->error) {
            ask_threw = true;
            errors.push_back("rung " + std::to_string(rung_index) +
                             " (Request): ask threw: " + what_of(ask->error));
          }
        } else {
          (void)observe(event_owner[e], rung_index);
        }
      }
      if (any_without_pidfd) {
        for (std::size_t k = 0; k < children.size(); ++k) {
          if (children[k]->fd() < 0) (void)observe(k, rung_index);
        }
      }
      if (ask_threw) break;  // a failed request: the ladder goes on at once
    }
    if (ask && !ask->finished.load(std::memory_order_acquire) && rung_end.expired()) {
      errors.push_back("rung " + std::to_string(rung_index) +
                       " (Request): ask did not return within its grace of " + milliseconds_text(grace) +
                       "; the ladder moved on and left it running");
    }
    if (ask) ask->abandon();
  }
  // A ladder always ends with Kill, which waits with no deadline: every child has ended here,
  // unless SIGKILL was refused (the bounded wait above); such a child keeps no status.
  for (std::size_t k = 0; k < children.size(); ++k) (void)observe(k, in_force);
  for (std::size_t k = 0; k < children.size(); ++k) {
    if (!ended[k]) {
      errors.push_back("pid " + std::to_string(children[k]->pid()) +
                       " is still running after the Kill rung: SIGKILL was refused; it stays unreaped");
    }
  }
  return errors;
}

/// One reap at a time, with a bounded wait for one's turn (close(deadline) must not wait past
/// its deadline for another thread's reap). A mutex + condition variable rather than
/// std::timed_mutex, whose try_lock_until (pthread_mutex_clocklock) ThreadSanitizer does not see.
class ReapTurns {
 public:
  /// Waits until no other reap runs or `deadline`; true when the turn is ours.
  bool acquire(Deadline deadline) {
    std::unique_lock lock(mutex_);
    if (!detail::wait_until(idle_, lock, deadline, [&] { return !busy_; })) return false;
    busy_ = true;
    return true;
  }
  void release() noexcept {
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    idle_.notify_all();
  }

  /// Holds a turn until destroyed.
  class Turn {
   public:
    Turn(ReapTurns& turns, Deadline deadline) : turns_(turns), held_(turns.acquire(deadline)) {}
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    ~Turn() {
      if (held_) turns_.release();
    }
    [[nodiscard]] bool held() const noexcept { return held_; }

   private:
    ReapTurns& turns_;
    bool held_;
  };

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  bool busy_ = false;
};

inline void report_ladder_errors(const std::vector<std::string>& errors, const char* context) {
  for (const auto& error : errors) {
    report_error(std::make_exception_ptr(std::runtime_error(error)), context);
  }
}

}  // namespace detail

/// Reaps one child through a ladder.
///
///   teardown::Reaper reaper(teardown::spawn({"worker"}), teardown::ladder(rung::Signal{SIGTERM, 5s},
///                                                                         rung::Kill{}));
///   ExitStatus status = reaper.reap(Deadline::after(2s));  // ≤ 2 s + the kernel's SIGKILL time
///
/// `reap` runs the ladder once (later calls return the same status); once started it is never
/// abandoned half-way. Problems on the way (a Request that threw or hung) go to the error
/// handler. Thread-safety: `reap`/`close` may be called from any thread; a second caller waits
/// for the first. Signal-safety: none. Destructor: reaps if not yet reaped (no deadline).
class Reaper {
 public:
  explicit Reaper(Child child) : Reaper(std::move(child), default_ladder()) {}
  template <class... Rungs>
  Reaper(Child child, const Ladder<Rungs...>& ladder) : child_(std::move(child)), rungs_(ladder.steps()) {
    if (child_.pid() <= 0) throw std::invalid_argument("teardown::Reaper: the Child was moved from");
  }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;
  ~Reaper() {
    try {
      (void)reap();
    } catch (...) {
      report_error(std::current_exception(), "teardown::Reaper destructor");
    }
  }

  /// Runs the ladder; returns within the sum of the graces or `overall` (whichever is first)
  /// plus the kernel's SIGKILL time, whatever the child does.
  ExitStatus reap(Deadline overall = Deadline::never()) {
    detail::ReapTurns::Turn turn(turns_, Deadline::never());
    return reap_locked(overall);
  }

  /// Closeable: `reap(deadline)`. While another thread is reaping, waits for it only until
  /// `deadline`, then returns (that reap goes on, and ends with its own ladder).
  void close(Deadline deadline) {
    detail::ReapTurns::Turn turn(turns_, deadline);
    if (turn.held()) (void)reap_locked(deadline);
  }

  [[nodiscard]] pid_t pid() const noexcept { return child_.pid(); }

 private:
  ExitStatus reap_locked(Deadline overall) {
    if (!child_.status()) {
      detail::report_ladder_errors(detail::climb_ladder({&child_}, rungs_, overall),
                                   "teardown::Reaper::reap");
    }
    if (child_.status()) return *child_.status();
    // SIGKILL was refused: no status yet; a later reap (or the destructor) tries again.
    return ExitStatus{ExitStatus::Kind::kill_refused, 0, 0, rungs_.size() - 1, {}, child_.pid()};
  }

  detail::ReapTurns turns_;
  Child child_;
  detail::RungList rungs_;
};

/// Reaps many children in parallel: every rung acts on all of them, then one poll waits for all,
/// so N stubborn children take one grace, not N.
///
///   teardown::ReapGroup pool;
///   pool.add(teardown::spawn({"worker", "1"}));
///   ReapReport report = pool.reap_all(teardown::default_ladder(), Deadline::after(10s));
///
/// `reap_all` reaps every child added so far (statuses in `add()` order) and empties the group.
/// Thread-safety: `add` from any thread; reaps are serialized (a `close` during `reap_all`
/// waits for it). Destructor: reaps what is left with the group's ladder (default_ladder()).
class ReapGroup {
 public:
  ReapGroup() : ReapGroup(default_ladder()) {}
  /// `close` and the destructor use `ladder`.
  template <class... Rungs>
  explicit ReapGroup(const Ladder<Rungs...>& ladder) : close_rungs_(ladder.steps()) {}
  ReapGroup(const ReapGroup&) = delete;
  ReapGroup& operator=(const ReapGroup&) = delete;
  ~ReapGroup() {
    try {
      close(Deadline::never());
    } catch (...) {
      report_error(std::current_exception(), "teardown::ReapGroup destructor");
    }
  }

  void add(Child child) {
    if (child.pid() <= 0) throw std::invalid_argument("teardown::ReapGroup::add: the Child was moved from");
    std::lock_guard lock(children_mutex_);
    children_.push_back(std::move(child));
  }

  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(children_mutex_);
    return children_.size();
  }

  template <class... Rungs>
  ReapReport reap_all(const Ladder<Rungs...>& ladder, Deadline overall = Deadline::never()) {
    return reap_all_steps(ladder.steps(), overall);
  }

  /// Closeable: reaps every child with the group's ladder within `deadline`. While another
  /// thread is reaping, waits for it only until `deadline`, then returns.
  void close(Deadline deadline) {
    detail::ReapTurns::Turn turn(reap_turns_, deadline);
    if (turn.held()) (void)reap_all_locked(close_rungs_, deadline);
  }

 private:
  ReapReport reap_all_steps(const detail::RungList& rungs, Deadline overall) {
    detail::ReapTurns::Turn turn(reap_turns_, Deadline::never());
    return reap_all_locked(rungs, overall);
  }

  ReapReport reap_all_locked(const detail::RungList& rungs, Deadline overall) {
    std::vector<Child> reaping;
    {
      std::lock_guard lock(children_mutex_);
      reaping.swap(children_);
    }
    const auto started = Clock::now();
    std::vector<Child*> pointers;
    pointers.reserve(reaping.size());
    for (auto& child : reaping) pointers.push_back(&child);
    ReapReport report;
    report.errors = detail::climb_ladder(pointers, rungs, overall);
    report.took = Clock::now() - started;
    detail::report_ladder_errors(report.errors, "teardown::ReapGroup::reap_all");
    report.statuses.reserve(reaping.size());
    std::vector<Child> refused;  // SIGKILL refused: still running, back into the group
    for (auto& child : reaping) {
      if (child.status()) {
        report.statuses.push_back(*child.status());
      } else {
        report.statuses.push_back(
            ExitStatus{ExitStatus::Kind::kill_refused, 0, 0, rungs.size() - 1, report.took, child.pid()});
        refused.push_back(std::move(child));
      }
    }
    if (!refused.empty()) {
      std::lock_guard lock(children_mutex_);
      for (auto& child : refused) children_.push_back(std::move(child));
    }
    return report;
  }

  mutable std::mutex children_mutex_;
  detail::ReapTurns reap_turns_;
  std::vector<Child> children_;
  detail::RungList close_rungs_;
};

}  // namespace teardown
