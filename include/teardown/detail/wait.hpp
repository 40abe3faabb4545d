// teardown/detail/wait.hpp — a condition-variable wait bounded by a Deadline that may be never.
//
// Deadline::never() is time_point::max(); rather than rely on every standard library converting
// that to its native clock without overflow, a never deadline becomes a plain wait. Components
// that wait on a condition variable with a Deadline share this one function.
#pragma once

#include <condition_variable>
#include <mutex>

#include "../core.hpp"

namespace teardown::detail {

/// Waits on `cv` (with `lock` held) until `ready()` is true or `deadline` passes; returns
/// `ready()` as last evaluated, so true always when the deadline is never.
template <class Predicate>
bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Deadline deadline,
                Predicate ready) {
  if (deadline.is_never()) {
    cv.wait(lock, ready);
    return true;
  }
  return cv.wait_until(lock, deadline.time_point(), ready);
}

}  // namespace teardown::detail
