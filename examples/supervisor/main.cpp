// supervisor — every teardown component in one small program, with a readable teardown report.
//
//   supervisor [--run-for 2s] [--journal PATH] [--kill-self]     (--help lists every option)
//
// The supervisor installs ShutdownSignals, starts three workers (this same binary, re-executed
// with --worker) through teardown::spawn with a lifeline — the second one ignores SIGTERM — and
// admits simulated requests into a DrainGroup; request r-3 ignores its stop token. Requests write
// to a journal file. On SIGTERM/SIGINT, or after --run-for, it closes one
// TeardownStack<SupervisorPlan> whose Plan is the shutdown order:
//
//   1. drain requests — stop admitting, cancel, wait (500 ms), persist "interrupted"
//   2. reap workers   — one ReapGroup: SIGTERM, 500 ms for all of them together, then SIGKILL
//   3. close storage  — fsync and close the journal, once nothing can write to it
//
// The final report is the stack's own: each step's detail holds the DrainReport and the
// ReapReport (every worker's ExitStatus) of the component it closed.
//
// With NOTIFY_SOCKET set (a systemd unit with Type=notify) it tells systemd READY=1 once the
// workers are up, STOPPING=1 on the signal and each stage as it starts (ServiceNotifier).
// `supervisor --k8s` runs Kubernetes' budget instead (k8s.cpp).
//
// --kill-self SIGKILLs the supervisor mid-run instead: no teardown runs at all, and each worker
// notices through its ParentWatch and exits on its own within a second. Exit status: 0 when every
// step of the teardown succeeded, 1 otherwise, 2 for bad arguments.
#include <teardown/drain_group.hpp>
#include <teardown/parent_watch.hpp>
#include <teardown/reaper.hpp>
#include <teardown/service.hpp>
#include <teardown/shutdown_signals.hpp>
#include <teardown/teardown_stack.hpp>
#include <teardown/unique_resource.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
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

