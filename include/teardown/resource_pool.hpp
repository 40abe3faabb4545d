// teardown/resource_pool.hpp — resources shared by key and reference-counted, cleaned up a TTL
// after the last release, with nothing left pending when the pool closes.
//
//   teardown::ResourcePool<std::string, Client> clients(
//       [](const std::string& url) { return Client::connect(url); },  // first acquire of a key
//       [](const std::string&, Client& c) { c.shutdown(); },          // last release + ttl
//       std::chrono::seconds(30));
//   {
//     auto lease = clients.acquire("db:5432");   // creates, or reuses the live client
//     lease->query("select 1");
//   }                                            // last release: cleanup armed for 30 s
//   auto again = clients.acquire("db:5432");     // within 30 s: same client, timer cancelled
//   clients.close(deadline);                     // pending cleanups run now; no timer left
//
// A pending cleanup is an entry in a timer heap (O(log n) to arm or cancel), not a thread or a
// parked task, so closing or destroying the pool finalizes it at once and leaves no pending work
// anywhere. Seed 002: a parked sleep-task per pending cleanup was destroyed half-done at close.
// See docs/resource_pool.md for the contract in full.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "core.hpp"
#include "detail/timer_heap.hpp"
#include "detail/wait.hpp"

namespace teardown {

/// Arms and cancels one-shot timers for a ResourcePool.
///
/// Contract for implementations: `arm` and `cancel` never run a callback themselves (the pool
/// calls them under its lock); a callback runs at most once, on a thread that holds none of the
/// scheduler's locks; `cancel` returns true only if the callback will never run, and false once
/// it has been taken to run (it may be running, or about to). `pending()` counts timers armed
/// and neither fired nor cancelled. Implementations are thread-safe.
class Scheduler {
 public:
  using TimerId = std::uint64_t;  // 0 is never a valid id

  Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  virtual ~Scheduler() = default;

  /// Runs `callback` once, `delay` from now. May throw (e.g. std::bad_alloc).
  virtual TimerId arm(Clock::duration delay, std::function<void()> callback) = 0;
  /// Cancels `timer` in O(log n); true if its callback will never run.
  virtual bool cancel(TimerId timer) noexcept = 0;
  /// Timers armed and neither fired nor cancelled.
  [[nodiscard]] virtual std::size_t pending() const noexcept = 0;
};

namespace detail {
using SchedulerHeap = TimerHeap<Clock::time_point, std::function<void()>>;

inline void run_timer_callback(std::function<void()>& callback) noexcept {
  call_reporting("teardown::Scheduler: a timer callback threw", callback);
}
}  // namespace detail

/// The default Scheduler: one thread that sleeps until the earliest timer is due, on `Clock`.
///
///   teardown::TimerThread timers;                 // or teardown::default_scheduler()
///   auto id = timers.arm(std::chrono::seconds(5), [] { ... });
///   timers.cancel(id);                            // O(log n); true: it will never run
///
/// The thread starts on the first `arm`, so a process that never arms a timer never has it.
/// Callbacks run one at a time on that thread, outside the scheduler's lock. Thread-safe; not
/// async-signal-safe. Fork: the child inherits the timers but not the thread, so arm nothing on
/// an inherited TimerThread in a child (give the child its own). Destructor: stops and joins the
/// thread; timers still pending are dropped without running (a ResourcePool never leaves any).
class TimerThread final : public Scheduler {
 public:
  TimerThread() = default;

  ~TimerThread() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (!thread_.joinable()) return;
    // exit() called inside a timer callback destroys the default scheduler on its own thread.
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  TimerId arm(Clock::duration delay, std::function<void()> callback) override {
    const auto when = Deadline::after(delay).time_point();  // saturates: a huge delay is never
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    const TimerId id = timers_.push(when, std::move(callback));
    // Wake the thread only when it would otherwise sleep past this timer: re-arming a TTL that
    // was just cancelled (the common case) then costs no context switch.
    if (when < sleeping_until_) wake_.notify_one();
    return id;
  }

