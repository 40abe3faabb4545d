// teardown/detail/cgroup.hpp — cgroup v2 leaves for Contain::cgroup, one small function each.
//
// This process's own cgroup is found from /proc/self/cgroup and /proc/self/mountinfo (never a
// hard-coded path). Beneath it lives one per-process subtree,
//   <own cgroup>/teardown-<pid>/die-with-parent/<n>   children spawned with die_with_parent
//   <own cgroup>/teardown-<pid>/live-on/<n>           the others
// so a single write to `die-with-parent/cgroup.kill` ends every tree that must die with us (the
// guardian does that when this process dies). Each child gets a leaf `<n>`, entered at clone
// time (CLONE_INTO_CGROUP), signalled, killed (`cgroup.kill`, Linux 5.14), waited on until
// `cgroup.events` says `populated 0` (an event: POLLPRI), and removed.
//
// The subtree is held, for the life of the process, by one close-on-exec descriptor with an
// exclusive flock(2): "in use". A process that ended without tidying up (by _exit, or killed with
// no guardian to run) leaves its subtree unlocked; the first contained spawn of any later process
// beneath the same cgroup removes such subtrees once no process is left in them.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../core.hpp"
#include "fd.hpp"
#include "process.hpp"

namespace teardown::detail {

/// The directory of this process's cgroup v2, or why there is none.
struct CgroupDiscovery {
  std::string directory;  // empty when not found
  std::string why;        // what was missing, for the error message
};

/// Undoes mountinfo's octal escapes (a space is "\040").
inline std::string mountinfo_unescape(std::string_view field) {
  std::string text;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3' &&
        field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' && field[i + 3] <= '7') {
      text += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
    } else {
      text += field[i];
    }
  }
  return text;
}

inline std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start < line.size()) {
    while (start < line.size() && line[start] == ' ') ++start;
    if (start >= line.size()) break;
    std::size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    fields.push_back(line.substr(start, end - start));
    start = end;
  }
  return fields;
}

/// From the texts of /proc/self/cgroup and /proc/self/mountinfo: the directory of our cgroup v2.
/// Pure, so every odd layout (hybrid hierarchies, a container's bind mount whose root is not
/// "/", no cgroup2 at all) is testable and fuzzable.
inline CgroupDiscovery discover_cgroup(std::string_view proc_self_cgroup, std::string_view mountinfo) {
  std::string own;
  bool found_own = false;
  for (std::size_t start = 0; start < proc_self_cgroup.size();) {
    std::size_t end = proc_self_cgroup.find('\n', start);
    if (end == std::string_view::npos) end = proc_self_cgroup.size();
    const std::string_view line = proc_self_cgroup.substr(start, end - start);
    if (line.substr(0, 3) == "0::") {
      own = std::string(line.substr(3));
      found_own = true;
    }
    start = end + 1;
  }
  if (!found_own || own.empty() || own.front() != '/') {
    return {{}, "/proc/self/cgroup has no cgroup v2 entry (\"0::/...\")"};
  }
  for (std::size_t start = 0; start < mountinfo.size();) {
    std::size_t end = mountinfo.find('\n', start);
    if (end == std::string_view::npos) end = mountinfo.size();
    const auto fields = split_fields(mountinfo.substr(start, end - start));
    start = end + 1;
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    std::size_t separator = 6;
    while (separator < fields.size() && fields[separator] != "-") ++separator;
    if (fields.size() < 5 || separator + 1 >= fields.size() || fields[separator + 1] != "cgroup2") continue;
    const std::string root = mountinfo_unescape(fields[3]);
    const std::string mount_point = mountinfo_unescape(fields[4]);
    if (root == "/") return {own == "/" ? mount_point : mount_point + own, {}};
    if (own == root) return {mount_point, {}};
    if (own.compare(0, root.size(), root) == 0 && own[root.size()] == '/') {
      return {mount_point + own.substr(root.size()), {}};
    }
  }
  return {{}, "no cgroup2 mount in /proc/self/mountinfo holds this process's cgroup " + own};
}

