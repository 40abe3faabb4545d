// k8s.cpp — the supervisor demo under Kubernetes' shutdown budget:
//
//   supervisor --k8s [--grace 4s] [--linger 500ms] [--run-for 2s] [--journal PATH] [--ready-file PATH]
//
// Kubernetes removes a terminating pod from its Service's endpoints at the moment it sends
// SIGTERM, and the removal takes a while to reach every node: requests keep arriving for a few
// seconds. Everything after SIGTERM (preStop included) must fit in terminationGracePeriodSeconds
// (`--grace`), then SIGKILL. On SIGTERM (or after --run-for) this mode closes one
// TeardownStack<PodPlan>, every phase against one deadline: SIGTERM + grace − a margin for the exit
// (a tenth of the grace, at most 2 s). Each phase's line says how much of the budget is left.
//
// The readiness probe this mode is written for is `exec: [test, -f, <ready file>]`. With
// NOTIFY_SOCKET set (under systemd rather than a kubelet) it also reports through
// ServiceNotifier, like the normal mode. Exit status: 0 when every phase succeeded within the
// deadline, 1 otherwise, 2 for bad arguments.
#include <teardown/detail/env_parse.hpp>
#include <teardown/drain_group.hpp>
#include <teardown/reaper.hpp>
#include <teardown/service.hpp>
#include <teardown/shutdown_signals.hpp>
#include <teardown/teardown_stack.hpp>
#include <teardown/unique_resource.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "console.hpp"
#include "journal.hpp"
#include "ready_pipe.hpp"

namespace supervisor_demo {

namespace {

using namespace std::chrono_literals;
using teardown::Clock;
using teardown::Deadline;
using teardown::Stage;

// Kubernetes' order, written in the type.
using PodPlan = teardown::Plan<
    Stage<"not ready", "the readiness probe fails from now on: no new endpoint will route here">,
    Stage<"linger", "endpoint removal is still propagating: requests keep arriving, keep serving them">,
    Stage<"stop admitting", "the endpoints are gone: refuse what still comes">,
    Stage<"drain requests", "in-flight requests write to the journal: finish or abandon them first">,
    Stage<"reap workers", "SIGTERM, then SIGKILL, one grace for all of them">,
    Stage<"close storage", "everything above writes to it: flushed and closed last">>;

constexpr int pod_worker_count = 2;
constexpr auto pod_admit_every = 100ms;
constexpr auto pod_term_grace = 1s;  // the workers' SIGTERM rung; the deadline shrinks it if need be

struct PodOptions {
  Clock::duration grace = 4s;      // terminationGracePeriodSeconds
  Clock::duration linger = 500ms;  // endpoint propagation delay
  Clock::duration run_for = 2s;    // SIGTERM comes from outside, or this long after ready
  std::string journal_path;
  std::string ready_file;
};

/// "500ms", "4s", "1m" (teardown's environment syntax) -> a duration.
std::optional<Clock::duration> pod_duration(std::string_view text) {
  const auto parsed = teardown::detail::parse_env_value(text);
  if (parsed.kind != teardown::detail::EnvValue::Kind::duration) return std::nullopt;
  return parsed.duration;
}

/// What the shutdown has used of its budget, as a line prefix: "[+0.503 s of 3.60 s] ".
class BudgetClock {
 public:
  void start(Clock::time_point signal, Deadline deadline) {
    signal_ = signal;
    deadline_ = deadline;
  }
  [[nodiscard]] std::string stamp() const {
    char text[48];
    std::snprintf(text, sizeof text, "[+%.3f s of %.2f s] ",
                  std::chrono::duration<double>(Clock::now() - signal_).count(),
                  std::chrono::duration<double>(deadline_.time_point() - signal_).count());
    return text;
  }