  bool cancel(TimerId timer) noexcept override {
    std::lock_guard lock(mutex_);
    return timers_.erase(timer);  // no need to wake the thread: it re-checks when it wakes
  }

  [[nodiscard]] std::size_t pending() const noexcept override {
    std::lock_guard lock(mutex_);
    return timers_.size();
  }

 private:
  void run() noexcept {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (timers_.empty() || timers_.next_due() == Clock::time_point::max()) {
        sleeping_until_ = Clock::time_point::max();
        wake_.wait(lock);
      } else if (Clock::now() < timers_.next_due()) {
        sleeping_until_ = timers_.next_due();
        wake_.wait_until(lock, sleeping_until_);
      } else {
        sleeping_until_ = Clock::time_point::min();  // running callbacks: no wake-up needed
        auto fired = timers_.pop();
        lock.unlock();
        detail::run_timer_callback(fired.payload);
        fired.payload = nullptr;  // destroy the callback's captures outside the lock too
        lock.lock();
      }
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  detail::SchedulerHeap timers_;
  bool stopping_ = false;
  // When the thread wakes up on its own; min() while it is awake and will look at the heap.
  Clock::time_point sleeping_until_ = Clock::time_point::min();
  std::thread thread_;
};

/// A Scheduler whose time moves only when a test says so: deterministic TTL tests, no sleeps.
///
///   teardown::ManualScheduler timers;
///   teardown::ResourcePool<int, int> pool(create, finalize, std::chrono::seconds(10), timers);
///   timers.advance(std::chrono::seconds(10));   // due timers run here, in due order
///
/// `now()` starts at `Clock::time_point{}`. `advance` moves time forward timer by timer: each
/// due callback runs (on the calling thread, outside the scheduler's lock) with `now()` equal to
/// its due time, then time reaches the target. Thread-safe. Destructor: drops pending timers.
class ManualScheduler final : public Scheduler {
 public:
  TimerId arm(Clock::duration delay, std::function<void()> callback) override {
    std::lock_guard lock(mutex_);
    const auto headroom = Clock::time_point::max() - now_;
    const auto when =
        delay >= headroom ? Clock::time_point::max() : now_ + std::max(delay, Clock::duration{});
    return timers_.push(when, std::move(callback));
  }

  bool cancel(TimerId timer) noexcept override {
    std::lock_guard lock(mutex_);
    return timers_.erase(timer);
  }

  [[nodiscard]] std::size_t pending() const noexcept override {
    std::lock_guard lock(mutex_);
    return timers_.size();
  }

  [[nodiscard]] Clock::time_point now() const noexcept {
    std::lock_guard lock(mutex_);
    return now_;
  }

  /// Moves time forward by `by`, running every timer that falls due on the way.
  void advance(Clock::duration by) {
    std::unique_lock lock(mutex_);
    const auto step = std::max(by, Clock::duration{});
    const auto headroom = Clock::time_point::max() - now_;
    const auto target = step >= headroom ? Clock::time_point::max() : now_ + step;  // saturates like arm
    while (!timers_.empty() && timers_.next_due() <= target) {
      auto fired = timers_.pop();
      now_ = std::max(now_, fired.when);
      lock.unlock();
      detail::run_timer_callback(fired.payload);
      fired.payload = nullptr;
      lock.lock();
    }
    now_ = std::max(now_, target);
  }

 private:
  mutable std::mutex mutex_;
  detail::SchedulerHeap timers_;
  Clock::time_point now_{};
};

/// The process-wide TimerThread used by pools that name no scheduler. Constructed on first use,
/// so it outlives every pool constructed with it (static pools included).
inline Scheduler& default_scheduler() {
  static TimerThread scheduler;
  return scheduler;
}

/// Thrown by `ResourcePool::acquire` once the pool is closed. A `teardown::Closed` (logic_error).
class PoolClosed : public Closed {
 public:
  PoolClosed() : Closed("teardown::ResourcePool::acquire: the pool is closed") {}
};

namespace detail {

/// ResourcePool's state, at a stable address: leases and timer callbacks point here, so the
/// pool itself can move (e.g. into a TeardownStack). Documented on ResourcePool.
template <class Key, class T, class Hash, class KeyEqual>
class PoolCore {
  struct Entry;
  using Map = std::unordered_map<Key, Entry, Hash, KeyEqual>;
  using Node = typename Map::value_type;

