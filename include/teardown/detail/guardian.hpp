// teardown/detail/guardian.hpp — die_with_parent for binaries that know nothing of teardown.
//
// PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, and reaches only that
// child, never the daemon it setsid()s. So the library starts, once per process and on first
// need, a guardian: a forked copy of this process that runs nothing but system calls, in its own
// session (a signal to our group or terminal does not reach it), with every fd closed but one end
// of a SOCK_SEQPACKET pair. We keep the other end. When this process dies — however, SIGKILL
// included — the kernel closes our end, the guardian reads EOF and, at once:
//   1. writes "1" to `<subtree>/die-with-parent/cgroup.kill`: every cgroup-contained tree that
//      must die with us, setsid daemons included, in one write;
//   2. SIGKILLs each child it was told about (its pidfd, passed with SCM_RIGHTS), and the group
//      it leads while that leader is still unreaped (so the group id is still its own);
//   3. waits until the subtree holds no process, removes its directories, and exits.
// A normal exit takes the same path with nothing left to kill: nothing of the library outlives
// the process for longer than its own children do.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>

#if defined(__linux__)
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "fd.hpp"
#include "proc_tree.hpp"
#include "process.hpp"

namespace teardown::detail {

/// One request to the guardian; with `watch`, the child's pidfd rides along (SCM_RIGHTS).
struct GuardianMessage {
  enum Op : std::uint32_t { watch = 1, forget = 2, cgroup_subtree = 3 };
  std::uint32_t op = 0;
  std::uint32_t id = 0;
  std::int32_t process_group = 0;  // watch: the group the child leads (0: none)
  char path[512] = {};             // cgroup_subtree: the per-process subtree
};

inline constexpr std::size_t guardian_capacity = 4096;  // children watched at once, per process

#if defined(__linux__)

// The guardian's side. It is a fork of a process that may have had other threads (holding the
// malloc lock, a sanitizer's locks...): it calls no library code, only raw system calls on data
// that was ready before fork.
namespace guardian_side {

struct Watched {
  std::uint32_t id;
  int pidfd;
  std::int32_t process_group;
};

TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline long sys(long number, long a = 0, long b = 0, long c = 0,
                                                      long d = 0, long e = 0, long f = 0) noexcept {
  return ::syscall(number, a, b, c, d, e, f);
}

TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline std::size_t length(const char* text) noexcept {
  std::size_t n = 0;
  while (text[n] != '\0') ++n;
  return n;
}

// `directory` + "/" + `name` into `out` (PATH_MAX), no library calls.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline bool join(char* out, const char* directory,
                                                       const char* name) noexcept {
  const std::size_t a = length(directory);
  const std::size_t b = length(name);
  if (a + 1 + b + 1 > PATH_MAX) return false;
  for (std::size_t i = 0; i < a; ++i) out[i] = directory[i];
  out[a] = '/';
  for (std::size_t i = 0; i < b; ++i) out[a + 1 + i] = name[i];
  out[a + 1 + b] = '\0';
  return true;
}

TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void write_file(const char* path, const char* text) noexcept {
  const long fd = sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)sys(SYS_write, fd, reinterpret_cast<long>(text), static_cast<long>(length(text)));
  (void)sys(SYS_close, fd);
}

// Until `<subtree>/cgroup.events` says `populated 0` (children that need not die with us may
// still run: the guardian outlives them too, to remove their leaves).
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void wait_unpopulated(const char* subtree) noexcept {
  char path[PATH_MAX];
  if (!join(path, subtree, "cgroup.events")) return;
  const long fd = sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (;;) {
    char text[256];
    const long got = sys(SYS_pread64, fd, reinterpret_cast<long>(text), sizeof text - 1, 0);
    if (got <= 0) break;
    text[got] = '\0';
    bool populated = false;
    for (long i = 0; i + 11 < got; ++i) {
      const char* key = "populated 1";
      long k = 0;
      while (k < 11 && text[i + k] == key[k]) ++k;
      if (k == 11) populated = true;
    }
    if (!populated) break;
    pollfd change{static_cast<int>(fd), POLLPRI, 0};
    (void)sys(SYS_ppoll, reinterpret_cast<long>(&change), 1, 0, 0);
  }
  (void)sys(SYS_close, fd);
}

// A directory read with getdents64, one entry at a time, no library calls (the buffer is left
// uninitialised: zeroing it could call memset, which a sanitizer intercepts).
struct DirectoryEntries {
  TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC explicit DirectoryEntries(long directory_fd) noexcept
      : fd(directory_fd) {}
  long fd;
  long got = 0;
  long offset = 0;
  alignas(8) char buffer[8192];
};

