// A ResourcePool driven by a sequence of operations on a ManualScheduler, run for real and
// predicted by a small model. Shared by the rapidcheck property
// (tests/property/resource_pool.property.cpp) and the fuzz harness (fuzz/resource_pool.cpp),
// which build plans from generated values and from bytes.
//
// Time is counted in ticks of 1 ms. Keys are 0..3. Resources carry a serial (the n-th successful
// Create); Finalize throws for every serial ≡ 2 (mod 3), so the error handler is exercised too.
// After every operation the runner's observation (result, resources finalized by that operation
// and when, size, leases per key, timers pending, errors reported) must equal the model's.
// At the end every lease is released and the pool closed (or destroyed); every created resource
// must then have been finalized exactly once, never while a lease on it was alive, and no timer
// may remain armed.
#pragma once

#include <teardown/resource_pool.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace teardown_test::resource_pool_model {

constexpr int key_count = 4;
using Tick = std::chrono::milliseconds;

enum class OpKind : unsigned char { acquire, acquire_failing_create, release, clear, advance, close };

struct Op {
  OpKind kind = OpKind::acquire;
  int key = 0;            // acquire, clear: 0..key_count-1
  std::size_t lease = 0;  // release: index into the leases held, modulo their number
  int ticks = 0;          // advance
};

struct Plan {
  int ttl_ticks = 0;
  std::vector<Op> ops;
  bool destroy_instead_of_close = false;  // end by the destructor rather than close()
};

enum class Result { ok, create_failed, out_of_range, logic_error, no_lease };

struct Finalization {
  int serial;
  long tick;
  friend auto operator<=>(const Finalization&, const Finalization&) = default;
};

struct Observation {
  Result result = Result::ok;
  int serial = -1;                      // acquire: the leased resource's serial
  std::vector<Finalization> finalized;  // by this operation, sorted
  std::size_t size = 0;
  std::array<std::size_t, key_count> leases{};
  std::size_t pending_timers = 0;
  int errors_reported = 0;  // since the start
  friend bool operator==(const Observation&, const Observation&) = default;
};

inline bool finalize_throws(int serial) { return serial % 3 == 2; }

/// What the contract says happens.
class Model {
 public:
  explicit Model(int ttl_ticks) : ttl_(ttl_ticks) {}

  Observation step(const Op& op) {
    Observation seen;
    switch (op.kind) {
      case OpKind::acquire:
      case OpKind::acquire_failing_create:
        seen.result = acquire(op.key, op.kind == OpKind::acquire_failing_create, seen);
        break;
      case OpKind::release:
        if (held_.empty()) {
          seen.result = Result::no_lease;
        } else {
          release(static_cast<std::size_t>(op.lease % held_.size()), seen);
        }
        break;
      case OpKind::clear:
        seen.result = clear(op.key, seen);
        break;
      case OpKind::advance:
        advance(op.ticks, seen);
        break;
      case OpKind::close:
        close(seen);
        break;
    }
    return observe(std::move(seen));
  }

  /// Releases every lease (oldest first), then closes; what that finalizes.
  Observation finish() {
    Observation seen;
    while (!held_.empty()) release(0, seen);
    close(seen);
    return observe(std::move(seen));
  }

 private:
  struct Entry {
    int serial = -1;
    std::size_t leases = 0;
    std::optional<long> expiry;  // while waiting out the ttl
    unsigned long armed_order = 0;
  };

  Result acquire(int key, bool create_fails, Observation& seen) {
    if (closed_) return Result::logic_error;
    auto found = entries_.find(key);
    if (found == entries_.end()) {
      if (create_fails) return Result::create_failed;
      Entry created;
      created.serial = next_serial_++;
      found = entries_.emplace(key, created).first;
    }
    Entry& entry = found->second;
    entry.expiry.reset();
    ++entry.leases;
    held_.push_back(key);
    seen.serial = entry.serial;
    return Result::ok;
  }

