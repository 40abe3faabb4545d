// ready_pipe.hpp — how the supervisor learns that its workers are up: each worker writes one byte
// to a pipe it inherited; the supervisor waits for all of them against one deadline.
#pragma once

#include <teardown/core.hpp>
#include <teardown/detail/fd.hpp>

#include <poll.h>
#include <unistd.h>

#include <stdexcept>

namespace supervisor_demo {

/// Waits until `count` workers wrote their ready byte to `read_fd`, all by `deadline` (not per
/// byte). Throws when the deadline passes or a worker exits first (EOF: every write end closed).
inline void wait_for_ready_bytes(int read_fd, int count, teardown::Deadline deadline) {
  for (int ready = 0; ready < count;) {
    pollfd readable{read_fd, POLLIN, 0};
    // poll_until restarts on EINTR (a Ctrl-C during startup) with the time that is left.
    if (teardown::detail::poll_until(&readable, 1, deadline.time_point()) <= 0)
      throw std::runtime_error("the workers did not report ready in time");
    char byte = 0;
    const ssize_t got = teardown::detail::retry_eintr([&] { return ::read(read_fd, &byte, 1); });
    if (got == 0) throw std::runtime_error("a worker exited before reporting ready");
    if (got == 1) ++ready;
  }
}

}  // namespace supervisor_demo
