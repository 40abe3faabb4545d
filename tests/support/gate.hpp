// A one-shot gate for tests: threads wait until it opens (or their stop token fires, or a
// generous deadline passes). Tests synchronise on it instead of sleeping.
#pragma once

#include <teardown/core.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace teardown_test {

class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);  // notify under the lock: a waiter may destroy the gate next
    open_ = true;
    opened_.notify_all();
  }

  [[nodiscard]] bool is_open() const {
    std::lock_guard lock(mutex_);
    return open_;
  }

  /// Waits until the gate opens or `budget` passes; true if it opened.
  bool wait(std::chrono::milliseconds budget = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return opened_.wait_for(lock, budget, [&] { return open_; });
  }

  /// Waits until the gate opens or stop is requested; true if it opened.
  bool wait(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    return opened_.wait(lock, stop, [&] { return open_; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable_any opened_;
  bool open_ = false;
};

}  // namespace teardown_test
