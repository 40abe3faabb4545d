// Containment benchmarks (see docs/performance.md, section Containment).
//
// 1. A tree of 1 leader + 100 descendants (every third setsid'd) → all gone: cgroup.kill
//    (Contain::cgroup, Target::tree) against a process-group kill (which the setsid'd third
//    escapes: counted as survivors) and one kill() per known pid.
// 2. Supervisor SIGKILL → last descendant gone: a forked supervisor spawns two die_with_parent
//    trees of 10 (every third setsid'd) and is SIGKILLed; p50 and p99 until the last has exited,
//    with cgroups and with the fallback (process group + subreaper + guardian).
// 3. spawn + reap of /bin/true with Contain::cgroup, Contain::process_group and Contain::none.
//
// Tree members are this executable re-run with --tree <n> <report_fd>: it forks n children
// (no exec), every third calls setsid(), each writes its pid to the report fd and pauses.
#include <teardown/reaper.hpp>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "process_support.hpp"

using bench_support::Pipe;
using bench_support::report_percentiles;
using bench_support::self_path;

namespace {

// --tree <n> <report_fd>: the leader reports itself and n descendants, then waits.
int run_tree(int count, int report) {
  const auto say = [&](std::int32_t value) {  // negative: a setsid'd member
    (void)!::write(report, &value, sizeof value);
  };
  say(::getpid());
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const bool escapes = i % 3 == 0;
      if (escapes) (void)::setsid();
      say(escapes ? -::getpid() : ::getpid());
      for (;;) ::pause();
    }
  }
  for (;;) ::pause();
}

// Reads `count` pids from `report` and opens a pidfd to each; `setsid` marks the escaped ones.
std::vector<teardown::UniqueFd> watch(int report, int count, std::vector<pid_t>* pids = nullptr,
                                      std::vector<bool>* setsid = nullptr) {
  std::vector<teardown::UniqueFd> pidfds;
  for (int i = 0; i < count; ++i) {
    std::int32_t value = 0;
    if (teardown::detail::retry_eintr([&] { return ::read(report, &value, sizeof value); }) != sizeof value) {
      std::abort();
    }
    const pid_t pid = value < 0 ? -value : value;
    pidfds.emplace_back(teardown::detail::pidfd_open(pid));
    if (pids) pids->push_back(pid);
    if (setsid) setsid->push_back(value < 0);
  }
  return pidfds;
}

void wait_all_gone(const std::vector<teardown::UniqueFd>& pidfds) {
  for (const auto& pidfd : pidfds) {
    pollfd exited{pidfd.get(), POLLIN, 0};
    (void)teardown::detail::poll_until(&exited, 1, teardown::Clock::time_point::max());
  }
}

std::size_t alive(const std::vector<teardown::UniqueFd>& pidfds) {
  std::size_t count = 0;
  for (const auto& pidfd : pidfds) {
    pollfd exited{pidfd.get(), POLLIN, 0};
    count += ::poll(&exited, 1, 0) == 0 ? 1 : 0;
  }
  return count;
}

constexpr int tree_size = 100;

teardown::Child spawn_tree(int count, const Pipe& report, teardown::SpawnOptions options) {
  options.inherit_fds = {report.write_end.get()};
  return teardown::spawn(
      {self_path(), "--tree", std::to_string(count), std::to_string(report.write_end.get())},
      std::move(options));
}

enum class TreeKill { cgroup_kill, process_group_kill, kill_each_pid };

void BM_TreeKill(benchmark::State& state, TreeKill how) {
  std::size_t survivors = 0;
  for (auto _ : state) {
    Pipe report;
    teardown::SpawnOptions options;
    options.contain = how == TreeKill::cgroup_kill ? teardown::Contain::cgroup : teardown::Contain::none;
    options.new_process_group = how != TreeKill::cgroup_kill;
    auto child = spawn_tree(tree_size, report, options);
    std::vector<pid_t> pids;
    std::vector<bool> escaped;
    auto tree = watch(report.read_end.get(), tree_size + 1, &pids, &escaped);

    const auto started = teardown::Clock::now();
    if (how == TreeKill::cgroup_kill) {
      (void)child.signal(SIGKILL, teardown::Target::tree);
      wait_all_gone(tree);
    } else if (how == TreeKill::process_group_kill) {
      (void)::kill(-child.pid(), SIGKILL);
      for (std::size_t i = 0; i < tree.size(); ++i) {
        if (escaped[i]) continue;
        pollfd exited{tree[i].get(), POLLIN, 0};
        (void)teardown::detail::poll_until(&exited, 1, teardown::Clock::time_point::max());
      }
    } else {
      for (const pid_t pid : pids) (void)::kill(pid, SIGKILL);
      wait_all_gone(tree);
    }
    state.SetIterationTime(std::chrono::duration<double>(teardown::Clock::now() - started).count());
    survivors = alive(tree);
    for (const auto& member : tree) (void)teardown::detail::pidfd_send_signal(member.get(), SIGKILL);
    (void)child.wait_until(teardown::Deadline::after(std::chrono::seconds(10)));
    wait_all_gone(tree);
  }
  state.counters["survivors"] = static_cast<double>(survivors);
}

// A forked supervisor with two die_with_parent trees of 10; the time from its SIGKILL until the
// last process of both trees has exited.
void BM_SupervisorSigkill(benchmark::State& state, bool with_cgroup) {
  std::vector<double> latencies_us;
  for (auto _ : state) {
    Pipe report;
    const pid_t supervisor = ::fork();
    if (supervisor == 0) {
      if (!with_cgroup)
        teardown::detail::CgroupHome::instance().make_unavailable("benchmarking the fallback");
      teardown::SpawnOptions options;
      options.contain = teardown::Contain::automatic;
      options.die_with_parent = true;
      auto first = spawn_tree(10, report, options);
      auto second = spawn_tree(10, report, options);
      for (;;) ::pause();
    }
    auto tree = watch(report.read_end.get(), 22);
    const auto started = teardown::Clock::now();
    ::kill(supervisor, SIGKILL);
    wait_all_gone(tree);
    const auto took = teardown::Clock::now() - started;
    state.SetIterationTime(std::chrono::duration<double>(took).count());
    latencies_us.push_back(std::chrono::duration<double, std::micro>(took).count());
    int status = 0;
    (void)::waitpid(supervisor, &status, 0);
  }
  report_percentiles(state, latencies_us);
}

void BM_SpawnAndReap(benchmark::State& state, teardown::Contain contain) {
  for (auto _ : state) {
    auto child = teardown::spawn({"/bin/true"}, {.contain = contain});
    benchmark::DoNotOptimize(child.wait_until(teardown::Deadline::after(std::chrono::seconds(10))));
  }
}

}  // namespace

BENCHMARK_CAPTURE(BM_TreeKill, cgroup_kill, TreeKill::cgroup_kill)
    ->Iterations(10)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TreeKill, process_group_kill, TreeKill::process_group_kill)
    ->Iterations(10)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TreeKill, kill_each_pid, TreeKill::kill_each_pid)
    ->Iterations(10)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SupervisorSigkill, cgroup, true)
    ->Iterations(50)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SupervisorSigkill, fallback, false)
    ->Iterations(50)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SpawnAndReap, none, teardown::Contain::none)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SpawnAndReap, process_group, teardown::Contain::process_group)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SpawnAndReap, cgroup, teardown::Contain::cgroup)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--tree") == 0)
    return run_tree(std::atoi(argv[2]), std::atoi(argv[3]));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