// The next entry's name (its d_type in `*type`), or nullptr at the end of the directory or on
// an error. The name stays valid until the next call.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline const char* next_entry(DirectoryEntries& directory,
                                                                    unsigned char* type) noexcept {
  if (directory.offset >= directory.got) {
    directory.got =
        sys(SYS_getdents64, directory.fd, reinterpret_cast<long>(directory.buffer), sizeof directory.buffer);
    directory.offset = 0;
    if (directory.got <= 0) return nullptr;
  }
  // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[]
  const char* entry = directory.buffer + directory.offset;
  unsigned short record = 0;
  std::memcpy(&record, entry + 16, sizeof record);
  *type = static_cast<unsigned char>(entry[18]);
  directory.offset += record;
  return entry + 19;
}

// rmdir every directory inside `directory`, then `directory` itself.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void remove_tree(const char* directory) noexcept {
  const long fd =
      sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(directory), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    DirectoryEntries entries(fd);
    unsigned char type = 0;
    while (const char* name = next_entry(entries, &type)) {
      const bool dots = name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
      if (type == DT_DIR && !dots) (void)sys(SYS_unlinkat, fd, reinterpret_cast<long>(name), AT_REMOVEDIR);
    }
    (void)sys(SYS_close, fd);
  }
  (void)sys(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(directory), AT_REMOVEDIR);
}

// Whether /proc/<pid>/environ (opened as `environ_fd`) holds an entry starting with `prefix`.
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline bool environ_has_prefix(long environ_fd,
                                                                     const char* prefix) noexcept {
  const std::size_t wanted = length(prefix);
  std::size_t matched = 0;     // characters of `prefix` matched at the start of this entry
  bool at_entry_start = true;  // still inside the part of an entry that could match
  char chunk[4096];
  for (;;) {
    const long got = sys(SYS_read, environ_fd, reinterpret_cast<long>(chunk), sizeof chunk);
    if (got <= 0) return false;
    for (long i = 0; i < got; ++i) {
      const char c = chunk[i];
      if (c == '\0') {
        matched = 0;
        at_entry_start = true;
      } else if (at_entry_start) {
        if (c == prefix[matched]) {
          if (++matched == wanted) return true;
        } else {
          at_entry_start = false;
        }
      }
    }
  }
}

// SIGKILLs every process whose environment carries `marker` ("TEARDOWN_TREE=<pid>."): the
// process-group fallback's trees, setsid daemons included, which no cgroup holds. Each through
// a pidfd opened before its environment is read, so a recycled pid is never signalled. Rounds
// until a scan finds none (a tree forking while it dies).
TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void kill_marked(const char* marker) noexcept {
  for (int round = 0; round < 64; ++round) {
    const long proc =
        sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return;
    bool found = false;
    DirectoryEntries entries(proc);
    unsigned char type = 0;
    while (const char* name = next_entry(entries, &type)) {
      long pid = 0;
      bool numeric = name[0] != '\0';
      for (const char* c = name; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9') numeric = false;
        pid = pid * 10 + (*c - '0');
      }
      if (!numeric) continue;
      const long pidfd = sys(SYS_pidfd_open, pid, 0);
      if (pidfd < 0) continue;
      char path[64] = "/proc/";
      std::size_t at = 6;
      for (const char* c = name; *c != '\0' && at < 40; ++c) path[at++] = *c;
      for (const char* c = "/environ"; *c != '\0'; ++c) path[at++] = *c;
      path[at] = '\0';
      const long environ_fd = sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
      if (environ_fd >= 0) {
        if (environ_has_prefix(environ_fd, marker) && sys(SYS_pidfd_send_signal, pidfd, SIGKILL, 0, 0) == 0) {
          found = true;
        }
        (void)sys(SYS_close, environ_fd);
      }
      (void)sys(SYS_close, pidfd);
    }
    (void)sys(SYS_close, proc);
    if (!found) return;
  }
}

