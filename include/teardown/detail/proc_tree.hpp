// teardown/detail/proc_tree.hpp — a child's process tree without cgroups, read from /proc.
//
// The fallback containment (Contain::process_group, and Contain::automatic without a writable
// cgroup v2): the child leads its own group, this process is a child subreaper
// (PR_SET_CHILD_SUBREAPER), and the child's environment carries a marker
// `TEARDOWN_TREE=<our pid>.<serial>`. A daemon that setsid()s leaves the group, but when its
// parent exits it is reparented to us, and it still carries the marker. The tree of a child is
// then: its group, every descendant of the child or of a group member (by ppid, in one snapshot
// of /proc), and every process reparented to us whose environment carries the child's marker.
// Each member is signalled through a pidfd verified after it was opened (same start time), so a
// pid recycled since the snapshot is never signalled.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cgroup.hpp"
#include "fd.hpp"
#include "process.hpp"

namespace teardown::detail {

inline constexpr std::string_view tree_marker_variable = "TEARDOWN_TREE";

/// The marker of the `serial`th fallback-contained child of `supervisor`: "TEARDOWN_TREE=<pid>.<n>",
/// with a 'd' before n when the tree must die with its supervisor (the guardian kills by prefix).
inline std::string tree_marker(pid_t supervisor, std::size_t serial, bool die_with_parent) {
  return std::string(tree_marker_variable) + "=" + std::to_string(supervisor) + "." +
         (die_with_parent ? "d" : "") + std::to_string(serial);
}

/// What every die_with_parent marker of `supervisor` starts with.
inline std::string die_with_parent_marker_prefix(pid_t supervisor) {
  return std::string(tree_marker_variable) + "=" + std::to_string(supervisor) + ".d";
}

/// One line of /proc/<pid>/stat, the fields a tree needs.
struct ProcEntry {
  pid_t pid = 0;
  pid_t parent = 0;
  pid_t process_group = 0;
  pid_t session = 0;
  unsigned long long start_time = 0;  // clock ticks after boot: with the pid, a process's identity
  // Where the code ends and where the environment lies in its memory. An exec sets up the new
  // memory's environment first and its code's end last: until then end_code is 0 (also for a
  // process with no memory left, on its way out), and 1 where we may not look.
  unsigned long long end_code = 0;
  unsigned long long env_start = 0;
  unsigned long long env_end = 0;
  char state = '?';

  /// Whether its memory is set up: no exec is half-way through, and env_start/env_end hold.
  [[nodiscard]] bool memory_set_up() const noexcept { return end_code > 1; }
};

/// Parses /proc/<pid>/stat's text. The command name may hold spaces and parentheses: the fields
/// start after the last ')'.
inline std::optional<ProcEntry> parse_proc_stat(std::string_view text) {
  const auto close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) return std::nullopt;
  ProcEntry entry;
  std::size_t field = 3;  // the state is field 3 (1-based)
  unsigned long long value = 0;
  bool in_value = false;
  const auto commit = [&](std::size_t index) {
    switch (index) {
      case 4:
        entry.parent = static_cast<pid_t>(value);
        break;
      case 5:
        entry.process_group = static_cast<pid_t>(value);
        break;
      case 6:
        entry.session = static_cast<pid_t>(value);
        break;
      case 22:
        entry.start_time = value;
        break;
      case 27:
        entry.end_code = value;
        break;
      case 50:
        entry.env_start = value;
        break;
      case 51:
        entry.env_end = value;
        break;
      default:
        break;
    }
  };
  entry.state = text[close + 2];
  for (std::size_t i = close + 4; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      value = value * 10 + static_cast<unsigned long long>(c - '0');
      in_value = true;
    } else if (c == ' ' || c == '\n') {
      ++field;
      if (in_value) commit(field);
      value = 0;
      in_value = false;
    } else if (c != '-') {
      return std::nullopt;
    }
  }
  if (in_value) commit(field + 1);
  const std::string_view pid_text = text.substr(0, text.find(' '));
  for (const char c : pid_text) {
    if (c < '0' || c > '9') return std::nullopt;
    entry.pid = entry.pid * 10 + (c - '0');
  }
  return entry;
}

inline std::optional<ProcEntry> read_proc_stat(pid_t pid) {
  return parse_proc_stat(read_text_file("/proc/" + std::to_string(pid) + "/stat"));
}