 public:
  using Create = std::function<T(const Key&)>;
  using Finalize = std::function<void(const Key&, T&)>;

  class Lease {
   public:
    Lease() noexcept = default;
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), node_(std::exchange(other.node_, nullptr)) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        reset();
        pool_ = std::exchange(other.pool_, nullptr);
        node_ = std::exchange(other.node_, nullptr);
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { reset(); }

    /// The leased resource. Throws std::logic_error on an empty (moved-from or reset) lease.
    [[nodiscard]] T& get() const { return *checked_node().second.value; }
    T* operator->() const { return &get(); }
    T& operator*() const { return get(); }
    /// The key this lease was acquired for. Throws std::logic_error on an empty lease.
    [[nodiscard]] const Key& key() const { return checked_node().first; }
    [[nodiscard]] explicit operator bool() const noexcept { return node_ != nullptr; }

    /// Releases now; the lease becomes empty. No effect on an empty lease.
    void reset() noexcept {
      if (node_ == nullptr) return;
      std::exchange(pool_, nullptr)->release(*std::exchange(node_, nullptr));
    }

   private:
    friend class PoolCore;
    Lease(PoolCore* pool, Node* node) noexcept : pool_(pool), node_(node) {}
    Node& checked_node() const {
      if (node_ == nullptr)
        throw std::logic_error("teardown::ResourcePool::Lease: the lease is empty (moved from or reset)");
      return *node_;
    }

    PoolCore* pool_ = nullptr;
    Node* node_ = nullptr;
  };

  PoolCore(Create create, Finalize finalize, Clock::duration ttl, Scheduler& scheduler)
      : create_(std::move(create)), finalize_(std::move(finalize)), ttl_(ttl), scheduler_(&scheduler) {
    if (!create_) throw std::invalid_argument("teardown::ResourcePool: the Create callable is empty");
    if (!finalize_) throw std::invalid_argument("teardown::ResourcePool: the Finalize callable is empty");
    if (ttl_ < Clock::duration::zero())
      throw std::invalid_argument("teardown::ResourcePool: the ttl is negative (" +
                                  std::to_string(ttl_.count()) +
                                  " ticks); use 0 to finalize on the last release");
  }

  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  ~PoolCore() {
    close(Deadline::never());
    std::lock_guard lock(mutex_);
    if (live_ != 0) {
      report_error(std::make_exception_ptr(std::logic_error(
                       "teardown::ResourcePool destroyed with " + std::to_string(live_) +
                       " entries still leased: their Lease objects now dangle and Finalize will not run")),
                   "teardown::ResourcePool::~ResourcePool");
    }
  }

  [[nodiscard]] Lease acquire(const Key& key) {
    std::unique_lock lock(mutex_);
    while (true) {
      if (closed_) throw PoolClosed();
      auto found = entries_.find(key);
      if (found == entries_.end()) return create_entry(lock, *entries_.try_emplace(key, this).first);
      Entry& entry = found->second;
      switch (entry.state) {
        case State::live:
          if (entry.leases == 0) cancel_cleanup(entry);
          ++entry.leases;
          return Lease(this, &*found);
        case State::retired:
          return create_entry(lock, *found);
        case State::creating:
        case State::finalizing:
        case State::condemned:
          // A running Create is shared once it succeeds; a running cleanup finishes first and
          // this acquire then creates a fresh resource.
          changed_.wait(lock);
          break;
      }
    }
  }

  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mutex_);
    return live_;
  }

  [[nodiscard]] std::size_t leases(const Key& key) const {
    std::lock_guard lock(mutex_);
    const auto found = entries_.find(key);
    return found == entries_.end() || found->second.state != State::live ? 0 : found->second.leases;
  }