[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void run(int channel, Watched* table,
                                                                   const char* marker) noexcept;

// The intermediate: forks the guardian, tells our side its pid, exits.
[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void start(int channel, Watched* table,
                                                                     const char* marker) noexcept {
  const long guardian = sys(SYS_clone, SIGCHLD, 0, 0, 0);
  if (guardian == 0) run(channel, table, marker);
  if (guardian > 0) {
    const pid_t pid = static_cast<pid_t>(guardian);
    (void)sys(SYS_sendto, channel, reinterpret_cast<long>(&pid), sizeof pid, MSG_NOSIGNAL);
  }
  (void)sys(SYS_exit_group, 0);
  __builtin_unreachable();
}

[[noreturn]] TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC inline void run(int channel, Watched* table,
                                                                   const char* marker) noexcept {
  (void)sys(SYS_setsid);
  static const char name[] = "teardown-guard";  // what ps shows
  (void)sys(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>(name));
  struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
  } ignore{SIG_IGN, 0, nullptr, 0};
  for (const int signo :
       {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2}) {
    (void)sys(SYS_rt_sigaction, signo, reinterpret_cast<long>(&ignore), 0, sizeof(unsigned long));
  }
  unsigned long no_signals = 0;
  (void)sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&no_signals), 0, sizeof no_signals);
  // Hold nothing of ours: a pipe end kept here would keep a lifeline, or a test's output, open.
  if (channel > 0) (void)sys(SYS_close_range, 0, channel - 1, 0);
  (void)sys(SYS_close_range, channel + 1, ~0U, 0);

  char subtree[sizeof GuardianMessage::path] = {};
  std::size_t watched = 0;
  for (;;) {
    GuardianMessage message;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    iovec part{&message, sizeof message};
    msghdr header{};
    header.msg_iov = &part;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    const long got = sys(SYS_recvmsg, channel, reinterpret_cast<long>(&header), MSG_CMSG_CLOEXEC);
    if (got == -1 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the process we guard is gone
    int passed_fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&header); c; c = CMSG_NXTHDR(&header, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        std::memcpy(&passed_fd, CMSG_DATA(c), sizeof passed_fd);
    }
    if (message.op == GuardianMessage::watch && passed_fd >= 0) {
      if (watched < guardian_capacity) {
        table[watched++] = Watched{message.id, passed_fd, message.process_group};
      } else {
        (void)sys(SYS_close, passed_fd);
      }
    } else if (message.op == GuardianMessage::forget) {
      for (std::size_t i = 0; i < watched; ++i) {
        if (table[i].id != message.id) continue;
        (void)sys(SYS_close, table[i].pidfd);
        table[i] = table[--watched];
        break;
      }
    } else if (message.op == GuardianMessage::cgroup_subtree) {
      for (std::size_t i = 0; i + 1 < sizeof subtree; ++i) subtree[i] = message.path[i];
    }
    if (passed_fd >= 0 && message.op != GuardianMessage::watch) (void)sys(SYS_close, passed_fd);
  }

  char path[PATH_MAX];
  if (subtree[0] != '\0' && join(path, subtree, "die-with-parent/cgroup.kill")) write_file(path, "1");
  for (std::size_t i = 0; i < watched; ++i) {
    // Signal 0 first: while the leader is unreaped (alive or a zombie) its group id is its own.
    if (table[i].process_group > 0 && sys(SYS_pidfd_send_signal, table[i].pidfd, 0, 0, 0) == 0) {
      (void)sys(SYS_kill, -table[i].process_group, SIGKILL);
    }
    (void)sys(SYS_pidfd_send_signal, table[i].pidfd, SIGKILL, 0, 0);
  }
  if (watched > 0) kill_marked(marker);
  if (subtree[0] != '\0') {
    wait_unpopulated(subtree);
    if (join(path, subtree, "die-with-parent")) remove_tree(path);
    if (join(path, subtree, "live-on")) remove_tree(path);
    (void)sys(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(subtree), AT_REMOVEDIR);
  }
  (void)sys(SYS_exit_group, 0);
  __builtin_unreachable();
}

}  // namespace guardian_side

/// Our side: starts the guardian on first need and tells it what to kill. Process-wide (it
/// guards the process); a forked copy of this process starts its own on first need.
/// Thread-safety: every member may be called from any thread.
class Guardian {
 public:
  static Guardian& instance() {
    static Guardian guardian;
    return guardian;
  }

  /// Starts the guardian for this process unless it runs; std::system_error if it cannot.
  void ensure_started() {
    std::lock_guard lock(mutex_);
    start_locked();
  }

  /// The guardian kills and removes `<subtree>/die-with-parent` when this process dies.
  void guard_cgroup_subtree(const std::string& subtree) {
    std::lock_guard lock(mutex_);
    start_locked();
    if (subtree == subtree_) return;
    GuardianMessage message;
    message.op = GuardianMessage::cgroup_subtree;
    if (subtree.size() >= sizeof message.path) {
      throw std::system_error(ENAMETOOLONG, std::generic_category(),
                              "teardown::spawn: die_with_parent: cgroup path too long: " + subtree);
    }
    std::memcpy(message.path, subtree.c_str(), subtree.size() + 1);
    send_locked(message, -1);
    subtree_ = subtree;
  }

  /// The guardian SIGKILLs the child behind `pidfd` (and the group it leads) when this process
  /// dies; returns the id to `forget` it by, before the child is reaped.
  std::uint32_t watch(int pidfd, pid_t process_group) {
    std::lock_guard lock(mutex_);
    start_locked();
    if (watched_ >= guardian_capacity) {
      throw std::system_error(EMFILE, std::generic_category(),
                              "teardown::spawn: die_with_parent: more than " +
                                  std::to_string(guardian_capacity) + " children watched at once");
    }
    GuardianMessage message;
    message.op = GuardianMessage::watch;
    message.id = ++serial_;
    message.process_group = process_group;
    send_locked(message, pidfd);
    ++watched_;
    return message.id;
  }