/// Every process in /proc now (those that vanish while we read are skipped).
inline std::vector<ProcEntry> list_processes() {
  std::vector<ProcEntry> processes;
  DIR* proc = ::opendir("/proc");
  if (!proc) return processes;
  while (const dirent* entry = ::readdir(proc)) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    if (auto stat = read_proc_stat(static_cast<pid_t>(std::atol(name)))) processes.push_back(*stat);
  }
  ::closedir(proc);
  return processes;
}

/// Whether `pid`'s initial environment holds exactly `entry` ("K=V"). In the middle of an exec
/// /proc/<pid>/environ reads empty, or short: the new memory's environment is not set up yet.
/// /proc/<pid>/stat tells (ProcEntry::memory_set_up, read after the environment): such a read is
/// tried again, backing off, for up to 200 ms (an exec preempted on a loaded machine takes
/// milliseconds), as is one of a process on its way out, until it is a zombie. An environment that
/// really is empty answers at once, as does one we may not read.
inline bool environment_holds(pid_t pid, std::string_view entry) {
  const std::string path = "/proc/" + std::to_string(pid) + "/environ";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  auto backoff = std::chrono::microseconds(20);
  std::string text;
  for (;;) {
    const UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    // ESRCH: no memory, so on its way out (or a zombie). It is waited for below until it is a
    // zombie, so that the scan that asked finds that zombie. Anything else: not ours to read.
    if (!file && errno != ESRCH) return false;
    text = file ? read_to_end(file.get()) : std::string();
    const auto state = read_proc_stat(pid);
    if (!state || state->state == 'Z') return false;  // gone, or a zombie: its environment went with it
    const bool set_up = state->memory_set_up();
    // Set up, and what was read is that environment (an exec that ended between the two reads
    // has another: read again).
    if (set_up && text.size() == state->env_end - state->env_start) break;
    if (std::chrono::steady_clock::now() >= give_up) {
      if (set_up) break;
      return false;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(2'000));
  }
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    if (std::string_view(text).substr(start, end - start) == entry) return true;
    start = end + 1;
  }
  return false;
}

/// The members of a tree in a snapshot: every process but us and `leader` that is in the
/// leader's group (only while `leader_unreaped`: once reaped, its pid, and so its group id, may
/// name a stranger's group), is one of `roots` (processes known to be members), descends (by
/// ppid) from a root or another member, or was reparented to us and carries `marker`
/// ("TEARDOWN_TREE=...", "" for none).
inline std::vector<ProcEntry> tree_members(const std::vector<pid_t>& roots, pid_t leader,
                                           bool leader_unreaped, std::string_view marker,
                                           const std::vector<ProcEntry>& processes) {
  const pid_t self = ::getpid();
  std::vector<pid_t> parents = roots;
  std::vector<ProcEntry> members;
  const auto is_parent = [&](pid_t pid) {
    return std::find(parents.begin(), parents.end(), pid) != parents.end();
  };
  const auto is_member = [&](pid_t pid) {
    return std::any_of(members.begin(), members.end(), [&](const ProcEntry& m) { return m.pid == pid; });
  };
  for (const auto& process : processes) {
    if (process.pid == leader || process.pid == self) continue;
    const bool known = std::find(roots.begin(), roots.end(), process.pid) != roots.end();
    const bool in_group = leader_unreaped && process.process_group == leader;
    const bool adopted_marked =
        process.parent == self && !marker.empty() && environment_holds(process.pid, marker);
    if (known || in_group || adopted_marked) {
      members.push_back(process);
      parents.push_back(process.pid);
    }
  }
  // Descendants, by ppid: repeat until no new member (a snapshot is finite).
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& process : processes) {
      if (process.pid == leader || process.pid == self || is_member(process.pid)) continue;
      if (is_parent(process.parent)) {
        members.push_back(process);
        parents.push_back(process.pid);
        grew = true;
      }
    }
  }
  return members;
}

/// A pidfd for `member`, verified to be the very process of the snapshot (same start time);
/// empty when it has gone or its pid now names another process.
inline UniqueFd verified_pidfd(const ProcEntry& member) {
  UniqueFd pidfd(pidfd_open(member.pid));
  if (!pidfd) return pidfd;
  const auto now = read_proc_stat(member.pid);
  if (!now || now->start_time != member.start_time) pidfd.reset();
  return pidfd;
}