namespace supervisor_demo {

int run_worker(int number, int ready_fd, bool ignore_term);                       // worker.cpp
int run_k8s(const std::vector<std::string_view>& args, const std::string& self);  // k8s.cpp

namespace {

using namespace std::chrono_literals;
using teardown::Clock;
using teardown::Deadline;
using teardown::Stage;

// The shutdown order, written in the type: the stack closes the stages in this order.
using SupervisorPlan = teardown::Plan<
    Stage<"drain requests",
          "requests write to the journal: stop admitting, then finish or cancel them first">,
    Stage<"reap workers", "workers hold no journal handle: stopped in parallel, one grace for all">,
    Stage<"close storage", "everything above writes to it: flushed and closed last">>;

constexpr int worker_count = 3;
constexpr int stubborn_worker = 2;         // ignores SIGTERM: the ladder has to SIGKILL it
constexpr int stubborn_request = 3;        // ignores its stop token: the drain has to abandon it
constexpr auto admit_every = 150ms;        // a new request this often until admission closes
constexpr auto drain_budget = 500ms;       // how long the drain waits for requests in flight
constexpr auto term_grace = 500ms;         // how long the workers get after SIGTERM, together
constexpr auto shutdown_budget = 5s;       // the whole teardown, every stage included
constexpr auto stubborn_overrun = 1500ms;  // r-3 keeps working this long after its stop request

struct Options {
  Clock::duration run_for = 2s;
  std::string journal_path;
  bool kill_self = false;
};

/// "250ms", "2s", "1.5s" -> a duration; nullopt when it is none of these.
std::optional<Clock::duration> parse_duration(std::string_view text) {
  std::size_t unit = 0;
  while (unit < text.size() && ((text[unit] >= '0' && text[unit] <= '9') || text[unit] == '.')) ++unit;
  if (unit == 0) return std::nullopt;
  double value = 0;
  try {
    value = std::stod(std::string(text.substr(0, unit)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string_view suffix = text.substr(unit);
  double seconds = 0;
  if (suffix == "ms") {
    seconds = value / 1000.0;
  } else if (suffix == "s" || suffix.empty()) {
    seconds = value;
  } else {
    return std::nullopt;
  }
  if (seconds > 3600) return std::nullopt;
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string self_path(const char* argv0) {
  char path[4096];
  const ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (length > 0) return std::string(path, static_cast<std::size_t>(length));
  return argv0;  // not Linux: argv[0] still finds us when it holds a path
}

/// Seconds since the supervisor started, as a line prefix: "[ 2.004 s] ".
class Stopwatch {
 public:
  [[nodiscard]] std::string stamp() const {
    char text[32];
    std::snprintf(text, sizeof text, "[%6.3f s] ",
                  std::chrono::duration<double>(Clock::now() - started_).count());
    return text;
  }

 private:
  Clock::time_point started_ = Clock::now();
};

/// Lets main wait, bounded, for the abandoned request to end, only to show what it did then.
struct Latch {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  void count_down() {
    std::lock_guard lock(mutex);
    done = true;
    done_cv.notify_all();
  }
  bool wait_until(Deadline deadline) {
    std::unique_lock lock(mutex);
    return done_cv.wait_until(lock, deadline.time_point(), [this] { return done; });
  }
};

/// One simulated request on its own thread: it works a few hundred ms, checking its stop token,
/// and records its completion in the journal. Stopped early, it acknowledges the stop
/// (Outcome::cancelled) unless it is nearly done. The stubborn one never looks at the token.
void start_request(teardown::Ticket ticket, std::string id, Clock::duration length, bool stubborn,
                   Journal journal, Stopwatch clock, std::shared_ptr<Latch> stubborn_done) {
  std::thread([ticket = std::move(ticket), id = std::move(id), length, stubborn, journal, clock,
               stubborn_done]() mutable {
    const std::stop_token stop = ticket.stop_token();
    const auto begun = Clock::now();
    std::optional<Clock::time_point> stop_seen;
    for (;;) {
      const auto now = Clock::now();
      if (stop.stop_requested() && !stop_seen) stop_seen = now;
      if (stubborn) {
        if (stop_seen && now - *stop_seen >= stubborn_overrun) break;
      } else {
        if (now - begun >= length) break;
        if (stop_seen && length - (now - begun) > 100ms) {  // nearly done work is let finish
          journal.write(id + " cancelled");
          say(clock.stamp() + "  " + id + ": stop requested, acknowledged (cancelled)");
          ticket.finish(teardown::Outcome::cancelled);
          return;
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    if (journal.write(id + " completed")) {
      if (stop_seen) say(clock.stamp() + "  " + id + ": nearly done when stop came, completed");
      ticket.finish(teardown::Outcome::completed);
    } else {
      const std::string when = stop_seen
                                   ? duration_text(Clock::now() - *stop_seen) + " after its stop request"
                                   : "without a stop request";
      say(clock.stamp() + "  " + id + " (abandoned) finished " + when +
          "; the journal was already closed, so its write was refused: nothing "
          "was written after close");
      ticket.finish(teardown::Outcome::failed);
    }
    if (stubborn_done) stubborn_done->count_down();
  }).detach();
}

/// READY=1 to the service manager, when there is one: `systemctl start` returns now.
void report_ready(const teardown::ServiceNotifier& notifier, const Stopwatch& clock) {
  if (!notifier.enabled()) return;
  notifier.status("running: " + std::to_string(worker_count) + " workers, admitting requests");
  notifier.ready();
  say(clock.stamp() + "service manager: READY=1 sent to NOTIFY_SOCKET");
}

int run_supervisor(const Options& options, const std::string& self) {
  const Stopwatch clock;
  // Disabled without NOTIFY_SOCKET; under systemd it reports startup, the signal and each stage.
  auto notifier = teardown::ServiceNotifier::from_env();
  // First: a Ctrl-C during startup is a shutdown too.
  teardown::ShutdownSignals signals({SIGTERM, SIGINT}, teardown::SecondSignal::exit_now,
                                    notifier.stopping_action());

  say("teardown supervisor demo, pid " + std::to_string(::getpid()) +
      ": shuts down on SIGTERM/SIGINT or after " + duration_text(options.run_for) +
      (options.kill_self ? " (--kill-self: SIGKILLs itself instead)" : ""));
  say("shutdown plan (teardown::Plan, closed in this order):");
  std::string plan = SupervisorPlan::describe();
  for (std::size_t start = 0; start < plan.size();) {
    const std::size_t end = std::min(plan.find('\n', start), plan.size());
    if (end > start) say("  " + plan.substr(start, end - start));
    start = end + 1;
  }

  std::optional<Journal> journal_handle;
  Clock::time_point shutdown_began{};

  // Target::tree: each worker's whole containment (its cgroup leaf, or its group and what it
  // adopted), so the plain worker's setsid daemon goes with it and the reap ends only once it has.
  teardown::ReapGroup workers(
      teardown::ladder(teardown::rung::Signal{SIGTERM, term_grace, teardown::Target::tree},
                       teardown::rung::Kill{teardown::Target::tree}));
  teardown::DrainGroup requests;
  // The event sink tells each step as it ends; the reports of the drain and the reap come with
  // the stack's report at the end (StepOutcome::detail), not through this sink.
  teardown::TeardownStack<SupervisorPlan> stack(notifier.sink([&](const teardown::StepOutcome& step) {
    std::string line = clock.stamp() + "step '" + step.name +
                       "': " + std::string(teardown::to_string(step.status)) + " in " +
                       teardown::duration_text(step.took);
    if (step.error) line += ": " + teardown::detail::what_of(step.error);
    say(line);
    if (step.name == "close storage" && journal_handle) {
      const auto totals = journal_handle->totals();
      say("             journal " + journal_handle->path() + ": " + std::to_string(totals.lines) +
          " lines, " + std::to_string(totals.bytes) + " bytes, fsync'd and closed");
    }
  }));

  const auto stubborn_done = std::make_shared<Latch>();
  {
    auto startup = stack.transaction();  // a failure below tears down whatever already started

    Journal journal = stack.enter<"close storage">([&] { return Journal::open(options.journal_path); },
                                                   [](Journal& opened) { opened.close(); });
    journal_handle = journal;
    say("storage: journal " + journal.path());

    stack.push<"reap workers">(workers);  // by reference: closed with its own ladder, its report kept
    int ready_pipe[2];
    if (::pipe2(ready_pipe, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    teardown::UniqueFd ready_read{ready_pipe[0]};
    teardown::UniqueFd ready_write{ready_pipe[1]};
    for (int number = 1; number <= worker_count; ++number) {
      std::vector<std::string> argv{self, "--worker", std::to_string(number),
                                    std::to_string(ready_write.get())};
      if (number == stubborn_worker) argv.emplace_back("--ignore-term");
      // Its own process group: a terminal's Ctrl-C reaches the supervisor only, which then stops
      // the workers in order. The lifeline is the write end of a pipe that only this process holds.
      auto child = teardown::spawn(
          std::move(argv), {.new_process_group = true, .lifeline = true, .inherit_fds = {ready_write.get()}});
      say("worker " + std::to_string(number) + ": started, pid " + std::to_string(child.pid()) +
          (number == stubborn_worker ? " (ignores SIGTERM)" : ""));
      workers.add(std::move(child));
    }
    // A fourth worker knows nothing of teardown: a plain binary that daemonizes a grandchild (a
    // double fork into a session of its own) and never watches its parent. Contained (the default,
    // Contain::automatic) and die_with_parent: its whole tree goes with the reap, or with us.
    {
      int daemon_pipe[2];
      if (::pipe2(daemon_pipe, O_CLOEXEC) != 0)
        throw std::system_error(errno, std::generic_category(), "pipe2");
      teardown::UniqueFd daemon_read{daemon_pipe[0]};
      teardown::UniqueFd daemon_write{daemon_pipe[1]};
      const std::string report = " >/proc/self/fd/" + std::to_string(daemon_write.get());
      auto plain = teardown::spawn(
          {"/bin/sh", "-c",
           "(setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!" + report + "); exec sleep 600"},
          {.inherit_fds = {daemon_write.get()}, .die_with_parent = true});
      daemon_write.reset();
      std::string daemon_pid;
      char digit = 0;
      while (teardown::detail::retry_eintr([&] { return ::read(daemon_read.get(), &digit, 1); }) == 1 &&
             digit != '\n') {
        daemon_pid += digit;
      }
      say("plain worker: started, pid " + std::to_string(plain.pid()) + "; its setsid daemon: pid " +
          daemon_pid + " (Contain::" + std::string(teardown::to_string(plain.containment())) +
          ", die_with_parent)");
      workers.add(std::move(plain));
    }
    ready_write.reset();
    const auto all_ready_by = Deadline::after(5s);  // for all of them, not per byte
    for (int ready = 0; ready < worker_count;) {
      pollfd readable{ready_read.get(), POLLIN, 0};
      // poll_until restarts on EINTR (a Ctrl-C during startup) with the time that is left.
      if (teardown::detail::poll_until(&readable, 1, all_ready_by.time_point()) <= 0)
        throw std::runtime_error("the workers did not report ready within 5 s");
      char byte = 0;
      const ssize_t got = teardown::detail::retry_eintr([&] { return ::read(ready_read.get(), &byte, 1); });
      if (got == 0) throw std::runtime_error("a worker exited before reporting ready");
      if (got == 1) ++ready;
    }

    // The drain has a budget of its own and persists what it abandons: the step returns the
    // shutdown's DrainReport, which the stack keeps as the step's detail.
    stack.push<"drain requests">([&requests, journal](Deadline deadline) {
      // The requests still running are recorded as interrupted while the journal is still open
      // (the cancelled ones recorded it themselves when they acknowledged the stop).
      auto persist = [journal](std::string_view id, teardown::Interruption how) mutable {
        return how == teardown::Interruption::cancelled ||
               journal.write(std::string(id) + " interrupted: abandoned by the drain");
      };
      return requests.shutdown(teardown::earliest(deadline, Deadline::after(drain_budget)), persist);
    });
    startup.commit();
  }
  report_ready(notifier, clock);

  say(clock.stamp() + "running: admitting a request every " + duration_text(admit_every) + "; r-" +
      std::to_string(stubborn_request) + " ignores its stop token");
  std::jthread admitter([&](std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any wake;
    for (int number = 1; !stop.stop_requested(); ++number) {
      const std::string id = "r-" + std::to_string(number);
      auto ticket = requests.try_enter(id);
      if (!ticket) {
        say(clock.stamp() + "  " + id + " refused: admission is closed");
        return;
      }
      const bool stubborn = number == stubborn_request;
      start_request(std::move(*ticket), id, 300ms + (number * 7 % 5) * 100ms, stubborn, *journal_handle,
                    clock, stubborn ? stubborn_done : nullptr);
      std::unique_lock lock(mutex);
      wake.wait_for(lock, stop, admit_every, [] { return false; });
    }
  });

  if (options.kill_self) {
    (void)signals.wait_until(Deadline::after(options.run_for / 2));
    say(clock.stamp() +
        "--kill-self: SIGKILL to the supervisor now; no teardown will run. The workers must "
        "notice through their ParentWatch and exit on their own:");
    ::kill(::getpid(), SIGKILL);
  }

  const bool by_signal = signals.wait_until(Deadline::after(options.run_for));
  shutdown_began = Clock::now();
  say(clock.stamp() + "shutdown: " +
      (by_signal ? teardown::detail::signal_name(signals.received()) + " received"
                 : duration_text(options.run_for) + " elapsed") +
      "; closing the stack within " + duration_text(shutdown_budget));

  const teardown::TeardownReport& report = stack.close(Deadline::after(shutdown_budget));
  admitter.join();  // admission is closed: it has returned or is about to
  say(clock.stamp() + "teardown " + (report.ok() ? "complete" : "FAILED") + " in " +
      teardown::duration_text(Clock::now() - shutdown_began) + ":");
  const std::string steps = report.describe();  // each step, its component's report nested under it
  for (std::size_t start = 0; start < steps.size();) {
    const std::size_t end = std::min(steps.find('\n', start), steps.size());
    if (end > start) say("  " + steps.substr(start, end - start));
    start = end + 1;
  }
  if (requests.in_flight() != 0) {
    // Only to show what the abandoned request does when it finally ends; a real server would not wait.
    if (!stubborn_done->wait_until(Deadline::after(stubborn_overrun + 1s))) {
      say(clock.stamp() + "the abandoned request is still running; exiting without it");
    }
  }
  say(clock.stamp() + "supervisor: exit " + std::to_string(report.ok() ? 0 : 1));
  return report.ok() ? 0 : 1;
}

constexpr const char* usage_text =
    "usage: supervisor [--run-for DURATION] [--journal PATH] [--kill-self]\n"
    "       supervisor --k8s [--grace DURATION] [--linger DURATION] [--run-for DURATION]\n"
    "                        [--journal PATH] [--ready-file PATH]\n"
    "       supervisor --help\n"
    "\n"
    "Every teardown component in one program: three workers and a plain daemonizing binary,\n"
    "simulated requests in a DrainGroup, a journal file; on SIGTERM/SIGINT, or after --run-for,\n"
    "one TeardownStack closes drain requests -> reap workers -> close storage, and reports it.\n"
    "\n"
    "  --run-for DURATION  shut down after this long without a signal (default 2s; 500ms, 1.5s)\n"
    "  --journal PATH      the journal the requests write to, kept after the run (default:\n"
    "                      /tmp/teardown-supervisor-<pid>.journal, removed after a normal run)\n"
    "  --kill-self         SIGKILL the supervisor halfway through --run-for instead: no teardown\n"
    "                      runs, each worker notices through its ParentWatch and exits\n"
    "  --k8s               Kubernetes' budget instead: not ready, linger, then the same stack\n"
    "    --grace DURATION    terminationGracePeriodSeconds (default 4s)\n"
    "    --linger DURATION   the endpoint-propagation delay, shorter than --grace (default 500ms)\n"
    "    --ready-file PATH   exists while the pod is ready (default under /tmp, removed at the end)\n"
    "  --help              this text\n"
    "\n"
    "Exit status: 0 when every step of the teardown succeeded, 1 otherwise, 2 for bad arguments.\n";

/// The usage text on stderr after what was wrong with the arguments; exit status 2.
int usage(const char* argv0, const std::string& problem) {
  std::fprintf(stderr, "%s: %s\n%s", argv0, problem.c_str(), usage_text);
  return 2;
}

}  // namespace

}  // namespace supervisor_demo

int main(int argc, char** argv) {
  using namespace supervisor_demo;
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args[0] == "--worker") {
      if (args.size() < 3) return usage(argv[0], "--worker needs a number and a ready fd");
      return run_worker(std::atoi(argv[2]), std::atoi(argv[3]),
                        args.size() > 3 && args[3] == "--ignore-term");
    }
    for (const std::string_view arg : args) {
      if (arg == "--help" || arg == "-h") {  // in either mode
        std::fputs(usage_text, stdout);
        return 0;
      }
    }
    if (!args.empty() && args[0] == "--k8s") return run_k8s(args, self_path(argv[0]));
    Options options;
    // The default journal is this run's scratch file: removed after a normal run (an explicit
    // --journal is the caller's, and kept). A run ended by SIGKILL (--kill-self) leaves it.
    const std::string default_journal = "/tmp/teardown-supervisor-" + std::to_string(::getpid()) + ".journal";
    options.journal_path = default_journal;
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--kill-self") {
        options.kill_self = true;
      } else if (args[i] == "--run-for" && i + 1 < args.size()) {
        const auto duration = parse_duration(args[++i]);
        if (!duration) return usage(argv[0], "--run-for takes a duration such as 2s or 500ms");
        options.run_for = *duration;
      } else if (args[i] == "--journal" && i + 1 < args.size()) {
        options.journal_path = args[++i];
      } else {
        return usage(argv[0], "unknown argument '" + std::string(args[i]) + "'");
      }
    }
    const int status = run_supervisor(options, self_path(argv[0]));
    if (options.journal_path == default_journal && ::unlink(default_journal.c_str()) == 0)
      say("journal " + default_journal + " removed (pass --journal PATH to keep it)");
    return status;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "supervisor: %s\n", error.what());
    return 1;
  }
}