  void release(std::size_t index, Observation& seen) {
    const int key = held_[index];
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(index));
    Entry& entry = entries_.at(key);
    if (--entry.leases != 0) return;
    if (closed_ || ttl_ == 0) return finalize(key, seen);
    entry.expiry = now_ + ttl_;
    entry.armed_order = next_armed_order_++;
  }

  Result clear(int key, Observation& seen) {
    const auto found = entries_.find(key);
    if (found == entries_.end()) return Result::out_of_range;
    if (found->second.leases != 0) return Result::logic_error;
    finalize(key, seen);
    return Result::ok;
  }

  void advance(int ticks, Observation& seen) {
    const long target = now_ + ticks;
    while (true) {
      // The next timer due, earliest first and, on a tie, first armed.
      std::optional<int> due_key;
      for (const auto& [key, entry] : entries_) {
        if (!entry.expiry || *entry.expiry > target) continue;
        if (!due_key) {
          due_key = key;
          continue;
        }
        const Entry& best = entries_.at(*due_key);
        if (std::tie(*entry.expiry, entry.armed_order) < std::tie(*best.expiry, best.armed_order))
          due_key = key;
      }
      if (!due_key) break;
      now_ = *entries_.at(*due_key).expiry;
      finalize(*due_key, seen);
    }
    now_ = target;
  }

  void close(Observation& seen) {
    closed_ = true;
    std::vector<int> idle;
    for (const auto& [key, entry] : entries_)
      if (entry.leases == 0) idle.push_back(key);
    for (int key : idle) finalize(key, seen);
  }

  void finalize(int key, Observation& seen) {
    const int serial = entries_.at(key).serial;
    seen.finalized.push_back({serial, now_});
    if (finalize_throws(serial)) ++errors_;
    entries_.erase(key);
  }

  Observation observe(Observation seen) const {
    std::sort(seen.finalized.begin(), seen.finalized.end());
    seen.size = entries_.size();
    for (const auto& [key, entry] : entries_) seen.leases[static_cast<std::size_t>(key)] = entry.leases;
    seen.pending_timers = 0;
    for (const auto& [key, entry] : entries_)
      if (entry.expiry) ++seen.pending_timers;
    seen.errors_reported = errors_;
    return seen;
  }

  int ttl_;
  long now_ = 0;
  bool closed_ = false;
  int next_serial_ = 0;
  unsigned long next_armed_order_ = 0;
  int errors_ = 0;
  std::map<int, Entry> entries_;
  std::vector<int> held_;  // the key of each lease held, oldest first
};

struct Resource {
  int serial;
  int key;
};
struct CreateFailed {};
struct FinalizeFailed : std::runtime_error {
  FinalizeFailed() : std::runtime_error("finalize failed (planned)") {}
};

/// The real pool, on a ManualScheduler, checking what the model cannot see: Finalize never runs
/// while a lease on its resource is alive, and always gets the resource's own key.
class Runner {
 public:
  explicit Runner(int ttl_ticks)
      : previous_handler_(
            teardown::set_error_handler([this](std::exception_ptr, std::string_view) { ++errors_; })) {
    pool_.emplace(
        [this](const int& key) {
          if (fail_create_) throw CreateFailed{};
          holders_.push_back(0);
          finalizations_.push_back(0);
          return Resource{next_serial_++, key};
        },
        [this](const int& key, Resource& resource) {
          if (holders_[static_cast<std::size_t>(resource.serial)] != 0)
            violation("Finalize ran while a lease was alive", resource.serial);
          if (key != resource.key) violation("Finalize got another resource's key", resource.serial);
          ++finalizations_[static_cast<std::size_t>(resource.serial)];
          finalized_.push_back({resource.serial, now()});
          if (finalize_throws(resource.serial)) throw FinalizeFailed{};
        },
        Tick(ttl_ticks), timers_);
  }
  ~Runner() {
    held_.clear();
    pool_.reset();
    teardown::set_error_handler(previous_handler_);
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  Observation step(const Op& op) {
    Observation seen;
    switch (op.kind) {
      case OpKind::acquire:
      case OpKind::acquire_failing_create:
        fail_create_ = op.kind == OpKind::acquire_failing_create;
        try {
          auto lease = pool_->acquire(op.key);
          seen.serial = lease->serial;
          ++holders_[static_cast<std::size_t>(seen.serial)];
          held_.push_back(std::move(lease));
        } catch (const CreateFailed&) {
          seen.result = Result::create_failed;
        } catch (const std::logic_error&) {
          seen.result = Result::logic_error;
        }
        break;
      case OpKind::release:
        if (held_.empty()) {
          seen.result = Result::no_lease;
        } else {
          release(static_cast<std::size_t>(op.lease % held_.size()));
        }
        break;
      case OpKind::clear:
        try {
          pool_->clear(op.key);
        } catch (const std::out_of_range&) {
          seen.result = Result::out_of_range;
        } catch (const std::logic_error&) {
          seen.result = Result::logic_error;
        }
        break;
      case OpKind::advance:
        timers_.advance(Tick(op.ticks));
        break;
      case OpKind::close:
        pool_->close(teardown::Deadline::never());
        break;
    }
    return observe(std::move(seen));
  }

  /// Releases every lease (oldest first), then closes or destroys the pool.
  Observation finish(bool destroy) {
    while (!held_.empty()) release(0);
    Observation seen;
    if (destroy) {
      pool_.reset();
      seen.finalized = take_finalized();
      seen.pending_timers = timers_.pending();
      seen.errors_reported = errors_;
      return seen;
    }
    pool_->close(teardown::Deadline::never());
    return observe(std::move(seen));
  }

  /// Every resource ever created was finalized exactly once; "" when so.
  std::string check_exactly_once() const {
    for (std::size_t serial = 0; serial < finalizations_.size(); ++serial) {
      if (finalizations_[serial] != 1)
        return "resource " + std::to_string(serial) + " was finalized " +
               std::to_string(finalizations_[serial]) + " times";
    }
    return violations_;
  }

 private:
  void release(std::size_t index) {
    const auto serial = static_cast<std::size_t>(held_[index]->serial);
    --holders_[serial];  // before the release: Finalize may run inside it
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(index));
  }

