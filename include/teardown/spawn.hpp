// teardown/spawn.hpp — start a child process and own it until it is reaped.
//
//   auto worker = teardown::spawn({"python3", "-m", "http.server", "0"},
//                                 {.contain = teardown::Contain::process_group,
//                                  .out = teardown::Stdio::pipe(), .cwd = "/srv/www"});
//   read(worker.stdout_fd(), ...);                 // the parent's end, owned by the Child
//   worker.signal(SIGTERM, teardown::Target::tree);
//   auto status = worker.wait_until(teardown::Deadline::after(5s));
//   // ~Child: a child not yet reaped is reaped (SIGTERM, 5 s, SIGKILL)
//
// A failed exec — missing binary, no permission, a cwd that is not a directory — is a
// std::system_error naming the path, the step and the errno; never a child that exits 127.
// Linux ≥ 5.3 waits and signals through pidfds (event-driven, never a recycled pid). Without
// them (ENOSYS, other POSIX) waiting falls back to waitid(WNOHANG) with a bounded backoff and
// kill(2) only while the child is known unreaped. Never a SIGCHLD handler, never waitpid(-1).
// For stopping a child through an escalation ladder, see teardown/reaper.hpp.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core.hpp"
#include "detail/fork_exec.hpp"
#include "detail/ladder.hpp"
#include "detail/process.hpp"
#include "detail/text.hpp"
#include "unique_resource.hpp"

namespace teardown {

/// Whom a signal goes to: the child alone; the process group it leads (so its own children,
/// which inherit the group, die with it); or every process the child's containment holds — for
/// now the group when the child leads one (Contain::process_group), else the child alone.
enum class Target { process, process_group, tree };

/// How far a child's descendants are held with it. `process_group`: the child leads a new
/// process group, which Target::process_group and Target::tree signal. `cgroup` and
/// `automatic` are specified in docs/reaper.md; `automatic` is process_group until cgroup
/// containment lands, and `cgroup` is refused (ENOSYS) until then.
enum class Contain { none, process_group, cgroup, automatic };

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

/// What one of the child's fds 0, 1, 2 becomes: ours (inherit), /dev/null, a pipe whose other
/// end the Child owns, or a copy of one of our fds (checked at spawn: EBADF names it).
class Stdio {
 public:
  static Stdio inherit() noexcept { return Stdio(detail::StdioKind::inherit, -1); }
  static Stdio null() noexcept { return Stdio(detail::StdioKind::null, -1); }
  static Stdio pipe() noexcept { return Stdio(detail::StdioKind::pipe, -1); }
  static Stdio fd(int fd) noexcept { return Stdio(detail::StdioKind::fd, fd); }

  /// What the fork/exec engine plans from.
  [[nodiscard]] detail::StdioRequest request() const noexcept { return request_; }

