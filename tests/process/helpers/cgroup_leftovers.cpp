// Run by ctest after every other test (the cleanup of the `teardown_cgroups` fixture): no
// subtree of a process that ended may be left beneath our cgroup. A subtree an ended process
// left empty (it ended by _exit) is swept, as the next contained spawn on the machine would; one
// that a process is still in — a tree that outlived its supervisor's reap — fails the suite.
// Subtrees of live processes (held: their lock is taken) are theirs, and not looked at.
#include <teardown/spawn.hpp>

#include <sys/types.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {
// Every process beneath `directory`, with its command line, so a failure says whose tree it was.
void print_members(const std::string& directory) {
  for (const pid_t pid : teardown::detail::CgroupLeaf::members_of(directory)) {
    std::string command = teardown::detail::read_text_file("/proc/" + std::to_string(pid) + "/cmdline");
    for (char& c : command)
      if (c == '\0') c = ' ';
    std::printf("  pid %d: %s\n", static_cast<int>(pid), command.c_str());
  }
  for (const auto& name : teardown::detail::subdirectories(directory)) print_members(directory + "/" + name);
}
}  // namespace

int main() {
  const auto own = teardown::detail::discover_own_cgroup();
  if (own.directory.empty()) {
    std::printf("no cgroup v2 here (%s): nothing to check\n", own.why.c_str());
    return 0;
  }
  const std::size_t swept = teardown::detail::sweep_stale_subtrees(own.directory);
  std::printf("swept %zu empty subtree(s) of ended processes beneath %s\n", swept, own.directory.c_str());
  int left = 0;
  for (const auto& name : teardown::detail::subdirectories(own.directory)) {
    if (!teardown::detail::is_subtree_name(name)) continue;
    const std::string directory = own.directory + "/" + name;
    if (!teardown::detail::lock_subtree(directory)) continue;  // gone, or a live process's
    ++left;
    std::printf(
        "left behind: %s (%s)\n", directory.c_str(),
        teardown::detail::cgroup_populated(directory) ? "a process is still in it" : "could not be removed");
    print_members(directory);
  }
  return left == 0 ? 0 : 1;
}
