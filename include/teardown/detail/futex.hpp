// teardown/detail/futex.hpp — sleep on a 32-bit word until another thread changes it, with a
// deadline. Linux: the futex syscall (private, absolute CLOCK_MONOTONIC timeout, which is the
// clock behind std::chrono::steady_clock). Elsewhere: a bounded sleep-and-recheck, documented in
// docs/drain_group.md as the non-Linux degradation.
#pragma once

#include <cstdint>

#include "../core.hpp"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>
#else
#include <algorithm>
#include <thread>
#endif

namespace teardown::detail {

/// Sleeps while `*word == expected`, until woken, the deadline, or a spurious wake-up. The
/// caller re-checks its own condition and the deadline after every return: EINTR, EAGAIN (the
/// word already changed) and ETIMEDOUT all just return.
inline void futex_wait_until(std::uint32_t* word, std::uint32_t expected, Deadline deadline) noexcept {
#if defined(__linux__)
  timespec at{};
  timespec* timeout = nullptr;
  if (!deadline.is_never()) {
    const auto since_epoch = deadline.time_point().time_since_epoch();
    const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
    at.tv_sec = static_cast<time_t>(seconds.count());
    at.tv_nsec = static_cast<long>(std::chrono::nanoseconds(since_epoch - seconds).count());
    timeout = &at;
  }
  ::syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, timeout, nullptr,
            FUTEX_BITSET_MATCH_ANY);
#else
  (void)word;
  (void)expected;
  std::this_thread::sleep_for(std::min<Clock::duration>(deadline.remaining(), std::chrono::milliseconds(1)));
#endif
}

/// Wakes every thread sleeping on `word`. Only the address is used, never the memory behind it:
/// a private FUTEX_WAKE hashes the address and reads nothing, so waking through a word that
/// another thread has just freed is harmless (at worst a spurious wake-up elsewhere). DrainGroup
/// relies on this: the last leaving ticket wakes the drain after giving up its hold.
inline void futex_wake_all(std::uint32_t* word) noexcept {
#if defined(__linux__)
  ::syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

}  // namespace teardown::detail