 private:
  Stdio(detail::StdioKind kind, int fd) noexcept : request_{kind, fd} {}
  detail::StdioRequest request_;
};

/// How `spawn` starts a child.
struct SpawnOptions {
  bool new_process_group = false;      // the child leads its own group (as Contain::process_group)
  bool lifeline = false;               // pass a lifeline fd for the child's ParentWatch
  std::vector<std::string> env_add{};  // "K=V" added to (or replacing in) the environment
  std::vector<int> inherit_fds{};      // kept open at the same numbers; every other fd but 0-2 and
                                       // the lifeline is closed in the child
  Contain contain = Contain::none;     // how far the child's descendants are held with it
  bool die_with_parent = false;        // SIGKILL the child when this process dies (ENOSYS: not yet)
  Stdio in = Stdio::inherit();
  Stdio out = Stdio::inherit();
  Stdio err = Stdio::inherit();
  std::string cwd{};                              // empty: inherit ours
  std::optional<std::vector<std::string>> env{};  // replaces the environment; env_add on top
};

class Child;

namespace detail {

/// Whether a Child may use a pidfd. `never` forces the fallback that kernels without pidfd
/// (ENOSYS) and other POSIX systems take, so that path is tested on every machine.
enum class PidfdUse { when_available, never };

/// The fds a Child owns: its pidfd, the lifeline's write end, the parent's stdio pipe ends.
struct ChildFds {
  UniqueFd pidfd;
  UniqueFd lifeline;  // write end; never written: its closing is the message
  UniqueFd stdin_write;
  UniqueFd stdout_read;
  UniqueFd stderr_read;
};

struct ChildAccess;
Child spawn_child(std::vector<std::string> argv, SpawnOptions options, PidfdUse use);
Child adopt_child(pid_t pid, PidfdUse use);

}  // namespace detail

/// An owned child process, not yet reaped (or reaped, with its status kept). Move-only.
///
///   auto child = teardown::spawn({"sleep", "60"});
///   child.signal(SIGTERM);
///   if (auto status = child.wait_until(Deadline::after(1s))) puts(status->describe().c_str());
///
/// Holds the child's pidfd (or -1 on the fallback path), with `lifeline` the write end of the
/// child's lifeline (closed only when the Child ends), and the parent's ends of its stdio pipes
/// (closed when the child is reaped). Thread-safety: one owner. Signal-safety: none. Fork: a copy
/// in a forked process sees ECHILD and never signals the child. Destructor: a child not yet
/// reaped is reaped through the default ladder (SIGTERM, 5 s, SIGKILL) aimed at Target::tree:
/// a group leader takes its group with it.
class Child {
 public:
  /// Takes over `pid`, a child of this process started elsewhere; opens its pidfd now.
  /// Throws std::system_error if `pid` is not a child of this process (ECHILD) or is gone.
  static Child adopt(pid_t pid) { return detail::adopt_child(pid, detail::PidfdUse::when_available); }

  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        fds_(std::move(other.fds_)),
        containment_(other.containment_),
        status_(std::exchange(other.status_, std::nullopt)),
        waitid_pidfd_works_(other.waitid_pidfd_works_) {}
  /// Reaps the child this one held (like the destructor), then takes `other`'s.
  Child& operator=(Child&& other) noexcept {
    if (this != &other) {
      reap_if_owned();
      pid_ = std::exchange(other.pid_, -1);
      fds_ = std::move(other.fds_);
      containment_ = other.containment_;
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
  [[nodiscard]] int fd() const noexcept { return fds_.pidfd.get(); }
  /// The status, once reaped.
  [[nodiscard]] const std::optional<ExitStatus>& status() const noexcept { return status_; }
  /// What the child got (Contain::automatic resolved); Contain::process_group also when it was
  /// started with `new_process_group`.
  [[nodiscard]] Contain containment() const noexcept { return containment_; }

  /// The parent's pipe ends: -1 unless that slot was Stdio::pipe(), and once the child is reaped.
  [[nodiscard]] int stdin_fd() const noexcept { return fds_.stdin_write.get(); }
  [[nodiscard]] int stdout_fd() const noexcept { return fds_.stdout_read.get(); }
  [[nodiscard]] int stderr_fd() const noexcept { return fds_.stderr_read.get(); }
  /// Closes the write end of the child's stdin pipe: the child reads EOF.
  void close_stdin() noexcept { fds_.stdin_write.reset(); }

  /// Reaps the child if it has ended; never blocks.
  std::optional<ExitStatus> try_wait() {
    if (status_) return status_;
    if (pid_ <= 0) throw std::logic_error("teardown::Child: used after it was moved from");
    siginfo_t info{};
    int result = -1;
    if (fds_.pidfd && waitid_pidfd_works_) {
      result = detail::retry_eintr(
          [&] { return detail::waitid_pidfd(fds_.pidfd.get(), &info, WEXITED | WNOHANG); });
      if (result == -1 && errno == EINVAL) waitid_pidfd_works_ = false;  // kernel 5.3: pidfd, no P_PIDFD
    }
    if (!fds_.pidfd || !waitid_pidfd_works_) {
      // Safe by pid: the child is ours and unreaped, so its pid cannot have been recycled.
      result = detail::retry_eintr(
          [&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG); });
    }
    if (result == -1) {
      if (errno != ECHILD) {
        throw std::system_error(errno, std::generic_category(),
                                "teardown::Child::try_wait: waitid for pid " + std::to_string(pid_));
      }
      return reaped(ExitStatus{ExitStatus::Kind::reaped_elsewhere, 0, 0, 0, {}, pid_});
    }
    if (info.si_pid == 0) return std::nullopt;
    if (info.si_code == CLD_EXITED)
      return reaped(ExitStatus{ExitStatus::Kind::exited, info.si_status, 0, 0, {}, pid_});
    return reaped(ExitStatus{ExitStatus::Kind::signaled, 0, info.si_status, 0, {}, pid_});
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
      if (fds_.pidfd) {
        pollfd exit_event{fds_.pidfd.get(), POLLIN, 0};
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

  /// Sends `signo` to the child (through its pidfd), to the group it leads, or to its tree (see
  /// Target). False once the child has ended (it is then reaped). Throws std::logic_error for
  /// `process_group` when the child does not lead its own group, and std::system_error when the
  /// kernel refuses.
  ///
  /// With `process_group` the group is signalled as long as the leader is unreaped, even after
  /// the leader itself exited: its zombie keeps the group id from being reused, and the rest of
  /// the group may live on (a group never dies with its leader by itself).
  bool signal(int signo, Target target = Target::process) {
    if (target == Target::tree) target = tree_target();
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
    } else if (fds_.pidfd) {
      result = detail::pidfd_send_signal(fds_.pidfd.get(), signo);
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
  template <class, class>
  friend class detail::LadderClimb;

  Child(pid_t pid, detail::ChildFds fds, Contain containment) noexcept
      : pid_(pid), fds_(std::move(fds)), containment_(containment) {}

  enum class Liveness { running, ended_unreaped, gone };

  /// What Target::tree reaches today: the group while the child (unreaped) still leads the one
  /// its containment gave it, else the child alone — a child that left its group is not refused.
  Target tree_target() const noexcept {
    const bool leads_its_group =
        containment_ == Contain::process_group && !status_ && ::getpgid(pid_) == pid_;
    return leads_its_group ? Target::process_group : Target::process;
  }

  /// Whether the child has ended, without reaping it (WNOWAIT): `gone` once reaped elsewhere.
  Liveness peek() {
    siginfo_t info{};
    int result = -1;
    constexpr int options = WEXITED | WNOHANG | WNOWAIT;
    if (fds_.pidfd && waitid_pidfd_works_) {
      result = detail::retry_eintr([&] { return detail::waitid_pidfd(fds_.pidfd.get(), &info, options); });
      if (result == -1 && errno == EINVAL) waitid_pidfd_works_ = false;
    }
    if (!fds_.pidfd || !waitid_pidfd_works_) {
      result = detail::retry_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &info, options); });
    }
    if (result == -1) return errno == ECHILD ? Liveness::gone : Liveness::running;
    return info.si_pid == 0 ? Liveness::running : Liveness::ended_unreaped;
  }

  /// Records the status; the stdio pipe ends close with it (the lifeline stays with the Child).
  std::optional<ExitStatus> reaped(ExitStatus status) noexcept {
    status_ = status;
    fds_.stdin_write.reset();
    fds_.stdout_read.reset();
    fds_.stderr_read.reset();
    return status_;
  }

  // What the ladder engine uses (detail::LadderClimb).
  bool ended_unreaped() { return !status_ && peek() == Liveness::ended_unreaped; }
  void stamp(std::size_t rung, Clock::duration took) noexcept {
    status_->rung = rung;
    status_->took = took;
  }

  void reap_if_owned() noexcept {
    if (pid_ <= 0 || status_) return;
    try {
      detail::report_ladder_errors(
          detail::climb_ladder(std::vector<Child*>{this}, detail::default_steps(Target::tree),
                               Deadline::never()),
          "teardown::Child destructor");
    } catch (...) {
      report_error(std::current_exception(),
                   "teardown::Child destructor: reaping pid " + std::to_string(pid_));
    }
  }

  pid_t pid_ = -1;
  detail::ChildFds fds_;
  Contain containment_ = Contain::none;
  std::optional<ExitStatus> status_;
  bool waitid_pidfd_works_ = true;
};

/// Starts `argv` (argv[0] searched in this process's PATH unless it contains a '/') with
/// `options`. A failed exec — missing binary, no permission, bad format, a cwd that cannot be
/// entered — is a std::system_error carrying the errno, with the path and the step in what();
/// never a child that exits 127. Bad options (an invalid Stdio::fd or inherit_fds entry, a cwd
/// that is missing or not a directory, an env entry without '=') throw before any child runs.
/// The child starts with default signal dispositions and an empty signal mask.
inline Child spawn(std::vector<std::string> argv, SpawnOptions options = {}) {
  return detail::spawn_child(std::move(argv), std::move(options), detail::PidfdUse::when_available);
}

namespace detail {

struct ChildAccess {
  static Child make(pid_t pid, ChildFds fds, Contain containment) noexcept {
    return Child(pid, std::move(fds), containment);
  }
};

/// What `options.contain` gives the child today (automatic resolved); refuses what is not there yet.
inline Contain resolve_containment(const SpawnOptions& options, const std::string& program) {
  if (options.contain == Contain::cgroup || options.die_with_parent) {
    throw std::system_error(ENOSYS, std::generic_category(),
                            std::string("teardown::spawn: ") +
                                (options.die_with_parent ? "die_with_parent" : "Contain::cgroup") +
                                " is not implemented yet, for " + program);
  }
  if (options.contain == Contain::none && !options.new_process_group) return Contain::none;
  return Contain::process_group;
}

inline Child spawn_child(std::vector<std::string> argv, SpawnOptions options, PidfdUse use) {
  if (argv.empty() || argv[0].empty()) throw std::invalid_argument("teardown::spawn: argv[0] is empty");
  const std::string path = search_path();
  const std::string program = program_for_message(argv[0], path);
  const Contain containment = resolve_containment(options, program);

  ExecPlan plan;
  plan.candidates = exec_candidates(argv[0], path);
  plan.arguments = std::move(argv);
  plan.environment =
      child_environment(options.env ? &*options.env : nullptr, options.env_add, options.lifeline);
  plan.inherited_fds = checked_inherit_fds(options.inherit_fds, program);
  plan.cwd = checked_cwd(options.cwd, program);
  plan.stdio = plan_stdio({options.in.request(), options.out.request(), options.err.request()}, program);
  plan.new_process_group = containment == Contain::process_group;
  ChildFds fds;
  if (options.lifeline) fds.lifeline = plan_lifeline(plan);
  const UniqueFd error_read = plan_error_pipe(plan);

  const pid_t pid = start_process(exec_args(plan));
  if (pid < 0)
    throw std::system_error(errno, std::generic_category(), "teardown::spawn: fork for " + program);
  close_child_ends(plan);
  // Right after fork, before anyone could reap it: the pid cannot have been recycled.
  if (use == PidfdUse::when_available) {
    // ENOSYS (old kernel), EMFILE...: pid-based waiting is still safe, because nothing in this
    // process reaps children it does not own (no SIGCHLD handler, no waitpid(-1)).
    fds.pidfd.reset(pidfd_open(pid));
  }
  if (const auto failure = read_exec_failure(error_read.get())) {
    siginfo_t ignored{};
    (void)retry_eintr([&] { return ::waitid(P_PID, static_cast<id_t>(pid), &ignored, WEXITED); });
    throw std::system_error(
        failure->error, std::generic_category(),
        "teardown::spawn: cannot start " + program + " (step: " + exec_step_text(*failure, plan) + ")");
  }
  fds.stdin_write = std::move(plan.stdio.parent_ends[0]);
  fds.stdout_read = std::move(plan.stdio.parent_ends[1]);
  fds.stderr_read = std::move(plan.stdio.parent_ends[2]);
  return ChildAccess::make(pid, std::move(fds), containment);
}

inline Child adopt_child(pid_t pid, PidfdUse use) {
  if (pid <= 0)
    throw std::invalid_argument("teardown::Child::adopt: pid " + std::to_string(pid) + " is not a child");
  ChildFds fds;
  if (use == PidfdUse::when_available) {
    fds.pidfd.reset(pidfd_open(pid));
    if (!fds.pidfd && errno != ENOSYS) {
      throw std::system_error(errno, std::generic_category(),
                              "teardown::Child::adopt: pidfd_open for pid " + std::to_string(pid));
    }
  }
  // WNOWAIT: only ask whether it is ours; the status stays for try_wait.
  siginfo_t info{};
  const int result = retry_eintr(
      [&] { return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT); });
  if (result == -1) {
    throw std::system_error(
        errno, std::generic_category(),
        "teardown::Child::adopt: pid " + std::to_string(pid) + " is not a child of this process");
  }
  return ChildAccess::make(pid, std::move(fds), Contain::none);
}

}  // namespace detail

}  // namespace teardown
