// teardown/detail/contain.hpp — what a Child holds of its containment, and the three things a
// reap asks of it: signal the whole tree, is the tree gone, and tidy up once it is.
//
// One Containment per Child. `cgroup`: the child's leaf. `process_group` (the fallback): the
// child leads group `leader`; its environment marker finds the members that setsid()'d and were
// reparented to us (we are a child subreaper); members seen by a scan are kept as verified
// pidfds, so that once the leader is reaped (and its pid may be recycled) the tree is still
// found from processes known to be ours. `guardian_id`: the guardian watches this child
// (die_with_parent), and must forget it before it is reaped.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cgroup.hpp"
#include "fd.hpp"
#include "guardian.hpp"
#include "proc_tree.hpp"
#include "process.hpp"

namespace teardown::detail {

enum class ContainKind { none, process_group, cgroup };

class Containment {
 public:
  Containment() = default;
  Containment(ContainKind kind, CgroupLeaf leaf, std::string marker)
      : kind_(kind), leaf_(std::move(leaf)), marker_(std::move(marker)) {}

  /// The leader's start time (fallback): zombies that ended as ours and started later, in a
  /// session of their own, are this era's daemons, reaped by the scan.
  void started(pid_t leader) {
    if (const auto entry = read_proc_stat(leader)) leader_start_ = entry->start_time;
  }
  Containment(Containment&& other) noexcept
      : kind_(other.kind_),
        leaf_(std::move(other.leaf_)),
        marker_(std::move(other.marker_)),
        guardian_id_(std::exchange(other.guardian_id_, 0)),
        leader_start_(other.leader_start_),
        tidied_(other.tidied_),
        known_(std::move(other.known_)) {}
  Containment& operator=(Containment&& other) noexcept {
    if (this != &other) {
      forget_in_guardian();
      kind_ = other.kind_;
      leaf_ = std::move(other.leaf_);
      marker_ = std::move(other.marker_);
      guardian_id_ = std::exchange(other.guardian_id_, 0);
      leader_start_ = other.leader_start_;
      tidied_ = other.tidied_;
      known_ = std::move(other.known_);
    }
    return *this;
  }
  ~Containment() { forget_in_guardian(); }

  [[nodiscard]] ContainKind kind() const noexcept { return kind_; }
  [[nodiscard]] bool holds_a_tree() const noexcept { return kind_ != ContainKind::none; }
  /// Whether the tree was found gone after the leader's reap and tidied up: nothing can join it.
  [[nodiscard]] bool tidied() const noexcept { return tidied_; }
  [[nodiscard]] const std::string& marker() const noexcept { return marker_; }
  [[nodiscard]] const CgroupLeaf& leaf() const noexcept { return leaf_; }

  void watched_by_guardian(std::uint32_t id) noexcept { guardian_id_ = id; }
  [[nodiscard]] bool watched() const noexcept { return guardian_id_ != 0; }

  /// Before the leader is reaped: from then on its pid may name someone else.
  void forget_in_guardian() noexcept {
    if (guardian_id_ == 0) return;
    Guardian::instance().forget(guardian_id_);
    guardian_id_ = 0;
  }

  /// Sends `signo` to every process of the tree but the leader (the caller signals it through
  /// its own pidfd). `leader_unreaped`: the leader's pid is still its own. Returns how many
  /// members were signalled.
  std::size_t signal_members(int signo, pid_t leader, bool leader_unreaped) {
    if (kind_ == ContainKind::cgroup) {
      if (signo == SIGKILL) return leaf_.kill() == 0 ? 1 : 0;
      return leaf_.signal_members(signo, leader);  // the leader is signalled once, by the caller
    }
    if (kind_ != ContainKind::process_group) return 0;
    std::size_t signalled = 0;
    // While the leader is unreaped its pid, hence its group id, is ours: kill(-group) is safe.
    // After its reap the group's members are still found by the scan (pgid, verified pidfds).
    if (leader_unreaped && ::kill(-leader, signo) == 0) ++signalled;
    for (auto& member : scan(leader, leader_unreaped)) {
      if (pidfd_send_signal(member.get(), signo) == 0) ++signalled;
    }
    return signalled;
  }

  /// Whether no process of the tree but the leader is left (cgroup: `populated 0`). Reaps the
  /// members that ended as our zombies (reparented to us) on the way.
  [[nodiscard]] bool members_gone(pid_t leader, bool leader_unreaped) {
    if (kind_ == ContainKind::cgroup) return !leaf_.populated();
    if (kind_ != ContainKind::process_group) return true;
    return scan(leader, leader_unreaped).empty();
  }

  /// An fd that becomes ready (POLLPRI) when the tree changes, or -1 (then: a bounded backoff).
  [[nodiscard]] int change_fd() const noexcept {
    return kind_ == ContainKind::cgroup ? leaf_.events_fd() : -1;
  }

