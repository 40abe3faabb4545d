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
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core.hpp"
#include "detail/contain.hpp"
#include "detail/fd.hpp"
#include "detail/fork_exec.hpp"
#include "detail/ladder.hpp"
#include "detail/pidfd.hpp"
#include "detail/process.hpp"
#include "detail/text.hpp"
#include "unique_resource.hpp"

namespace teardown {

/// Whom a signal goes to: the child alone; the process group it leads (so its own children,
/// which inherit the group, die with it); or every process the child's containment holds (its
/// cgroup leaf, or its group plus every member that setsid()'d and was reparented to us). A
/// reap whose Kill targets the tree ends only once the whole tree is gone.
enum class Target { process, process_group, tree };

/// How far a child's descendants are held with it (docs/reaper.md, "Containment").
/// `cgroup`: a fresh cgroup v2 leaf, entered at clone time; nothing of the tree escapes it.
/// `process_group`: the child leads a new group, this process becomes a child subreaper, and an
/// environment marker follows the tree across setsid(). `automatic` (the default): cgroup where
/// a leaf can be made, else process_group. `none`: the child alone.
enum class Contain { none, process_group, cgroup, automatic };

/// "none", "process_group", "cgroup", "automatic".
constexpr std::string_view to_string(Contain contain) noexcept {
  switch (contain) {
    case Contain::none:
      return "none";
    case Contain::process_group:
      return "process_group";
    case Contain::cgroup:
      return "cgroup";
    case Contain::automatic:
      return "automatic";
  }
  return "unknown";
}

/// "process", "process_group", "tree".
constexpr std::string_view to_string(Target target) noexcept {
  switch (target) {
    case Target::process:
      return "process";
    case Target::process_group:
      return "process_group";
    case Target::tree:
      return "tree";
  }
  return "unknown";
}

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
  [[nodiscard]] bool ok() const noexcept { return kind == Kind::exited && code == 0; }
  [[deprecated("use ok(): every teardown report answers with ok()")]] [[nodiscard]] bool clean()
      const noexcept {
    return ok();
  }

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
    return text + " at rung " + std::to_string(rung) + " after " + duration_text(took);
  }
};

/// "exited", "signaled", "reaped_elsewhere", "kill_refused".
constexpr std::string_view to_string(ExitStatus::Kind kind) noexcept {
  switch (kind) {
    case ExitStatus::Kind::exited:
      return "exited";
    case ExitStatus::Kind::signaled:
      return "signaled";
    case ExitStatus::Kind::reaped_elsewhere:
      return "reaped_elsewhere";
    case ExitStatus::Kind::kill_refused:
      return "kill_refused";
  }
  return "unknown";
}

/// What one of the child's fds 0, 1, 2 becomes: ours (inherit), /dev/null, a pipe whose other
/// end the Child owns, or a copy of one of our fds (checked at spawn: EBADF names it).
class Stdio {
 public:
  [[nodiscard]] static Stdio inherit() noexcept { return Stdio(detail::StdioKind::inherit, -1); }
  [[nodiscard]] static Stdio null() noexcept { return Stdio(detail::StdioKind::null, -1); }
  [[nodiscard]] static Stdio pipe() noexcept { return Stdio(detail::StdioKind::pipe, -1); }
  [[nodiscard]] static Stdio fd(int fd) noexcept { return Stdio(detail::StdioKind::fd, fd); }

  /// What the fork/exec engine plans from.
  [[nodiscard]] detail::StdioRequest request() const noexcept { return request_; }

 private:
  Stdio(detail::StdioKind kind, int fd) noexcept : request_{kind, fd} {}
  detail::StdioRequest request_;
};

