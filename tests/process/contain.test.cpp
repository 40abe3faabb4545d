// Containment with cgroup v2 leaves (CI runs as root with a writable hierarchy): the shared
// cases of contain_cases.hpp, then what only cgroups do. Where no cgroup v2 can be written the
// cgroup cases cannot run: they say so (WARN) and contain_fallback.test.cpp still runs.
#include <teardown/reaper.hpp>

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "support/catch.hpp"

namespace {
const teardown::Contain tested_contain = teardown::Contain::cgroup;
// The guardian's channel is opened before fds_at_start is taken, so the last case can compare.
void prepare_process() { teardown::detail::Guardian::instance().ensure_started(); }
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

// Last: Catch2 runs test cases in declaration order.
TEST_CASE("Containment: the suite leaves no cgroup leaf, fd or zombie", "[contain][process]") {
  CHECK(teardown_test::has_no_children());
  CHECK(teardown_test::open_fds() == contain_cases::fds_at_start);
  const std::string subtree = teardown::detail::CgroupHome::instance().subtree();
  if (subtree.empty()) return;
  for (const char* part : {"/live-on", "/die-with-parent"}) {
    DIR* directory = ::opendir((subtree + part).c_str());
    REQUIRE(directory);
    std::vector<std::string> left;
    while (const dirent* entry = ::readdir(directory)) {
      if (entry->d_type == DT_DIR && entry->d_name[0] != '.') left.emplace_back(entry->d_name);
    }
    ::closedir(directory);
    CHECK(left.empty());
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