  void clear(const Key& key) {
    std::unique_lock lock(mutex_);
    bool waited_for_cleanup = false;
    while (true) {
      auto found = entries_.find(key);
      const bool absent = found == entries_.end() || found->second.state == State::retired;
      if (waited_for_cleanup && (absent || found->second.state != State::finalizing)) return;
      if (absent) throw std::out_of_range("teardown::ResourcePool::clear: no entry for this key");
      Entry& entry = found->second;
      switch (entry.state) {
        case State::live:
          if (entry.leases != 0) {
            throw std::logic_error("teardown::ResourcePool::clear: the entry is still leased (" +
                                   std::to_string(entry.leases) + " leases); release them first");
          }
          cancel_cleanup(entry);
          return finalize_now(lock, *found);
        case State::finalizing:
        case State::condemned:
          waited_for_cleanup = true;
          changed_.wait(lock);
          break;
        case State::creating:  // it is about to be leased, or to disappear: wait and see
          changed_.wait(lock);
          break;
        case State::retired:
          break;  // handled as absent above
      }
    }
  }

  void close(Deadline deadline = Deadline::never()) {
    std::unique_lock lock(mutex_);
    closed_ = true;
    for (auto& node : entries_) {
      Entry& entry = node.second;
      if (entry.state != State::live || entry.leases != 0) continue;
      cancel_cleanup(entry);
      entry.state = State::condemned;
      --live_;
      ++condemned_;
    }
    // No entry is inserted once closed_ is set, so the iterator survives the unlocked Finalize
    // calls: only this loop retires a condemned entry, and erasing others does not move it.
    for (auto next = entries_.begin(); next != entries_.end();) {
      Node& node = *next;
      if (node.second.state != State::condemned) {
        ++next;
        continue;
      }
      node.second.state = State::finalizing;
      lock.unlock();
      run_finalize(node);
      lock.lock();
      ++next;
      --condemned_;
      retire(node);
      changed_.notify_all();
    }
    const auto quiet = [this] { return callbacks_outstanding_ == 0 && condemned_ == 0; };
    detail::wait_until(changed_, lock, deadline, quiet);
  }