/// How `spawn` starts a child.
struct SpawnOptions {
  bool new_process_group = false;        // the child leads its own group (as Contain::process_group)
  bool lifeline = false;                 // pass a lifeline fd for the child's ParentWatch
  std::vector<std::string> env_add{};    // "K=V" added to (or replacing in) the environment
  std::vector<int> inherit_fds{};        // kept open at the same numbers; every other fd but 0-2 and
                                         // the lifeline is closed in the child
  Contain contain = Contain::automatic;  // how far the child's descendants are held with it
  bool die_with_parent = false;          // the child's tree is SIGKILLed when this process dies,
                                         // even by SIGKILL (the guardian: docs/reaper.md)
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
  [[nodiscard]] static Child adopt(pid_t pid) {
    return detail::adopt_child(pid, detail::PidfdUse::when_available);
  }

  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        fds_(std::move(other.fds_)),
        containment_(other.containment_),
        contain_(std::move(other.contain_)),
        status_(std::exchange(other.status_, std::nullopt)),
        waitid_pidfd_works_(other.waitid_pidfd_works_),
        climbed_(other.climbed_) {}
  /// Reaps the child this one held (like the destructor), then takes `other`'s.
  Child& operator=(Child&& other) noexcept {
    if (this != &other) {
      reap_if_owned();
      pid_ = std::exchange(other.pid_, -1);
      fds_ = std::move(other.fds_);
      containment_ = other.containment_;
      contain_ = std::move(other.contain_);
      status_ = std::exchange(other.status_, std::nullopt);
      waitid_pidfd_works_ = other.waitid_pidfd_works_;
      climbed_ = other.climbed_;
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

  /// What the default ladder and the destructor signal: the containment's tree, else the group
  /// the child leads, else the child.
  [[nodiscard]] Target default_target() const noexcept {
    if (contain_.holds_a_tree()) return Target::tree;
    return containment_ == Contain::process_group ? Target::process_group : Target::process;
  }

  /// The parent's pipe ends: -1 unless that slot was Stdio::pipe(), and once the child is reaped.
  [[nodiscard]] int stdin_fd() const noexcept { return fds_.stdin_write.get(); }
  [[nodiscard]] int stdout_fd() const noexcept { return fds_.stdout_read.get(); }
  [[nodiscard]] int stderr_fd() const noexcept { return fds_.stderr_read.get(); }
  /// Closes the write end of the child's stdin pipe: the child reads EOF.
  void close_stdin() noexcept { fds_.stdin_write.reset(); }

  /// Reaps the child if it has ended; never blocks.
  [[nodiscard]] std::optional<ExitStatus> try_wait() {
    if (status_) return status_;
    if (pid_ <= 0) throw std::logic_error("teardown::Child: used after it was moved from");
    // The guardian must let go of a die_with_parent child before its pid can be recycled.
    if (contain_.watched() && peek() != Liveness::running) contain_.forget_in_guardian();
    siginfo_t info{};
    int result = -1;
    if (fds_.pidfd && waitid_pidfd_works_) {
      result = detail::retry_eintr(
          [&] { return detail::waitid_pidfd(fds_.pidfd.get(), &info, WEXITED | WNOHANG); });
      if (result == -1 && errno == EINVAL) waitid_pidfd_works_ = false;  // kernel 5.3: pidfd, no P_PIDFD
    }
    if (!fds_.pidfd || !waitid_pidfd_works_) {
      // Safe by pid: the child is ours and unreaped, so its pid cannot have been recycled.
      result = detail::retry_eintr([&] { return detail::waitid_pid(pid_, &info, WEXITED | WNOHANG); });
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
    if (target == Target::tree && contain_.holds_a_tree()) return signal_tree(signo);
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
      const pid_t group = detail::process_group_of(pid_);
      if (group == -1) return false;
      if (group != pid_) {
        throw std::logic_error("teardown::Child::signal: pid " + std::to_string(pid_) +
                               " does not lead its own process group (start it with "
                               "SpawnOptions::new_process_group); not signalling group " +
                               std::to_string(group));
      }
      result = detail::signal_process_group(pid_, signo);
    } else if (fds_.pidfd) {
      result = detail::pidfd_send_signal(fds_.pidfd.get(), signo);
    } else {
      result = detail::signal_pid(pid_, signo);  // the fallback: safe only because the child is unreaped
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

  Child(pid_t pid, detail::ChildFds fds, Contain containment, detail::Containment contain) noexcept
      : pid_(pid), fds_(std::move(fds)), containment_(containment), contain_(std::move(contain)) {}

  /// Target::tree with a containment: the leader through its pidfd while unreaped, then every
  /// other member (cgroup: the leaf; fallback: group + verified members). SIGKILL to a cgroup is
  /// one cgroup.kill. True while anything of the tree was there to signal.
  bool signal_tree(int signo) {
    if (pid_ <= 0) throw std::logic_error("teardown::Child: used after it was moved from");
    const bool leader_unreaped = !status_ && peek() != Liveness::gone;
    // Each process gets the signal once: the fallback's kill(-group) reaches a leader still in
    // its group, the leaf's signalling skips the leader.
    const bool group_reaches_leader =
        contain_.kind() == detail::ContainKind::process_group && detail::process_group_of(pid_) == pid_;
    bool signalled = false;
    if (leader_unreaped && !group_reaches_leader && peek() == Liveness::running) {
      const int result =
          fds_.pidfd ? detail::pidfd_send_signal(fds_.pidfd.get(), signo) : detail::signal_pid(pid_, signo);
      if (result == -1 && errno != ESRCH) {
        throw std::system_error(
            errno, std::generic_category(),
            "teardown::Child::signal: " + detail::signal_name(signo) + " to pid " + std::to_string(pid_));
      }
      signalled = result == 0;
    }
    signalled = contain_.signal_members(signo, pid_, leader_unreaped) > 0 || signalled;
    if (!leader_unreaped && contain_.members_gone(pid_, false)) contain_.tidy_up();
    return signalled;
  }

  /// With a containment: whether nothing of the tree but the (reaped) leader is left; once so,
  /// the tree is tidied up (adopted zombies reaped, the leaf removed).
  bool tree_gone() {
    if (!contain_.holds_a_tree()) return true;
    if (!contain_.members_gone(pid_, !status_)) return false;
    if (status_) contain_.tidy_up();
    return true;
  }
  /// Ready (POLLPRI) when the tree changes, or -1: the ladder then backs off instead.
  [[nodiscard]] int tree_change_fd() const noexcept { return contain_.change_fd(); }

  enum class Liveness { running, ended_unreaped, gone };

  /// What Target::tree reaches today: the group while the child (unreaped) still leads the one
  /// its containment gave it, else the child alone — a child that left its group is not refused.
  Target tree_target() const noexcept {
    const bool leads_its_group =
        containment_ == Contain::process_group && !status_ && detail::process_group_of(pid_) == pid_;
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
      result = detail::retry_eintr([&] { return detail::waitid_pid(pid_, &info, options); });
    }
    if (result == -1) return errno == ECHILD ? Liveness::gone : Liveness::running;
    return info.si_pid == 0 ? Liveness::running : Liveness::ended_unreaped;
  }

  /// Records the status; the stdio pipe ends close with it (the lifeline stays with the Child).
  std::optional<ExitStatus> reaped(ExitStatus status) noexcept {
    status_ = status;
    detail::OwnedChildren::instance().remove(pid_);
    contain_.leader_reaped(pid_);
    fds_.stdin_write.reset();
    fds_.stdout_read.reset();
    fds_.stderr_read.reset();
    return status_;
  }

  // What the ladder engine uses (detail::LadderClimb).
  bool ended_unreaped() { return !status_ && peek() == Liveness::ended_unreaped; }
  void climbed() noexcept { climbed_ = true; }

  /// Whether a ladder still has work here: the child is unreaped, or its leader was reaped
  /// without one (try_wait, wait_until) and what is left of its tree was never dealt with.
  [[nodiscard]] bool needs_ladder() const noexcept {
    return !status_ || (contain_.holds_a_tree() && !climbed_ && !contain_.tidied());
  }
  void stamp(std::size_t rung, Clock::duration took) noexcept {
    status_->rung = rung;
    status_->took = took;
  }

  void reap_if_owned() noexcept {
    if (pid_ <= 0 || !needs_ladder()) return;
    try {
      detail::report_ladder_errors(
          detail::climb_ladder(std::vector<Child*>{this}, detail::default_steps(default_target()),
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
  detail::Containment contain_;
  std::optional<ExitStatus> status_;
  bool waitid_pidfd_works_ = true;
  bool climbed_ = false;  // a ladder reaped it and settled its tree as its Kill rung aimed
};

/// Starts `argv` (argv[0] searched in this process's PATH unless it contains a '/') with
/// `options`. A failed exec — missing binary, no permission, bad format, a cwd that cannot be
/// entered — is a std::system_error carrying the errno, with the path and the step in what();
/// never a child that exits 127. Bad options (an invalid Stdio::fd or inherit_fds entry, a cwd
/// that is missing or not a directory, an env entry without '=') throw before any child runs.
/// The child starts with default signal dispositions and an empty signal mask.
[[nodiscard]] inline Child spawn(std::vector<std::string> argv, SpawnOptions options = {}) {
  return detail::spawn_child(std::move(argv), std::move(options), detail::PidfdUse::when_available);
}

namespace detail {

struct ChildAccess {
  static Child make(pid_t pid, ChildFds fds, Contain containment, Containment contain = {}) noexcept {
    return Child(pid, std::move(fds), containment, std::move(contain));
  }
  static bool needs_ladder(const Child& child) noexcept { return child.needs_ladder(); }
};

/// What `options.contain` gives the child: Contain::automatic resolved to cgroup where a leaf
/// can be made, else process_group. Contain::cgroup without a writable cgroup v2 throws here,
/// before anything runs.
inline Contain resolve_containment(const SpawnOptions& options) {
  switch (options.contain) {
    case Contain::automatic:
      return CgroupHome::instance().usable(nullptr) ? Contain::cgroup : Contain::process_group;
    case Contain::none:
      return options.new_process_group ? Contain::process_group : Contain::none;
    default:
      return options.contain;
  }
}

/// Prepares the child's containment in `plan` (a leaf to be born in, or the fallback's group,
/// subreaper and marker) and, with die_with_parent, the guardian that kills it if we die.
inline Containment prepare_containment(Contain containment, const SpawnOptions& options, ExecPlan& plan) {
  const bool fallback = containment == Contain::process_group && options.contain != Contain::none;
  // The guardian is double-forked to be init's child; started once this process is a subreaper
  // (a fallback child came first), it is adopted by us instead, which changes nothing it does.
  if (options.die_with_parent) Guardian::instance().ensure_started();
  if (containment == Contain::cgroup) {
    CgroupLeaf leaf = CgroupHome::instance().make_leaf(options.die_with_parent);
    if (options.die_with_parent) Guardian::instance().guard_cgroup_subtree(CgroupHome::instance().subtree());
    plan.cgroup_fd = leaf.directory_fd();
    plan.cgroup_procs = leaf.path() + "/cgroup.procs";
    plan.new_process_group = options.new_process_group;
    return Containment(ContainKind::cgroup, std::move(leaf), {});
  }
  plan.new_process_group = containment == Contain::process_group;
  if (!fallback) return Containment();
  (void)become_child_subreaper();
  static std::atomic<std::size_t> serial{0};
  std::string marker = tree_marker(current_pid(), ++serial, options.die_with_parent);
  plan.environment.push_back(marker);
  return Containment(ContainKind::process_group, CgroupLeaf(), std::move(marker));
}

inline Child spawn_child(std::vector<std::string> argv, SpawnOptions options, PidfdUse use) {
  if (argv.empty() || argv[0].empty()) throw std::invalid_argument("teardown::spawn: argv[0] is empty");
  const std::string path = search_path();
  const std::string program = program_for_message(argv[0], path);
  const Contain containment = resolve_containment(options);

  ExecPlan plan;
  plan.candidates = exec_candidates(argv[0], path);
  plan.arguments = std::move(argv);
  plan.environment =
      child_environment(options.env ? &*options.env : nullptr, options.env_add, options.lifeline);
  plan.inherited_fds = checked_inherit_fds(options.inherit_fds, program);
  plan.cwd = checked_cwd(options.cwd, program);
  plan.stdio = plan_stdio({options.in.request(), options.out.request(), options.err.request()}, program);
  Containment contain = prepare_containment(containment, options, plan);
  ChildFds fds;
  if (options.lifeline) fds.lifeline = plan_lifeline(plan);
  const UniqueFd error_read = plan_error_pipe(plan);

  int clone_pidfd = -1;
  const pid_t pid = start_process(exec_args(plan), &clone_pidfd);
  if (pid < 0)
    throw std::system_error(errno, std::generic_category(), "teardown::spawn: fork for " + program);
  close_child_ends(plan);
  fds.pidfd.reset(clone_pidfd);
  if (use == PidfdUse::never) fds.pidfd.reset();
  // Right after fork, before anyone could reap it: the pid cannot have been recycled.
  if (use == PidfdUse::when_available && !fds.pidfd) {
    // ENOSYS (old kernel), EMFILE...: pid-based waiting is still safe, because nothing in this
    // process reaps children it does not own (no SIGCHLD handler, no waitpid(-1)).
    fds.pidfd.reset(pidfd_open(pid));
  }
  if (const auto failure = read_exec_failure(error_read.get())) {
    siginfo_t ignored{};
    (void)retry_eintr([&] { return waitid_pid(pid, &ignored, WEXITED); });
    throw std::system_error(
        failure->error, std::generic_category(),
        "teardown::spawn: cannot start " + program + " (step: " + exec_step_text(*failure, plan) + ")");
  }
  fds.stdin_write = std::move(plan.stdio.parent_ends[0]);
  fds.stdout_read = std::move(plan.stdio.parent_ends[1]);
  fds.stderr_read = std::move(plan.stdio.parent_ends[2]);
  OwnedChildren::instance().add(pid);
  if (contain.kind() == ContainKind::process_group) contain.started(pid);
  if (options.die_with_parent && fds.pidfd) {  // the guardian gets its own copy of the pidfd
    contain.watched_by_guardian(
        Guardian::instance().watch(fds.pidfd.get(), plan.new_process_group ? pid : 0));
  }
  return ChildAccess::make(pid, std::move(fds), containment, std::move(contain));
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
  const int result = retry_eintr([&] { return waitid_pid(pid, &info, WEXITED | WNOHANG | WNOWAIT); });
  if (result == -1) {
    throw std::system_error(
        errno, std::generic_category(),
        "teardown::Child::adopt: pid " + std::to_string(pid) + " is not a child of this process");
  }
  OwnedChildren::instance().add(pid);
  return ChildAccess::make(pid, std::move(fds), Contain::none);
}

}  // namespace detail

}  // namespace teardown
