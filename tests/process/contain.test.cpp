// Containment with cgroup v2 leaves (CI runs as root with a writable hierarchy): the shared
// cases of contain_cases.hpp, then what only cgroups do. Where no cgroup v2 can be written the
// cgroup cases cannot run: they say so (WARN) and contain_fallback.test.cpp still runs.
#include <teardown/reaper.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "support/catch.hpp"

namespace {
const teardown::Contain tested_contain = teardown::Contain::cgroup;
// The guardian's channel and the cgroup home's lock (each held for the life of the process) are
// opened before fds_at_start is taken, so the last case can compare.
void prepare_process() {
  teardown::detail::Guardian::instance().ensure_started();
  (void)teardown::detail::CgroupHome::instance().usable(nullptr);
}
bool cgroups_usable() {
  std::string why;
  if (teardown::detail::CgroupHome::instance().usable(&why)) return true;
  WARN("no writable cgroup v2 here, cgroup containment not tested: " << why);
  return false;
}
}  // namespace

#include "contain_cases.hpp"

using namespace std::chrono_literals;
using teardown::Contain;
using teardown::Deadline;
using teardown_test::ReportPipe;
using teardown_test::sh;

namespace {
std::string cgroup_of(pid_t pid) {
  const std::string text = teardown::detail::read_text_file("/proc/" + std::to_string(pid) + "/cgroup");
  const auto line = text.find("0::");
  return line == std::string::npos ? std::string() : text.substr(line + 3, text.find('\n', line) - line - 3);
}
bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}
}  // namespace

TEST_CASE("Contain::cgroup: the child starts in its own leaf, which is removed by the reap",
          "[contain][process]") {
  if (!cgroups_usable()) return;
  ReportPipe report;
  auto child = teardown::spawn(sh("echo started " + report.to() + "; exec sleep 60"),
                               {.inherit_fds = {report.write_end.get()}, .contain = Contain::cgroup});
  REQUIRE(report.read_line(Deadline::after(20s)) == "started");
  const std::string leaf = cgroup_of(child.pid());
  const std::string expected_prefix = "/teardown-" + std::to_string(::getpid()) + "/live-on/";
  REQUIRE(leaf.find(expected_prefix) != std::string::npos);
  const std::string leaf_directory =
      teardown::detail::discover_own_cgroup().directory +
      leaf.substr(cgroup_of(::getpid()) == "/" ? 0 : cgroup_of(::getpid()).size());
  CHECK(is_directory(leaf_directory));

  (void)teardown::Reaper(std::move(child)).reap(Deadline::after(20s));
  CHECK_FALSE(is_directory(leaf_directory));
}

TEST_CASE("Contain::cgroup: a die_with_parent child is placed under die-with-parent", "[contain][process]") {
  if (!cgroups_usable()) return;
  ReportPipe report;
  auto child = teardown::spawn(
      sh("echo started " + report.to() + "; exec sleep 60"),
      {.inherit_fds = {report.write_end.get()}, .contain = Contain::cgroup, .die_with_parent = true});
  REQUIRE(report.read_line(Deadline::after(20s)) == "started");
  CHECK(cgroup_of(child.pid()).find("/teardown-" + std::to_string(::getpid()) + "/die-with-parent/") !=
        std::string::npos);
}

TEST_CASE("Contain::automatic: resolves to cgroup where a leaf can be made", "[contain][process]") {
  if (!cgroups_usable()) return;
  auto child = teardown::spawn({"/bin/true"}, {.contain = Contain::automatic});
  CHECK(child.containment() == Contain::cgroup);
}

TEST_CASE("SpawnOptions{}: the default is Contain::automatic", "[contain][process]") {
  CHECK(teardown::SpawnOptions{}.contain == Contain::automatic);
}

TEST_CASE("Contain::cgroup: a process that exits normally leaves no subtree behind", "[contain][process]") {
  if (!cgroups_usable()) return;
  const std::string own = teardown::detail::discover_own_cgroup().directory;
  const pid_t copy = ::fork();  // a process of its own, which spawns, reaps and exits normally
  REQUIRE(copy >= 0);
  if (copy == 0) {
    int code = 1;
    try {
      auto child = teardown::spawn({"/bin/true"}, {.contain = Contain::cgroup});
      (void)teardown::Reaper(std::move(child)).reap(Deadline::after(20s));
      code = is_directory(own + "/teardown-" + std::to_string(::getpid())) ? 0 : 2;  // it was made
    } catch (...) {
      code = 3;
    }
    std::exit(code);  // static destructors run: the subtree's, among them
  }
  int status = 0;
  REQUIRE(::waitpid(copy, &status, 0) == copy);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(is_directory(own + "/teardown-" + std::to_string(copy)));
}