/// Reaps `zombie`, a child of ours in the snapshot, through a pidfd verified to be it; true when
/// it was reaped.
inline bool reap_verified(const ProcEntry& zombie) {
  UniqueFd pidfd = verified_pidfd(zombie);
  siginfo_t info{};
  return pidfd && retry_eintr([&] { return waitid_pidfd(pidfd.get(), &info, WEXITED | WNOHANG); }) == 0;
}

/// Makes this process a child subreaper (once): orphaned descendants are reparented to us, not
/// to init, so a daemonized grandchild stays within reach. False where the kernel has no such
/// thing (then only the group is contained).
inline bool become_child_subreaper() noexcept {
#if defined(__linux__) && defined(PR_SET_CHILD_SUBREAPER)
  // Once per process: a forked copy is no subreaper (fork does not inherit it), so the pid that
  // set it is remembered, not merely that it was set.
  static std::atomic<pid_t> done_for{0};
  const pid_t self = ::getpid();
  if (done_for.load(std::memory_order_acquire) == self) return true;
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return false;
  done_for.store(self, std::memory_order_release);
  return true;
#else
  return false;
#endif
}

/// The pids of every Child this process owns and has not reaped: an adopted orphan is never one
/// of them, so a scan never takes the status of a Child that belongs to someone else.
class OwnedChildren {
 public:
  static OwnedChildren& instance() {
    static OwnedChildren owned;
    return owned;
  }
  void add(pid_t pid) {
    std::lock_guard lock(mutex_);
    pids_.push_back(pid);
  }
  void remove(pid_t pid) noexcept {
    std::lock_guard lock(mutex_);
    const auto found = std::find(pids_.begin(), pids_.end(), pid);
    if (found != pids_.end()) {
      *found = pids_.back();
      pids_.pop_back();
    }
  }
  bool contains(pid_t pid) {
    std::lock_guard lock(mutex_);
    return std::find(pids_.begin(), pids_.end(), pid) != pids_.end();
  }

 private:
  std::mutex mutex_;
  std::vector<pid_t> pids_;
};

/// Whether orphans are reparented to this process: it is PID 1 (of its namespace) or a subreaper.
inline bool adopts_orphans() noexcept {
  if (::getpid() == 1) return true;
#if defined(__linux__) && defined(PR_GET_CHILD_SUBREAPER)
  int subreaper = 0;
  return ::prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper != 0;
#else
  return false;
#endif
}

/// Whether some child of ours has ended and waits to be reaped (WNOWAIT: nothing is taken). One
/// system call, so that the /proc scans for adopted zombies run only when there may be one.
inline bool some_child_is_a_zombie() noexcept {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
}

/// Reaps the members of `leaf` that were reparented to us (we are PID 1 or a subreaper) and
/// ended as our zombies, each through its own verified pidfd, never by waitpid(-1). A zombie
/// still names its cgroup in /proc/<pid>/cgroup.
///
/// `settle`, once the leaf is empty: the kernel takes a process out of its cgroup (`populated 0`)
/// an instant before it becomes a zombie and hands its children to us, so a member found still on
/// its way out is waited for, up to `settle`. Zero (the leaf may still have live members): only
/// the zombies already there.
inline std::size_t reap_adopted_zombies(const CgroupLeaf& leaf, Clock::duration settle = {}) {
  if (!adopts_orphans()) return 0;
  if (settle == Clock::duration::zero() && !some_child_is_a_zombie()) return 0;
  const pid_t self = ::getpid();
  const auto give_up = Clock::now() + settle;
  auto backoff = std::chrono::microseconds(50);
  std::size_t reaped = 0;
  for (;;) {
    bool exiting = false;
    for (const auto& process : list_processes()) {
      if (process.parent != self || OwnedChildren::instance().contains(process.pid)) continue;
      if (!leaf.holds(process.pid)) continue;
      if (process.state == 'Z') {
        reaped += reap_verified(process) ? 1 : 0;
      } else {
        exiting = true;  // out of the (empty) leaf, not yet a zombie
      }
    }
    if (!exiting || Clock::now() >= give_up) return reaped;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(5'000));
  }
}

}  // namespace teardown::detail