  /// The child `id` is about to be reaped: its pid may be recycled, so it must not be killed.
  void forget(std::uint32_t id) noexcept {
    std::lock_guard lock(mutex_);
    if (owner_ != ::getpid() || id == 0) return;
    GuardianMessage message;
    message.op = GuardianMessage::forget;
    message.id = id;
    try {
      send_locked(message, -1);
    } catch (...) {
      // The guardian is gone: nothing is left to kill this child later, which is what we want.
    }
    if (watched_ > 0) --watched_;
  }

  /// The guardian's pid (0 before it runs), for tests and `ps`.
  [[nodiscard]] pid_t pid() {
    std::lock_guard lock(mutex_);
    return owner_ == ::getpid() ? guardian_pid_ : 0;
  }

 private:
  void start_locked() {
    const pid_t self = ::getpid();
    if (owner_ == self) return;
    // In a forked copy the inherited end was closed by the fork handler: never close it again.
    (void)channel_.release();
    subtree_.clear();
    watched_ = 0;
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
      throw std::system_error(errno, std::generic_category(), "teardown::spawn: die_with_parent: socketpair");
    }
    UniqueFd ours(ends[0]);
    UniqueFd theirs(ends[1]);
    static guardian_side::Watched table[guardian_capacity];  // the guardian's copy is its own
    // Fork twice: the guardian must not be our child (it would show up in waitid(P_ALL), and
    // end as our zombie if it ever died first). The intermediate forks it, sends us its pid
    // through the guardian's own end, and exits; the guardian is adopted by init.
    sigset_t all_signals;
    sigset_t previous;
    sigfillset(&all_signals);
    ::pthread_sigmask(SIG_SETMASK, &all_signals, &previous);
    static char marker[64];  // what the fallback's die_with_parent trees carry in their environment
    const std::string prefix = die_with_parent_marker_prefix(self);
    std::memcpy(marker, prefix.c_str(), std::min(prefix.size() + 1, sizeof marker));
    const pid_t intermediate = ::fork();
    if (intermediate == 0) guardian_side::start(theirs.get(), table, marker);
    const int error = errno;
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (intermediate < 0) {
      throw std::system_error(error, std::generic_category(), "teardown::spawn: die_with_parent: fork");
    }
    theirs.reset();
    int status = 0;
    (void)retry_eintr([&] { return ::waitpid(intermediate, &status, 0); });
    pid_t pid = 0;
    const ssize_t got = retry_eintr([&] { return ::recv(ours.get(), &pid, sizeof pid, 0); });
    if (got != static_cast<ssize_t>(sizeof pid) || pid <= 0) {
      throw std::system_error(ECHILD, std::generic_category(),
                              "teardown::spawn: die_with_parent: the guardian did not start");
    }
    channel_ = std::move(ours);
    channel_in_forks().store(channel_.get());
    static const int handler_registered = ::pthread_atfork(nullptr, nullptr, close_inherited_channel);
    (void)handler_registered;
    guardian_pid_ = pid;
    owner_ = self;
  }

  // A copy made by fork() (without exec) must not keep the guardian waiting: the guardian
  // guards the process that started it, and acts when that one dies, copies or not.
  static std::atomic<int>& channel_in_forks() noexcept {
    static std::atomic<int> fd{-1};
    return fd;
  }
  TEARDOWN_DETAIL_BETWEEN_FORK_AND_EXEC static void close_inherited_channel() noexcept {
    const int fd = channel_in_forks().exchange(-1);
    if (fd >= 0) (void)::syscall(SYS_close, fd);
  }

  void send_locked(GuardianMessage& message, int pass_fd) {
    iovec part{&message, sizeof message};
    msghdr header{};
    header.msg_iov = &part;
    header.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (pass_fd >= 0) {
      header.msg_control = control;
      header.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&header);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof pass_fd);
    }
    if (retry_eintr([&] { return ::sendmsg(channel_.get(), &header, MSG_NOSIGNAL); }) < 0) {
      throw std::system_error(errno, std::generic_category(),
                              "teardown::spawn: die_with_parent: telling the guardian (pid " +
                                  std::to_string(guardian_pid_) + ")");
    }
  }

  std::mutex mutex_;
  pid_t owner_ = 0;  // the process the running guardian guards
  pid_t guardian_pid_ = 0;
  UniqueFd channel_;
  std::string subtree_;
  std::uint32_t serial_ = 0;
  std::size_t watched_ = 0;
};

#endif  // __linux__

}  // namespace teardown::detail
