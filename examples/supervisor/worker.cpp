// worker.cpp — the worker side of the supervisor demo: `supervisor --worker <n> <ready-fd>
// [--ignore-term]`, started by the supervisor through teardown::spawn with a lifeline.
//
// A worker installs ShutdownSignals (SIGTERM/SIGINT become a stop token) and a ParentWatch (the
// death of the supervisor becomes a SIGTERM to itself: the same shutdown path as a supervisor's
// SIGTERM). Then it tells the supervisor it is ready and waits for its stop.
//
// The stubborn worker (`--ignore-term`) ignores SIGTERM, as a wedged worker would: the
// supervisor's ladder has to SIGKILL it, and when the supervisor dies instead, ParentWatch's hard
// exit (`_exit(129)` after the grace) is what ends it.
#include <teardown/parent_watch.hpp>
#include <teardown/shutdown_signals.hpp>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "console.hpp"

namespace supervisor_demo {

namespace {

// After the supervisor's death, the worker has this long to finish before ParentWatch ends it.
constexpr auto parent_death_grace = std::chrono::milliseconds(250);

[[noreturn]] void wait_forever() {
  for (;;) {
    pollfd nothing{-1, 0, 0};
    (void)::poll(&nothing, 1, -1);  // a signal handler or the hard exit ends this
  }
}

}  // namespace

int run_worker(int number, int ready_fd, bool ignore_term) {
  const std::string me = "    worker " + std::to_string(number) + " (pid " + std::to_string(::getpid()) + ")";

  std::optional<teardown::ShutdownSignals> signals;
  if (ignore_term) {
    ::signal(SIGTERM, SIG_IGN);
  } else {
    signals.emplace();
  }

  teardown::ParentWatchOptions watch_options;
  watch_options.grace = parent_death_grace;
  watch_options.on_parent_death = [me, ignore_term] {
    say(me + ": my supervisor died; noticed through ParentWatch" +
        (ignore_term ? ", SIGTERM is ignored here, so ParentWatch's hard exit ends me in 250 ms"
                     : ", shutting down"));
    teardown::raise_sigterm();  // the same path as a supervisor's SIGTERM
  };
  teardown::ParentWatch watch(watch_options);

  say(me + ": ready, watching my supervisor through " + std::string(teardown::to_string(watch.mechanism())) +
      (ignore_term ? "; I ignore SIGTERM" : ""));
  const char ready = 'r';
  if (::write(ready_fd, &ready, 1) != 1) return 2;
  ::close(ready_fd);

  if (ignore_term) wait_forever();

  signals->wait_until(teardown::Deadline::never());
  say(me + ": " + (watch.parent_alive() ? "SIGTERM from my supervisor" : "stop requested") +
      ", finished my work, exiting with 0");
  return 0;
}

}  // namespace supervisor_demo