namespace {
// A forked copy of this process runs `body` (its exit code is the copy's) and ends by _exit, as
// a process that forks workers often does: no static destructor runs, so its subtree stays.
template <class Body>
int in_copy_ending_by_exit(Body body) {
  const pid_t copy = ::fork();
  if (copy < 0) return -1;
  if (copy == 0) {
    int code = 1;
    try {
      code = body();
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  int status = 0;
  if (teardown::detail::retry_eintr([&] { return ::waitpid(copy, &status, 0); }) != copy) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Spawns and reaps one contained child: what makes this process's subtree, if it had none.
void spawn_contained_and_reap() {
  auto child = teardown::spawn({"/bin/true"}, {.contain = Contain::cgroup});
  (void)teardown::Reaper(std::move(child)).reap(Deadline::after(20s));
}

std::string subtree_of(pid_t pid) {
  return teardown::detail::discover_own_cgroup().directory + "/teardown-" + std::to_string(pid);
}

/// The next pid a forked copy reported (0 if none came): only the copy knows its own at first.
pid_t reported_pid(ReportPipe& report) {
  const auto line = report.read_line(Deadline::after(20s));
  return line ? static_cast<pid_t>(std::stol(*line)) : 0;
}
}  // namespace

TEST_CASE("Contain::cgroup: the subtree of a process that ended by _exit is swept by a later process",
          "[contain][process]") {
  if (!cgroups_usable()) return;
  ReportPipe report;
  const int code = in_copy_ending_by_exit([&] {
    spawn_contained_and_reap();
    const std::string pid = std::to_string(::getpid()) + "\n";
    (void)!::write(report.write_end.get(), pid.data(), pid.size());
    return 0;
  });
  REQUIRE(code == 0);
  const pid_t ended = reported_pid(report);
  REQUIRE(ended > 0);
  REQUIRE(is_directory(subtree_of(ended)));  // left behind: nobody ran its destructor
  CHECK(teardown::detail::sweep_stale_subtrees(teardown::detail::discover_own_cgroup().directory) >= 1);
  CHECK_FALSE(is_directory(subtree_of(ended)));
  CHECK(is_directory(teardown::detail::CgroupHome::instance().subtree()));  // ours is held: it stays
}

TEST_CASE("Contain::cgroup: a sweep leaves the subtree of a live process and one a process is still in",
          "[contain][process]") {
  if (!cgroups_usable()) return;
  const std::string own = teardown::detail::discover_own_cgroup().directory;

  SECTION("a live process's subtree, empty between its spawns") {
    ReportPipe report;
    ReportPipe release;
    const pid_t live = ::fork();
    REQUIRE(live >= 0);
    if (live == 0) {
      int code = 1;
      try {
        spawn_contained_and_reap();
        (void)!::write(report.write_end.get(), "ready\n", 6);
        (void)release.read_line(Deadline::after(60s));                              // lives until told
        auto again = teardown::spawn({"/bin/true"}, {.contain = Contain::cgroup});  // its home still works
        const auto status = again.wait_until(Deadline::after(20s));
        const std::string line = (status ? status->describe() : std::string("still running")) + "\n";
        (void)!::write(report.write_end.get(), line.data(), line.size());
        code = status && status->ok() ? 0 : 2;
      } catch (...) {
        code = 3;
      }
      ::_exit(code);
    }
    REQUIRE(report.read_line(Deadline::after(20s)) == "ready");
    (void)teardown::detail::sweep_stale_subtrees(own);
    CHECK(is_directory(subtree_of(live)));
    (void)!::write(release.write_end.get(), "go\n", 3);
    const std::string again = report.read_line(Deadline::after(20s)).value_or("no report");
    INFO(again);
    CHECK(again.find("exited with code 0") != std::string::npos);
    int status = 0;
    REQUIRE(teardown::detail::retry_eintr([&] { return ::waitpid(live, &status, 0); }) == live);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    (void)teardown::detail::sweep_stale_subtrees(own);  // it ended by _exit: tidy up after it
  }

  SECTION("an ended process's subtree that a process it spawned is still in") {
    ReportPipe report;
    pid_t ended = 0;
    const int code = in_copy_ending_by_exit([&] {
      // Not reaped: the sleep outlives the copy, as a child left by a crashed server would.
      auto child = teardown::spawn(sh("exec sleep 60"), {.contain = Contain::cgroup});
      const std::string pids = std::to_string(::getpid()) + "\n" + std::to_string(child.pid()) + "\n";
      (void)!::write(report.write_end.get(), pids.data(), pids.size());
      ::_exit(0);  // here, with the Child alive: its destructor would reap the tree
      return 1;
    });
    REQUIRE(code == 0);
    ended = reported_pid(report);
    const pid_t sleeper = reported_pid(report);
    REQUIRE(ended > 0);
    REQUIRE(sleeper > 0);
    (void)teardown::detail::sweep_stale_subtrees(own);
    CHECK(is_directory(subtree_of(ended)));  // populated: it stays
    // Now end the sleep (through its leaf: cgroup.kill) and wait for the event, then sweep.
    const std::string subtree = subtree_of(ended);
    REQUIRE(teardown::detail::write_control(subtree + "/live-on/cgroup.kill", "1") == 0);
    const teardown::UniqueFd events(::open((subtree + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(events);
    REQUIRE(teardown::detail::wait_cgroup_empty(events.get(), subtree, Deadline::after(20s)));
    CHECK(teardown::detail::sweep_stale_subtrees(own) >= 1);
    CHECK_FALSE(is_directory(subtree));
  }
}

TEST_CASE("Contain::cgroup: a process whose subtree went (its lock fd closed, then swept) makes it again",
          "[contain][process]") {
  if (!cgroups_usable()) return;
  ReportPipe report;
  const int code = in_copy_ending_by_exit([&] {
    spawn_contained_and_reap();
    const std::string subtree = teardown::detail::CgroupHome::instance().subtree();
    // A close-every-fd loop, as some daemons run, drops the lock; a sweep then takes the subtree.
    DIR* listing = ::opendir("/proc/self/fd");
    if (listing == nullptr) return 4;
    std::vector<int> lock_fds;
    while (const dirent* entry = ::readdir(listing)) {
      if (entry->d_name[0] == '.') continue;
      char target[4096];
      const std::string link = std::string("/proc/self/fd/") + entry->d_name;
      const ssize_t got = ::readlink(link.c_str(), target, sizeof target - 1);
      if (got > 0 && std::string(target, static_cast<std::size_t>(got)) == subtree)
        lock_fds.push_back(std::stoi(entry->d_name));
    }
    ::closedir(listing);
    if (lock_fds.size() != 1) return 5;
    ::close(lock_fds[0]);
    if (teardown::detail::sweep_stale_subtrees(teardown::detail::discover_own_cgroup().directory) < 1)
      return 6;
    if (is_directory(subtree)) return 7;
    auto second = teardown::spawn({"/bin/true"}, {.contain = Contain::cgroup});
    const bool contained = second.containment() == Contain::cgroup;
    (void)teardown::Reaper(std::move(second)).reap(Deadline::after(20s));
    const std::string line = teardown::detail::CgroupHome::instance().subtree() + "\n";
    (void)!::write(report.write_end.get(), line.data(), line.size());
    return contained && is_directory(teardown::detail::CgroupHome::instance().subtree()) ? 0 : 8;
  });
  CHECK(code == 0);
  if (const auto remade = report.read_line(Deadline::after(1s)))
    (void)teardown::detail::remove_cgroup_tree(*remade);
}

// Last: Catch2 runs test cases in declaration order.
TEST_CASE("Containment: the suite leaves no cgroup leaf, fd or zombie", "[contain][process]") {
  CHECK(teardown_test::has_no_children());
  CHECK(teardown_test::open_fds() == contain_cases::fds_at_start);
  const std::string subtree = teardown::detail::CgroupHome::instance().subtree();
  if (subtree.empty()) return;
  for (const char* part : {"/live-on", "/die-with-parent"}) {
    REQUIRE(is_directory(subtree + part));
    CHECK(teardown::detail::subdirectories(subtree + part).empty());
  }
}

TEST_CASE(
    "Contain::automatic: a subtree left for our pid by an earlier root process is not adopted when we cannot "
    "write it",
    "[contain][process]") {
  // An earlier process with this pid that ended by _exit (no static destructor) leaves its empty
  // teardown-<pid> subtree behind. A later, unprivileged process with the same pid must fall back,
  // not pick cgroup and then fail to make a leaf (EACCES) on every spawn.
  const auto own = teardown::detail::discover_own_cgroup();
  if (own.directory.empty() || ::geteuid() != 0) {
    WARN("needs root and a cgroup v2 hierarchy: " << own.why << " -- not tested");
    return;
  }
  ReportPipe report;
  const pid_t unprivileged = ::fork();
  REQUIRE(unprivileged >= 0);
  if (unprivileged == 0) {
    const std::string subtree = own.directory + "/teardown-" + std::to_string(::getpid());
    bool made = ::mkdir(subtree.c_str(), 0755) == 0;
    for (const char* part : {"/die-with-parent", "/live-on"})
      made = made && ::mkdir((subtree + part).c_str(), 0755) == 0;
    std::string line = "no stale subtree";
    if (made && ::setresgid(65534, 65534, 65534) == 0 && ::setresuid(65534, 65534, 65534) == 0) {
      try {
        auto child = teardown::spawn({"/bin/true"});
        line = std::string(teardown::to_string(child.containment()));
        (void)child.wait_until(Deadline::after(20s));
      } catch (const std::exception& refused) {
        line = std::string("threw: ") + refused.what();
      }
    }
    line += "\n";
    (void)!::write(report.write_end.get(), line.data(), line.size());
    ::_exit(0);
  }
  report.write_end.reset();
  const auto outcome = report.read_line(Deadline::after(20s)).value_or("no report");
  siginfo_t info{};
  REQUIRE(teardown::detail::retry_eintr(
              [&] { return ::waitid(P_PID, static_cast<id_t>(unprivileged), &info, WEXITED); }) == 0);
  const std::string subtree = own.directory + "/teardown-" + std::to_string(unprivileged);
  for (const char* part : {"/die-with-parent", "/live-on", ""}) (void)::rmdir((subtree + part).c_str());
  CHECK(outcome == "process_group");
}