 private:
  Clock::time_point signal_ = Clock::now();
  Deadline deadline_ = Deadline::never();
};

/// A request on its own thread: short work that finishes even when the drain has begun (the
/// drain waits for it), recorded in the journal.
void start_pod_request(teardown::Ticket ticket, std::string id, Clock::duration length, Journal journal) {
  std::thread([ticket = std::move(ticket), id = std::move(id), length, journal]() mutable {
    std::this_thread::sleep_for(length);  // the request's work
    if (journal.write(id + " completed")) {
      ticket.finish(teardown::Outcome::completed);
    } else {
      ticket.finish(teardown::Outcome::failed);
    }
  }).detach();
}

int run_pod(const PodOptions& options, const std::string& self) {
  auto notifier = teardown::ServiceNotifier::from_env();
  teardown::ShutdownSignals signals({SIGTERM, SIGINT}, teardown::SecondSignal::exit_now,
                                    notifier.stopping_action());
  const auto margin = std::min<Clock::duration>(options.grace / 10, 2s);
  say("teardown supervisor demo, --k8s mode, pid " + std::to_string(::getpid()) +
      ": terminationGracePeriodSeconds " + duration_text(options.grace) + ", endpoint propagation " +
      duration_text(options.linger) + ", exit margin " + duration_text(margin));
  say("shutdown plan (teardown::Plan, closed in this order, all within grace - margin = " +
      duration_text(options.grace - margin) + "):");
  const std::string plan = PodPlan::describe();
  for (std::size_t start = 0; start < plan.size();) {
    const std::size_t end = std::min(plan.find('\n', start), plan.size());
    if (end > start) say("  " + plan.substr(start, end - start));
    start = end + 1;
  }

  BudgetClock budget;
  Deadline deadline = Deadline::never();
  std::atomic<int> admitted_after_signal{0};
  std::atomic<bool> signalled{false};
  std::optional<Journal> journal_handle;
  teardown::ReapGroup workers(
      teardown::ladder(teardown::rung::Signal{SIGTERM, pod_term_grace}, teardown::rung::Kill{}));
  teardown::DrainGroup requests;
  std::jthread admitter;

  teardown::EventSink phase_lines([&](const teardown::StepOutcome& step) {
    std::string line = budget.stamp() + "phase '" + step.name +
                       "': " + std::string(teardown::to_string(step.status)) + " in " +
                       duration_text(step.took) + "; " + duration_text(deadline.remaining()) +
                       " of the budget left";
    if (step.error) line += ": " + teardown::detail::what_of(step.error);
    say(line);
    if (step.name == "linger") {
      say("             " + std::to_string(admitted_after_signal.load()) +
          " requests admitted after SIGTERM, while the endpoint removal propagated");
    }
    // The drain's and the reap's own reports (DrainReport, ReapReport), kept by the stack.
    for (std::size_t start = 0; start < step.detail.size();) {
      const std::size_t end = std::min(step.detail.find('\n', start), step.detail.size());
      say("             " + step.detail.substr(start, end - start));
      start = end + 1;
    }
  });
  teardown::TeardownStack<PodPlan> stack(notifier.sink(std::move(phase_lines)));

  {
    auto startup = stack.transaction();
    Journal journal = stack.enter<"close storage">([&] { return Journal::open(options.journal_path); },
                                                   [](Journal& opened) { opened.close(); });
    journal_handle = journal;

    stack.push<"reap workers">(workers);  // by reference: its own ladder, its report kept
    int ready_pipe[2];
    if (::pipe2(ready_pipe, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    teardown::UniqueFd ready_read{ready_pipe[0]};
    teardown::UniqueFd ready_write{ready_pipe[1]};
    for (int number = 1; number <= pod_worker_count; ++number) {
      auto child =
          teardown::spawn({self, "--worker", std::to_string(number), std::to_string(ready_write.get())},
                          {.new_process_group = true, .lifeline = true, .inherit_fds = {ready_write.get()}});
      say("worker " + std::to_string(number) + ": started, pid " + std::to_string(child.pid()));
      workers.add(std::move(child));
    }
    ready_write.reset();
    wait_for_ready_bytes(ready_read.get(), pod_worker_count, Deadline::after(5s));

    stack.push<"drain requests">(requests);  // by reference: shutdown(deadline), its report kept
    stack.push<"stop admitting">([&] {
      admitter.request_stop();
      if (admitter.joinable()) admitter.join();
    });
    stack.push<"linger">([&](Deadline until) {
      // The kubelet's preStop `sleep`, done in-process: serving goes on meanwhile.
      std::this_thread::sleep_until(teardown::earliest(until, Deadline::after(options.linger)).time_point());
    });
    stack.push<"not ready">([&] {
      std::error_code ignored;
      std::filesystem::remove(options.ready_file, ignored);
      say(budget.stamp() + "readiness: " + options.ready_file + " removed; the probe fails from now on");
    });
    startup.commit();
  }

  admitter = std::jthread([&](std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any wake;
    for (int number = 1; !stop.stop_requested(); ++number) {
      auto ticket = requests.try_enter("r-" + std::to_string(number));
      if (!ticket) return;
      if (signalled.load()) ++admitted_after_signal;
      start_pod_request(std::move(*ticket), "r-" + std::to_string(number), 250ms, *journal_handle);
      std::unique_lock lock(mutex);
      wake.wait_for(lock, stop, pod_admit_every, [] { return false; });
    }
  });
  if (!teardown::UniqueFd{::open(options.ready_file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)})
    throw std::system_error(errno, std::generic_category(), "creating the ready file " + options.ready_file);
  notifier.ready();
  say("ready: " + options.ready_file + " exists; admitting a request every " +
      duration_text(pod_admit_every));

  const bool by_signal = signals.wait_until(Deadline::after(options.run_for));
  const auto signal_time = Clock::now();
  deadline = Deadline::at(signal_time + options.grace - margin);
  budget.start(signal_time, deadline);
  signalled.store(true);
  say(budget.stamp() +
      (by_signal ? teardown::detail::signal_name(signals.received()) + " received"
                 : duration_text(options.run_for) + " elapsed, as if SIGTERM came") +
      ": the kubelet SIGKILLs at +" + duration_text(options.grace) + "; every phase fits before +" +
      duration_text(options.grace - margin));

  const teardown::TeardownReport& report = stack.close(deadline);
  const bool in_time = !deadline.expired();
  say(budget.stamp() + "pod terminated: teardown " + (report.ok() ? "complete" : "FAILED") + ", " +
      (in_time ? duration_text(deadline.remaining()) + " before the deadline"
               : std::string("PAST the deadline")) +
      ", " + duration_text(signal_time + options.grace - Clock::now()) + " before SIGKILL would have come");
  return report.ok() && in_time ? 0 : 1;
}

int pod_usage(const std::string& problem) {
  std::fprintf(stderr,
               "supervisor --k8s: %s\nusage: supervisor --k8s [--grace 4s] [--linger 500ms] [--run-for 2s] "
               "[--journal PATH] [--ready-file PATH]\n",
               problem.c_str());
  return 2;
}

}  // namespace

/// `supervisor --k8s ...`: parses the mode's arguments (args[0] is "--k8s") and runs it.
int run_k8s(const std::vector<std::string_view>& args, const std::string& self) {
  PodOptions options;
  const std::string stem = "/tmp/teardown-supervisor-k8s-" + std::to_string(::getpid());
  options.journal_path = stem + ".journal";
  options.ready_file = stem + ".ready";
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (i + 1 >= args.size()) return pod_usage("'" + std::string(flag) + "' needs a value, or is unknown");
    const std::string_view value = args[++i];
    if (flag == "--grace" || flag == "--linger" || flag == "--run-for") {
      const auto duration = pod_duration(value);
      if (!duration) return pod_usage(std::string(flag) + " takes a duration such as 4s or 500ms");
      if (flag == "--grace") {
        options.grace = *duration;
      } else if (flag == "--linger") {
        options.linger = *duration;
      } else {
        options.run_for = *duration;
      }
    } else if (flag == "--journal") {
      options.journal_path = value;
    } else if (flag == "--ready-file") {
      options.ready_file = value;
    } else {
      return pod_usage("unknown argument '" + std::string(flag) + "'");
    }
  }
  if (options.grace <= options.linger) return pod_usage("--grace must be longer than --linger");
  const int status = run_pod(options, self);
  // The default journal is this run's scratch file (an explicit --journal is kept).
  if (options.journal_path == stem + ".journal" && ::unlink(options.journal_path.c_str()) == 0)
    say("journal " + options.journal_path + " removed (pass --journal PATH to keep it)");
  return status;
}

}  // namespace supervisor_demo