  [[nodiscard]] bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }

 private:
  enum class State : unsigned char {
    creating,    // Create is running on some thread, outside the lock
    live,        // leased, or idle and waiting out its ttl
    condemned,   // idle when close() began; close() finalizes it
    finalizing,  // Finalize is running on some thread, outside the lock
    retired,     // finalized; kept only until stale timer callbacks that point at it have run
  };

  struct Entry {
    explicit Entry(PoolCore* owner) noexcept : pool(owner) {}
    PoolCore* pool;  // lets a two-pointer timer callback find the pool (no allocation)
    std::optional<T> value;
    std::size_t leases = 0;
    State state = State::creating;
    Scheduler::TimerId timer = 0;     // the pending cleanup; 0 when none
    std::uint64_t expiry_serial = 0;  // tells the pending cleanup's callback from stale ones
    std::size_t stale_expiries = 0;   // fired callbacks, not yet run, whose cancel came too late
  };

  Lease create_entry(std::unique_lock<std::mutex>& lock, Node& node) {
    Entry& entry = node.second;
    entry.state = State::creating;
    lock.unlock();
    try {
      entry.value.emplace(create_(node.first));  // only this thread touches a creating entry
    } catch (...) {
      lock.lock();
      retire(node);
      changed_.notify_all();
      throw;
    }
    lock.lock();
    entry.state = State::live;
    entry.leases = 1;
    ++live_;
    changed_.notify_all();
    return Lease(this, &node);
  }

  void release(Node& node) noexcept {
    std::unique_lock lock(mutex_);
    Entry& entry = node.second;
    if (--entry.leases != 0) return;
    if (!closed_ && ttl_ != Clock::duration::zero()) {
      try {
        const std::uint64_t serial = ++expiry_serials_;
        Node* target = &node;
        entry.timer =
            scheduler_->arm(ttl_, [target, serial] { target->second.pool->expire(*target, serial); });
        entry.expiry_serial = serial;
        ++callbacks_outstanding_;
        return;
      } catch (...) {
        report_error(std::current_exception(),
                     "teardown::ResourcePool: arming the TTL cleanup failed; finalizing at once");
      }
    }
    finalize_now(lock, node);
  }

  // Runs on the scheduler's thread when a timer fires.
  void expire(Node& node, std::uint64_t serial) noexcept {
    std::unique_lock lock(mutex_);
    Entry& entry = node.second;
    if (entry.timer != 0 && entry.expiry_serial == serial) {
      entry.timer = 0;
      finalize_now(lock, node);  // may erase the node: not touched again below
    } else if (--entry.stale_expiries == 0 && entry.state == State::retired) {
      erase(node);
    }
    --callbacks_outstanding_;
    changed_.notify_all();  // under the lock: a closing thread cannot destroy *this before we unlock
  }

  // Precondition: locked; entry live, idle, with no pending timer.
  void finalize_now(std::unique_lock<std::mutex>& lock, Node& node) noexcept {
    node.second.state = State::finalizing;
    --live_;
    lock.unlock();
    run_finalize(node);
    lock.lock();
    retire(node);
    changed_.notify_all();
  }

  // Outside the lock; the entry is finalizing, so no other thread touches its value.
  void run_finalize(Node& node) noexcept {
    detail::call_reporting("teardown::ResourcePool: Finalize threw (the entry is removed anyway)", finalize_,
                           node.first, *node.second.value);
    node.second.value.reset();  // T's destructor is user code too: also outside the lock
  }

  // Under the lock. A timer callback that was already taken to run still points at the entry:
  // cancel() returned false, so the entry stays (retired) until that callback has run.
  void cancel_cleanup(Entry& entry) noexcept {
    if (entry.timer == 0) return;
    if (scheduler_->cancel(entry.timer)) {
      --callbacks_outstanding_;
    } else {
      ++entry.stale_expiries;
    }
    entry.timer = 0;
  }

  void retire(Node& node) noexcept {
    node.second.state = State::retired;
    if (node.second.stale_expiries == 0) erase(node);
  }

  void erase(Node& node) noexcept { entries_.erase(entries_.find(node.first)); }

  Create create_;
  Finalize finalize_;
  Clock::duration ttl_;
  Scheduler* scheduler_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // an entry changed state, or a timer callback finished
  Map entries_;
  std::size_t live_ = 0;
  std::size_t condemned_ = 0;
  std::size_t callbacks_outstanding_ = 0;  // armed timers not cancelled in time and not yet run
  std::uint64_t expiry_serials_ = 0;
  bool closed_ = false;
};

}  // namespace detail

/// Resources shared by key, reference-counted by leases, finalized `ttl` after the last release.
///
///   ResourcePool<Key, T> pool(create, finalize, ttl);   // ttl 0: finalize on the last release
///   { auto lease = pool.acquire(key); lease->use(); }   // Lease: move-only, releases when destroyed
///   pool.clear(key);                                    // finalize an idle entry now
///   pool.close(deadline);                               // Closeable: pending cleanups run now
///
/// `Create` and `Finalize` never run under the pool's lock; `Finalize` runs once per created
/// resource, never while leased, never before its ttl (unless `clear`ed or closed). A cleanup
/// already running finishes before a re-acquire of its key creates a fresh resource, so a
/// `Finalize` must not call close(), destroy the pool, or clear()/acquire() its own key
/// (deadlock: each waits for that `Finalize`). Thread-safe. Not async-signal-safe. Fork: a child must not use
/// a pool inherited mid-operation. Movable (leases stay valid), so a TeardownStack can adopt it. Destructor:
/// `close(Deadline::never())`; no timer, thread or callback refers to the pool afterwards.
/// Leases must not outlive the pool (reported to the error handler if they do); the scheduler
/// must outlive it.
template <class Key, class T, class Hash = std::hash<Key>, class KeyEqual = std::equal_to<Key>>
class ResourcePool {
  static_assert(std::is_move_constructible_v<T>,
                "teardown::ResourcePool<Key, T>: T must be move constructible, because Create returns "
                "it by value; pool a std::unique_ptr<T> for a type that cannot move");
  static_assert(std::is_copy_constructible_v<Key>,
                "teardown::ResourcePool<Key, T>: Key must be copy constructible: the pool keeps a copy "
                "of each key it holds");
  static_assert(std::is_invocable_r_v<std::size_t, const Hash&, const Key&>,
                "teardown::ResourcePool<Key, T, Hash>: Hash must hash a const Key& to std::size_t "
                "(specialise std::hash<Key> or pass a Hash type)");