  long now() const {
    return static_cast<long>(std::chrono::duration_cast<Tick>(timers_.now() - start_).count());
  }

  void violation(const char* what, int serial) {
    violations_ += std::string(what) + " (resource " + std::to_string(serial) + "); ";
  }

  std::vector<Finalization> take_finalized() {
    std::vector<Finalization> taken;
    taken.swap(finalized_);
    std::sort(taken.begin(), taken.end());
    return taken;
  }

  Observation observe(Observation seen) {
    seen.finalized = take_finalized();
    seen.size = pool_->size();
    for (int key = 0; key < key_count; ++key) seen.leases[static_cast<std::size_t>(key)] = pool_->leases(key);
    seen.pending_timers = timers_.pending();
    seen.errors_reported = errors_;
    return seen;
  }

  int errors_ = 0;
  teardown::ErrorHandler previous_handler_;
  teardown::ManualScheduler timers_;
  teardown::Clock::time_point start_ = timers_.now();
  std::optional<teardown::ResourcePool<int, Resource>> pool_;
  std::vector<teardown::ResourcePool<int, Resource>::Lease> held_;
  bool fail_create_ = false;
  int next_serial_ = 0;
  std::vector<int> holders_;        // per serial: leases alive on it
  std::vector<int> finalizations_;  // per serial
  std::vector<Finalization> finalized_;
  std::string violations_;
};

inline std::ostream& operator<<(std::ostream& out, const Op& op) {
  switch (op.kind) {
    case OpKind::acquire:
      return out << "acquire(" << op.key << ")";
    case OpKind::acquire_failing_create:
      return out << "acquire(" << op.key << ", Create throws)";
    case OpKind::release:
      return out << "release(#" << op.lease << ")";
    case OpKind::clear:
      return out << "clear(" << op.key << ")";
    case OpKind::advance:
      return out << "advance(" << op.ticks << " ticks)";
    case OpKind::close:
      return out << "close()";
  }
  return out;
}

inline std::ostream& operator<<(std::ostream& out, const Observation& seen) {
  static const char* const results[] = {"ok", "create_failed", "out_of_range", "logic_error", "no_lease"};
  out << "{" << results[static_cast<int>(seen.result)] << " serial=" << seen.serial << " finalized=[";
  for (const auto& f : seen.finalized) out << " " << f.serial << "@" << f.tick;
  out << " ] size=" << seen.size << " leases=";
  for (auto count : seen.leases) out << count << ",";
  return out << " pending=" << seen.pending_timers << " errors=" << seen.errors_reported << "}";
}

/// Runs `plan` against the model; "" when they agree, else what differed and where.
inline std::string check(const Plan& plan) {
  Model model(plan.ttl_ticks);
  Runner runner(plan.ttl_ticks);
  std::ostringstream failure;
  for (std::size_t i = 0; i < plan.ops.size(); ++i) {
    const Observation expected = model.step(plan.ops[i]);
    const Observation actual = runner.step(plan.ops[i]);
    if (!(actual == expected)) {
      failure << "step " << i << " " << plan.ops[i] << ": expected " << expected << ", got " << actual;
      return failure.str();
    }
  }
  Observation expected = model.finish();
  const Observation actual = runner.finish(plan.destroy_instead_of_close);
  if (plan.destroy_instead_of_close) {  // the pool is gone: nothing left to count but what it did
    expected.size = 0;
    expected.leases = {};
  }
  if (!(actual == expected)) {
    failure << "finish (" << (plan.destroy_instead_of_close ? "destroy" : "close") << "): expected "
            << expected << ", got " << actual;
    return failure.str();
  }
  if (actual.pending_timers != 0) return "timers still pending after the pool closed";
  return runner.check_exactly_once();
}

}  // namespace teardown_test::resource_pool_model