/// What is left to read from `fd`, up to its end or an error.
inline std::string read_to_end(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = retry_eintr([&] { return ::read(fd, buffer, sizeof buffer); });
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  return text;
}

/// A small file's whole text (procfs, cgroupfs); empty if it cannot be read.
inline std::string read_text_file(const std::string& path) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return file ? read_to_end(file.get()) : std::string();
}

/// Writes `text` to a cgroup control file; 0, or -1 with errno.
inline int write_control(const std::string& path, std::string_view text) noexcept {
  const int file = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (file < 0) return -1;
  const ssize_t wrote = retry_eintr([&] { return ::write(file, text.data(), text.size()); });
  const int error = errno;
  ::close(file);
  errno = error;
  return wrote == static_cast<ssize_t>(text.size()) ? 0 : -1;
}

/// Where this process's cgroup v2 directory is, read now.
inline CgroupDiscovery discover_own_cgroup() {
  return discover_cgroup(read_text_file("/proc/self/cgroup"), read_text_file("/proc/self/mountinfo"));
}

// A raw clone bypasses the fork interceptor ThreadSanitizer relies on to leave its runtime usable
// in the child; under TSan a contained child is forked and moves itself instead.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool running_under_thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool running_under_thread_sanitizer = true;
#else
inline constexpr bool running_under_thread_sanitizer = false;
#endif
#else
inline constexpr bool running_under_thread_sanitizer = false;
#endif

/// clone3(CLONE_INTO_CGROUP | CLONE_PIDFD): like fork, but the child is born inside the cgroup
/// behind `cgroup_fd` (no window in which it runs outside, no write to cgroup.procs, which costs
/// far more than the clone on recent kernels), and `*pidfd` is its pidfd from the first instant.
/// Returns the pid in the parent, 0 in the child, -1 with errno (ENOSYS before Linux 5.7, E2BIG
/// or EINVAL where the kernel lacks CLONE_INTO_CGROUP): the caller then forks and moves the child
/// itself.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline pid_t clone_into_cgroup(int cgroup_fd, int* pidfd) noexcept {
#if defined(__linux__) && defined(SYS_clone3)
  struct {
    std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
  } args{};
  constexpr std::uint64_t clone_pidfd = 0x00001000ULL;         // CLONE_PIDFD
  constexpr std::uint64_t clone_into_cgroup = 0x200000000ULL;  // CLONE_INTO_CGROUP
  args.flags = clone_pidfd | clone_into_cgroup;
  args.pidfd = reinterpret_cast<std::uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
#else
  (void)cgroup_fd;
  (void)pidfd;
  errno = ENOSYS;
  return -1;
#endif
}

[[noreturn]] inline void throw_cgroup_error(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), "teardown::spawn: Contain::cgroup: " + what);
}

/// Whether the cgroup whose `cgroup.events` is open as `events_fd` holds a process, in it or
/// beneath it (`populated 1`). Read through the fd, so a later poll waits for the next change.
inline bool events_say_populated(int events_fd) {
  char buffer[256];
  const ssize_t got = retry_eintr([&] { return ::pread(events_fd, buffer, sizeof buffer - 1, 0); });
  if (got <= 0) return false;
  buffer[got] = '\0';
  const std::string_view text(buffer, static_cast<std::size_t>(got));
  return text.find("populated 1") != std::string_view::npos;
}

/// Waits (poll on `events_fd`, the `cgroup.events` of `directory`, for POLLPRI) until the cgroup
/// is empty or `deadline`; true if it is. An event, not a poll loop.
inline bool wait_cgroup_empty(int events_fd, const std::string& directory, Deadline deadline) {
  for (;;) {
    if (!events_say_populated(events_fd)) return true;
    if (deadline.expired()) return false;
    pollfd change{events_fd, POLLPRI, 0};
    if (poll_until(&change, 1, deadline.time_point()) == -1) {
      throw std::system_error(errno, std::generic_category(),
                              "teardown: poll on " + directory + "/cgroup.events");
    }
  }
}