  using Core = detail::PoolCore<Key, T, Hash, KeyEqual>;

 public:
  using Create = typename Core::Create;
  using Finalize = typename Core::Finalize;
  /// A share of one pooled resource. Move-only; the moved-from lease is empty. Releasing the
  /// last lease of a key arms its cleanup (or finalizes at once when the ttl is 0 or the pool is
  /// closed, on the releasing thread). One lease belongs to one thread at a time.
  using Lease = typename Core::Lease;

  /// `create` builds the resource on the first acquire of a key; `finalize` is called once for
  /// it, `ttl` after its last release. Throws std::invalid_argument for an empty callable or a
  /// negative ttl.
  explicit ResourcePool(Create create, Finalize finalize, Clock::duration ttl = {},
                        Scheduler& scheduler = default_scheduler())
      : core_(std::make_unique<Core>(std::move(create), std::move(finalize), ttl, scheduler)) {}

  /// Moving keeps every lease and pending cleanup valid (they refer to the shared state). The
  /// moved-from pool is closed and empty: acquire/clear throw std::logic_error.
  ResourcePool(ResourcePool&&) noexcept = default;
  /// Destroys (closes) this pool's state first, then takes `other`'s.
  ResourcePool& operator=(ResourcePool&&) noexcept = default;
  ~ResourcePool() = default;

  /// A lease on `key`'s resource: creates it if absent (Create's exception propagates and leaves
  /// no entry), or reuses the live one and cancels its pending cleanup. Waits while a Create or
  /// Finalize of the same key is running. Throws PoolClosed (a teardown::Closed) once the pool
  /// is closed.
  [[nodiscard]] Lease acquire(const Key& key) { return core("acquire").acquire(key); }

  /// Live entries: leased, or waiting out their ttl.
  [[nodiscard]] std::size_t size() const { return core_ ? core_->size() : 0; }

  /// Leases held on `key`; 0 if absent.
  [[nodiscard]] std::size_t leases(const Key& key) const { return core_ ? core_->leases(key) : 0; }

  /// Finalizes `key`'s idle entry now, cancelling its pending cleanup. If that cleanup is
  /// already running, waits for it and returns (the resource is finalized once, not twice).
  /// Throws std::out_of_range if there is no entry, std::logic_error if it is still leased.
  void clear(const Key& key) { core("clear").clear(key); }

  /// Closeable: finalizes every entry waiting out its ttl now, on this thread, and cancels its
  /// timer; waits (until `deadline`) for a cleanup already running on the scheduler. Leased
  /// entries are finalized when their last lease is released. Later acquires throw. Idempotent.
  /// Finalize runs whatever the deadline: it is not interruptible, and skipping it would leak.
  void close(Deadline deadline = Deadline::never()) {
    if (core_) core_->close(deadline);
  }

  [[nodiscard]] bool closed() const { return !core_ || core_->closed(); }

 private:
  Core& core(const char* operation) const {
    if (!core_) {
      throw std::logic_error(std::string("teardown::ResourcePool::") + operation +
                             ": the pool was moved from");
    }
    return *core_;
  }

  std::unique_ptr<Core> core_;
};

}  // namespace teardown
