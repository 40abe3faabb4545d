// A helper program for tests/process/pid1.test.cpp: a server that is PID 1, as in a container.
//
//   test_helper_pid1 <cgroup|process_group>
//
// It enters a new PID and mount namespace (root only), mounts that namespace's own /proc and,
// as its PID 1, spawns two children contained as asked, each of which leaves an orphan behind:
//   - "exits": `sh -c 'sh -c "exit 0" & exit 0'`, whose orphan ends by itself (our zombie);
//   - "lingers": `sh -c 'sleep 60 & echo $!; exit 0'`, whose orphan lives on until the reap's
//     SIGTERM ends it.
// Both are reaped with the default ladder (aimed at each child's tree). Then PID 1 must have no
// child left at all, reaped or not: every adopted zombie of those trees was reaped.
//
// Exit status: 0 when so; 1 with the reason on stderr; 77 when namespaces are not available here
// (not root, or a kernel without them).
#include <teardown/reaper.hpp>

#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

// LeakSanitizer stops the world to scan for leaks at exit, which it cannot do as PID 1 of a new
// PID namespace: the leak check is off here (ASan's other checks stay on).
extern "C" int __lsan_is_turned_off();
extern "C" int __lsan_is_turned_off() { return 1; }

namespace {

int fail(const std::string& why) {
  std::fprintf(stderr, "pid1_helper: %s\n", why.c_str());
  return 1;
}

/// What is left of this process's children (zombies included), or empty if nothing is.
std::string remaining_children() {
  siginfo_t info{};
  if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1)
    return errno == ECHILD ? std::string() : std::string("waitid: ") + std::strerror(errno);
  if (info.si_pid == 0) return "a child still runs";
  std::string stat = teardown::detail::read_text_file("/proc/" + std::to_string(info.si_pid) + "/stat");
  while (!stat.empty() && stat.back() == '\n') stat.pop_back();
  return "zombie pid " + std::to_string(info.si_pid) + " was never reaped (/proc/<pid>/stat: " + stat + ")";
}

int run_as_pid1(teardown::Contain contain) {
  if (::getpid() != 1) return fail("not PID 1 of the new namespace (pid " + std::to_string(::getpid()) + ")");
  // This namespace's own /proc, as a container has: the pids it lists are ours.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return fail(std::string("making / private: ") + std::strerror(errno));
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return fail(std::string("mounting /proc: ") + std::strerror(errno));

  teardown::ReapGroup group;
  auto exits = teardown::spawn({"/bin/sh", "-c", "sh -c 'exit 0' & exit 0"}, {.contain = contain});
  auto lingers = teardown::spawn({"/bin/sh", "-c", "sleep 60 & echo $!; exit 0"},
                                 {.contain = contain, .out = teardown::Stdio::pipe()});
  // The orphan has started once its pid is printed.
  char pid_text[32] = {};
  std::size_t got = 0;
  while (got < sizeof pid_text - 1) {
    const ssize_t n = ::read(lingers.stdout_fd(), pid_text + got, sizeof pid_text - 1 - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
    if (std::memchr(pid_text, '\n', got) != nullptr) break;
  }
  if (std::memchr(pid_text, '\n', got) == nullptr)
    return fail("the lingering child never printed its orphan's pid");
  if (lingers.containment() != contain) {
    return fail("asked for " + std::string(teardown::to_string(contain)) + ", got " +
                std::string(teardown::to_string(lingers.containment())));
  }
  // Both leaders have exited (their pidfds are readable; they are not reaped yet): what the reap
  // meets besides them is their orphans, reparented to PID 1.
  for (const teardown::Child* leader : {&exits, &lingers}) {
    pollfd exited{leader->fd(), POLLIN, 0};
    if (::poll(&exited, 1, 30'000) != 1) return fail("a leader did not exit within 30 s");
  }
  group.add(std::move(exits));
  group.add(std::move(lingers));

  const auto report =
      group.reap_all(teardown::default_ladder(), teardown::Deadline::after(std::chrono::seconds(30)));
  for (const auto& status : report.statuses) {
    if (status.kind != teardown::ExitStatus::Kind::exited || status.code != 0)
      return fail("a child did not exit 0: " + status.describe());
  }
  if (!report.errors.empty()) return fail("the reap reported: " + report.errors.front());
  if (const std::string left = remaining_children(); !left.empty()) {
    return fail("after the reap: " + left + "; the leaders were " + std::to_string(report.statuses[0].pid) +
                " and " + std::to_string(report.statuses[1].pid));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: test_helper_pid1 <cgroup|process_group>");
  const std::string mode = argv[1];
  teardown::Contain contain;
  if (mode == "cgroup") {
    contain = teardown::Contain::cgroup;
  } else if (mode == "process_group") {
    contain = teardown::Contain::process_group;
  } else {
    return fail("unknown containment '" + mode + "' (cgroup or process_group)");
  }
  if (::unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) {
    std::fprintf(stderr, "pid1_helper: unshare(CLONE_NEWPID | CLONE_NEWNS): %s\n", std::strerror(errno));
    return 77;
  }
  const pid_t init = ::fork();  // the first process of the new PID namespace: its PID 1
  if (init == -1) return fail(std::string("fork: ") + std::strerror(errno));
  if (init == 0) {
    int code = 1;
    try {
      code = run_as_pid1(contain);
    } catch (const std::exception& error) {
      code = fail(std::string("threw: ") + error.what());
    }
    std::fflush(stderr);
    ::_exit(code);
  }
  int status = 0;
  while (::waitpid(init, &status, 0) == -1 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return fail("PID 1 ended by signal " + std::to_string(WTERMSIG(status)));
}