/// One child's cgroup: its directory (the clone target), its `cgroup.events`, and what it holds.
/// Removed (rmdir) when destroyed; the owner empties it first (`kill` + `wait_empty`).
class CgroupLeaf {
 public:
  CgroupLeaf() = default;

  /// Creates `<parent>/<name>`; std::system_error naming the path when it cannot.
  static CgroupLeaf create(const std::string& parent, const std::string& name) {
    CgroupLeaf leaf;
    leaf.path_ = parent + "/" + name;
    if (::mkdir(leaf.path_.c_str(), 0755) != 0) throw_cgroup_error(errno, "cannot create " + leaf.path_);
    leaf.directory_.reset(::open(leaf.path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    leaf.events_.reset(::open((leaf.path_ + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    if (!leaf.directory_ || !leaf.events_) {
      const int error = errno;
      (void)::rmdir(leaf.path_.c_str());
      throw_cgroup_error(error, "cannot open " + leaf.path_ + " or its cgroup.events");
    }
    return leaf;
  }

  CgroupLeaf(CgroupLeaf&& other) noexcept
      : path_(std::exchange(other.path_, std::string())),
        directory_(std::move(other.directory_)),
        events_(std::move(other.events_)) {}
  CgroupLeaf& operator=(CgroupLeaf&& other) noexcept {
    if (this != &other) {
      remove();
      path_ = std::exchange(other.path_, std::string());
      directory_ = std::move(other.directory_);
      events_ = std::move(other.events_);
    }
    return *this;
  }
  ~CgroupLeaf() { remove(); }

  [[nodiscard]] bool exists() const noexcept { return directory_.valid(); }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// The directory fd clone3 takes for CLONE_INTO_CGROUP.
  [[nodiscard]] int directory_fd() const noexcept { return directory_.get(); }
  /// `cgroup.events`: POLLPRI when it changes (populated, frozen).
  [[nodiscard]] int events_fd() const noexcept { return events_.get(); }

  /// Whether any process is in the leaf (`populated 1`). Zombies do not count: a process leaves
  /// its cgroup when it exits, not when it is reaped.
  [[nodiscard]] bool populated() const { return events_say_populated(events_.get()); }

  /// Waits (poll on `cgroup.events`, POLLPRI) until the leaf is empty or `deadline`.
  [[nodiscard]] bool wait_empty(Deadline deadline) const {
    return wait_cgroup_empty(events_.get(), path_, deadline);
  }

  /// The pids in the leaf now (`cgroup.procs`).
  [[nodiscard]] std::vector<pid_t> members() const { return members_of(path_); }

  /// The pids in the cgroup at `directory` now (its own `cgroup.procs`, not those beneath it).
  [[nodiscard]] static std::vector<pid_t> members_of(const std::string& directory) {
    std::vector<pid_t> pids;
    const std::string text = read_text_file(directory + "/cgroup.procs");
    long value = 0;
    bool in_number = false;
    for (const char c : text) {
      if (c >= '0' && c <= '9') {
        value = value * 10 + (c - '0');
        in_number = true;
      } else {
        if (in_number) pids.push_back(static_cast<pid_t>(value));
        value = 0;
        in_number = false;
      }
    }
    if (in_number) pids.push_back(static_cast<pid_t>(value));
    return pids;
  }

  /// Sends `signo` to every process in the leaf but `except`, each through a pidfd verified to belong to this
  /// leaf after it was opened (a pid that exited and was recycled meanwhile is elsewhere, and is
  /// skipped). Returns how many were signalled.
  std::size_t signal_members(int signo, pid_t except = 0) const {
    std::size_t signalled = 0;
    for (const pid_t pid : members()) {
      if (pid == except) continue;
      UniqueFd pidfd(pidfd_open(pid));
      if (pidfd) {
        if (!holds(pid)) continue;
        if (pidfd_send_signal(pidfd.get(), signo) == 0) ++signalled;
      } else if (errno == ENOSYS) {
        // No pidfds (Linux < 5.3): cgroup.procs was read an instant ago; the best this kernel offers.
        if (::kill(pid, signo) == 0) ++signalled;
      }
    }
    return signalled;
  }

  /// Whether /proc/<pid>/cgroup names this leaf. A zombie still names the cgroup it died in.
  [[nodiscard]] bool holds(pid_t pid) const {
    const std::string membership = read_text_file("/proc/" + std::to_string(pid) + "/cgroup");
    const auto line = membership.find("0::");
    if (line == std::string::npos) return false;
    auto end = membership.find('\n', line);
    if (end == std::string::npos) end = membership.size();
    const std::string_view path(membership.data() + line + 3, end - line - 3);
    const std::string suffix = leaf_suffix();
    return path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix;
  }

  /// SIGKILLs every process in the leaf and everything it forks meanwhile: `cgroup.kill`
  /// (Linux 5.14), else freeze, kill each, thaw. 0, or -1 with errno.
  int kill() const {
    if (write_control(path_ + "/cgroup.kill", "1") == 0) return 0;
    if (errno != ENOENT && errno != EACCES && errno != EINVAL) return -1;
    const bool frozen = write_control(path_ + "/cgroup.freeze", "1") == 0;  // no forking while we list
    for (int round = 0; round < 64; ++round) {
      if (signal_members(SIGKILL) == 0) break;
    }
    if (frozen) (void)write_control(path_ + "/cgroup.freeze", "0");
    return 0;
  }

  /// rmdir; false (the directory stays) while a process is still inside.
  bool remove() noexcept {
    if (path_.empty()) return true;
    directory_.reset();
    events_.reset();
    const bool removed = ::rmdir(path_.c_str()) == 0 || errno == ENOENT;
    path_.clear();
    return removed;
  }

 private:
  // "/teardown-<pid>/live-on/<n>": what /proc/<pid>/cgroup's v2 line ends with for a member.
  [[nodiscard]] std::string leaf_suffix() const {
    const auto home = path_.rfind("/teardown-");
    return home == std::string::npos ? path_ : path_.substr(home);
  }

  std::string path_;
  UniqueFd directory_;
  UniqueFd events_;
};

/// Whether `<directory>/cgroup.events` says a process is in it or beneath it.
inline bool cgroup_populated(const std::string& directory) {
  return read_text_file(directory + "/cgroup.events").find("populated 1") != std::string::npos;
}

/// The names of the directories in `directory` ("." and ".." aside): in cgroupfs, its child
/// cgroups. Empty when it cannot be read.
inline std::vector<std::string> subdirectories(const std::string& directory) {
  std::vector<std::string> names;
  const std::unique_ptr<DIR, int (*)(DIR*)> listing(::opendir(directory.c_str()), &::closedir);
  if (!listing) return names;
  while (const dirent* entry = ::readdir(listing.get())) {
    const std::string_view name(entry->d_name);
    if (name == "." || name == "..") continue;
    if (entry->d_type == DT_DIR || entry->d_type == DT_UNKNOWN) names.emplace_back(name);
  }
  return names;
}

/// rmdir every cgroup beneath `directory`, deepest first, then `directory` itself (cgroupfs
/// directories hold only interface files, which go with them). True when it is gone.
inline bool remove_cgroup_tree(const std::string& directory) noexcept {
  try {
    for (const auto& name : subdirectories(directory)) (void)remove_cgroup_tree(directory + "/" + name);
  } catch (...) {  // out of memory listing it: the rmdir below says whether it went anyway
  }
  return ::rmdir(directory.c_str()) == 0 || errno == ENOENT;
}

/// Whether `name` is what CgroupHome calls a subtree: "teardown-<pid>" or "teardown-<pid>.<n>".
inline bool is_subtree_name(std::string_view name) noexcept {
  constexpr std::string_view prefix = "teardown-";
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  bool digit_seen = false;
  bool dot_seen = false;
  for (const char c : name) {
    if (c >= '0' && c <= '9') {
      digit_seen = true;
    } else if (c == '.' && digit_seen && !dot_seen) {
      dot_seen = true;
      digit_seen = false;
    } else {
      return false;
    }
  }
  return digit_seen;
}

/// The subtree at `directory`, opened and locked (LOCK_EX) for the caller: the lock its owner
/// holds for its whole life. Empty when it is gone or a live process holds it (errno says which:
/// EWOULDBLOCK for held).
inline UniqueFd lock_subtree(const std::string& directory) noexcept {
  UniqueFd lock(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (lock && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    lock.reset();
    errno = error;
  }
  return lock;
}

/// Removes, beneath `own` (a cgroup directory), the subtrees of processes that ended without
/// tidying up: a `teardown-*` directory whose lock nobody holds and in which no process is left
/// (a populated one stays, for its guardian or for a later sweep). Returns how many went.
inline std::size_t sweep_stale_subtrees(const std::string& own) noexcept {
  std::size_t removed = 0;
  try {
    for (const auto& name : subdirectories(own)) {
      if (!is_subtree_name(name)) continue;
      const std::string directory = own + "/" + name;
      // Held while we look and remove: the owner that made it an instant ago cannot take it
      // meanwhile, and finds it gone when it makes its parts (and makes it again).
      const UniqueFd held = lock_subtree(directory);
      if (!held) continue;  // gone, or a live process holds it
      if (cgroup_populated(directory)) continue;
      if (remove_cgroup_tree(directory)) ++removed;
    }
  } catch (...) {  // out of memory: the leftovers wait for the next sweep
  }
  return removed;
}

/// This process's subtree of leaves: created on first use, for this pid (a forked copy of the
/// process makes its own). Process-wide, like the cgroup membership it describes.
class CgroupHome {
 public:
  static CgroupHome& instance() {
    static CgroupHome home;
    return home;
  }

  /// A fresh leaf; std::system_error naming the directory when no writable cgroup v2 is here.
  CgroupLeaf make_leaf(bool die_with_parent) {
    std::lock_guard lock(mutex_);
    ensure_subtree();
    const std::string parent = subtree_ + (die_with_parent ? "/die-with-parent" : "/live-on");
    for (bool remade = false;;) {
      try {
        return CgroupLeaf::create(parent, std::to_string(++serial_));
      } catch (const std::system_error& failed) {
        // A leaf left by an earlier process with our pid (killed before its guardian ran): skip it.
        if (failed.code().value() == EEXIST) continue;
        // The subtree is gone (our lock descriptor was closed under us, by a close-every-fd
        // loop say, and a sweep took the subtree): make it once more.
        if (failed.code().value() != ENOENT || remade) throw;
        remade = true;
        forget_subtree();
        ensure_subtree();
      }
    }
  }

  /// The subtree's path, once made ("" before).
  std::string subtree() {
    std::lock_guard lock(mutex_);
    return owner_ == ::getpid() ? subtree_ : std::string();
  }

  /// From now on this process behaves as if no writable cgroup v2 existed (`why` is the error):
  /// how tests force the fallback that machines without cgroup delegation take.
  void make_unavailable(const std::string& why) {
    std::lock_guard lock(mutex_);
    failed_for_ = ::getpid();
    failure_ = std::make_exception_ptr(
        std::system_error(ENOENT, std::generic_category(), "teardown::spawn: Contain::cgroup: " + why));
  }

  /// Whether a leaf can be made here (Contain::automatic asks this); the reason when not.
  bool usable(std::string* why) {
    std::lock_guard lock(mutex_);
    try {
      ensure_subtree();
      return true;
    } catch (const std::system_error& unusable) {
      if (why) *why = unusable.what();
      return false;
    }
  }

 private:
  void ensure_subtree() {
    const pid_t self = ::getpid();
    if (failed_for_ == self) std::rethrow_exception(failure_);
    if (owner_ == self) return;
    try {
      const CgroupDiscovery own = discover_own_cgroup();
      if (own.directory.empty()) throw_cgroup_error(ENOENT, own.why);
      if (owner_ != 0) forget_subtree();  // a forked copy: the subtree and its lock are the parent's
      (void)sweep_stale_subtrees(own.directory);
      claim_subtree(own.directory, self);
      owner_ = self;
    } catch (const std::system_error&) {
      failed_for_ = self;  // remembered: a spawn must not retry mkdir on every call
      failure_ = std::current_exception();
      throw;
    }
  }

  /// Makes (or adopts) `<own>/teardown-<pid>` and takes its lock. Taken already, it belongs to a
  /// live process with our pid number in another pid namespace: the next name, `.1`, `.2`...
  void claim_subtree(const std::string& own, pid_t self) {
    const std::string base = own + "/teardown-" + std::to_string(self);
    for (int attempt = 0; attempt < 16; ++attempt) {
      const std::string subtree = attempt == 0 ? base : base + "." + std::to_string(attempt);
      if (const int error = make_or_adopt_directory(AT_FDCWD, subtree.c_str())) {
        throw_cgroup_error(error, "cannot create " + subtree +
                                      " (no writable cgroup v2 here; under systemd "
                                      "use Delegate=yes)");
      }
      UniqueFd lock = lock_subtree(subtree);
      if (!lock) {
        // Swept between our mkdir and open: make it again. Held: another live process's (a sweep
        // may also hold it an instant): the next name.
        if (errno == ENOENT || errno == EWOULDBLOCK) continue;
        throw_cgroup_error(errno, "cannot open and lock " + subtree);
      }
      int error = 0;
      for (const char* part : {"die-with-parent", "live-on"}) {
        if (error == 0) error = make_or_adopt_directory(lock.get(), part);
      }
      if (error == ENOENT) continue;  // swept before we held the lock: make it again
      if (error != 0) {
        (void)remove_cgroup_tree(subtree);
        throw_cgroup_error(error, "cannot create the parts of " + subtree);
      }
      struct stat identity {};
      (void)::fstat(lock.get(), &identity);
      lock_identity_ = {identity.st_dev, identity.st_ino};
      lock_ = std::move(lock);
      subtree_ = subtree;
      return;
    }
    throw_cgroup_error(EEXIST, "no free name for this process's subtree beside " + base);
  }

  /// Lets go of the subtree we hold (or a forked copy inherited), closing the lock descriptor
  /// only if it is still ours: a caller that closed every fd may have reused its number.
  void forget_subtree() noexcept {
    struct stat now {};
    const bool ours = lock_ && ::fstat(lock_.get(), &now) == 0 && now.st_dev == lock_identity_.first &&
                      now.st_ino == lock_identity_.second;
    if (ours) {
      lock_.reset();
    } else {
      (void)lock_.release();
    }
    subtree_.clear();
    owner_ = 0;
  }

  /// Creates `path` (relative to `at`, as mkdirat), or adopts it if it exists already (left by an
  /// earlier process with our pid that ended without tidying up, by _exit say) — but only if this
  /// process can create leaves in it: a root process's leftovers are not an unprivileged one's
  /// home. 0, or errno.
  static int make_or_adopt_directory(int at, const char* path) noexcept {
    if (::mkdirat(at, path, 0755) == 0) return 0;
    if (errno != EEXIST) return errno;
    return ::faccessat(at, path, W_OK | X_OK, AT_EACCESS) == 0 ? 0 : errno;
  }

  CgroupHome() = default;
  /// At a normal exit the (by then empty) subtree goes, with the leaves a Child could not remove
  /// (its tree outlived a reap aimed at the child alone) once they are empty. A populated leaf
  /// stays, and its subtree with it, unlocked: for the guardian, or a later process's sweep.
  ~CgroupHome() {
    if (owner_ == ::getpid() && !subtree_.empty()) (void)remove_cgroup_tree(subtree_);
    forget_subtree();
  }

  std::mutex mutex_;
  pid_t owner_ = 0;  // the pid the subtree was made for
  std::string subtree_;
  UniqueFd lock_;  // the subtree, flock'ed LOCK_EX: "in use" to other processes' sweeps
  std::pair<dev_t, ino_t> lock_identity_{};
  std::size_t serial_ = 0;
  pid_t failed_for_ = 0;
  std::exception_ptr failure_;
};

}  // namespace teardown::detail