  /// Right after the leader's reap: the members already ended as our zombies (reparented to us,
  /// which we are when we are PID 1 or a subreaper) are reaped, whatever the ladder aimed at —
  /// a leader that exec'd leaves its own unreaped children behind it.
  void leader_reaped(pid_t leader) noexcept {
    try {
      if (kind_ == ContainKind::cgroup && leaf_.exists()) {
        (void)reap_adopted_zombies(leaf_);
      } else if (kind_ == ContainKind::process_group) {
        reap_orphaned_zombies_now(leader);
      }
    } catch (...) {
      // Out of memory listing /proc: a later scan, or the tree's reap, takes them.
    }
  }

  /// Once the whole tree is gone: adopted zombies reaped, the leaf removed.
  void tidy_up() noexcept {
    try {
      if (kind_ == ContainKind::cgroup && leaf_.exists()) {
        // The leaf is empty: a member on its way out becomes our zombie within microseconds.
        (void)reap_adopted_zombies(leaf_, std::chrono::seconds(1));
        (void)leaf_.remove();
      }
      known_.clear();
      tidied_ = true;
    } catch (...) {
      // Out of memory while listing /proc: the leaf stays for the guardian or the next reap.
    }
  }

 private:
  // Live members other than the leader, each a pidfd verified after it was opened. Every member
  // seen (alive or a zombie) is remembered with its pidfd: once the leader is reaped its pid may
  // be recycled, and a zombie's environment is gone, so only these still tie a process to the
  // tree. Remembered zombies whose parent is (now) us are reaped through their own pidfd.
  std::vector<UniqueFd> scan(pid_t leader, bool leader_unreaped) {
    const pid_t self = ::getpid();
    std::vector<pid_t> roots;
    if (leader_unreaped) roots.push_back(leader);
    std::vector<Known> kept;
    for (auto& known : known_) {
      pollfd exited{known.pidfd.get(), POLLIN, 0};
      if (::poll(&exited, 1, 0) == 0) {
        roots.push_back(known.entry.pid);
        continue;
      }
      const auto now = read_proc_stat(known.entry.pid);
      if (!now || now->start_time != known.entry.start_time) continue;  // reaped, by us or its parent
      if (now->parent == self) {
        siginfo_t info{};
        (void)retry_eintr([&] { return waitid_pidfd(known.pidfd.get(), &info, WEXITED | WNOHANG); });
      } else {
        kept.push_back(std::move(known));  // someone else's zombie for now; maybe ours later
      }
    }
    std::vector<UniqueFd> live;
    const auto processes = list_processes();
    reap_orphaned_zombies(leader, processes);
    for (const auto& member : tree_members(roots, leader, leader_unreaped, marker_, processes)) {
      if (std::any_of(kept.begin(), kept.end(), [&](const Known& k) { return k.entry.pid == member.pid; }))
        continue;
      UniqueFd pidfd = verified_pidfd(member);
      if (!pidfd) continue;
      if (member.state == 'Z' && member.parent == self) {
        siginfo_t info{};
        (void)retry_eintr([&] { return waitid_pidfd(pidfd.get(), &info, WEXITED | WNOHANG); });
        continue;
      }
      if (member.state != 'Z') {
        UniqueFd copy(::fcntl(pidfd.get(), F_DUPFD_CLOEXEC, 3));
        if (copy) live.push_back(std::move(copy));
      }
      kept.push_back(Known{member, std::move(pidfd)});
    }
    known_ = std::move(kept);
    // A member seen alive in the snapshot that ended while the scan looked at it (its environment
    // gone before its marker was read) is a zombie now: before the tree is called gone, the
    // orphaned zombies are looked for once more.
    if (live.empty()) reap_orphaned_zombies_now(leader);
    return live;
  }

  struct Known {
    ProcEntry entry;
    UniqueFd pidfd;
  };

  // An orphan of the tree that ended before any scan saw it alive left no trace but its zombie,
  // reparented to us, and its environment went with it, so the marker cannot say whose it was.
  // Two kinds are reaped (through verified pidfds), each started after our leader and no Child
  // of ours: a session leader (a daemon born and dead between two scans), and a member of the
  // leader's group (which ended after the leader's reap). Reaping such a zombie signals nobody:
  // at worst it takes the status of an orphan adopted through the subreaper from a later tree,
  // whose own scan would have taken it the same way.
  void reap_orphaned_zombies(pid_t leader, const std::vector<ProcEntry>& processes) {
    const pid_t self = ::getpid();
    for (const auto& process : processes) {
      const bool daemon_or_group = process.session == process.pid || process.process_group == leader;
      if (process.state != 'Z' || process.parent != self || !daemon_or_group ||
          process.start_time < leader_start_ || OwnedChildren::instance().contains(process.pid)) {
        continue;
      }
      (void)reap_verified(process);
    }
  }

  /// The same on a fresh snapshot, listed only when some child of ours is a zombie.
  void reap_orphaned_zombies_now(pid_t leader) {
    if (some_child_is_a_zombie()) reap_orphaned_zombies(leader, list_processes());
  }

  ContainKind kind_ = ContainKind::none;
  CgroupLeaf leaf_;
  std::string marker_;
  std::uint32_t guardian_id_ = 0;
  unsigned long long leader_start_ = 0;
  bool tidied_ = false;
  std::vector<Known> known_;
};

}  // namespace teardown::detail
