#include <teardown/resource_pool.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"
#include "support/gate.hpp"

// Pools and schedulers live on the heap in these tests: TSan names a mutex by its address and
// std::mutex's destructor does not tell it the mutex died, so two tests' stack objects at one
// address would look like one mutex taken in both orders (a false lock-order inversion).

using namespace std::chrono_literals;
using teardown::ManualScheduler;
using teardown::ResourcePool;
using teardown_test::Gate;

namespace {

constexpr auto generous = 10s;

long current_tid() { return static_cast<long>(::syscall(SYS_gettid)); }

/// Waits until thread `tid` sleeps in the kernel (state S/D in /proc): a thread that announced
/// it is about to call into the pool and is now asleep is waiting inside the pool.
bool wait_until_blocked(long tid) {
  const auto until = std::chrono::steady_clock::now() + generous;
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream stat(path);
    std::string line;
    std::getline(stat, line);
    const auto paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size()) {
      const char state = line[paren + 2];
      if (state == 'S' || state == 'D') return true;
    }
    std::this_thread::yield();
  }
  return false;
}

/// A resource that knows which creation it came from.
struct Resource {
  int serial;
};

/// Counts creations and finalizations, per serial.
struct Ledger {
  std::mutex mutex;
  int created = 0;
  std::vector<int> finalized;  // serials, in order

  ResourcePool<int, Resource>::Create create() {
    return [this](const int&) {
      std::lock_guard lock(mutex);
      return Resource{created++};
    };
  }
  ResourcePool<int, Resource>::Finalize finalize() {
    return [this](const int&, Resource& resource) {
      std::lock_guard lock(mutex);
      finalized.push_back(resource.serial);
    };
  }
  std::vector<int> finalized_now() {
    std::lock_guard lock(mutex);
    return finalized;
  }
};

/// The arrangement most tests share, as a Catch fixture: a pool of Ledger resources with a TTL of
/// `ttl_seconds` on a scheduler of type Timers, pool and scheduler on the heap (see the note at
/// the top). Members are destroyed in reverse: the pool, then its scheduler, then the ledger.
template <int ttl_seconds, class Timers = ManualScheduler>
struct LedgerPool {
  Ledger ledger;
  std::unique_ptr<Timers> timers_on_heap = std::make_unique<Timers>();
  Timers& timers = *timers_on_heap;
  std::unique_ptr<ResourcePool<int, Resource>> pool_on_heap = std::make_unique<ResourcePool<int, Resource>>(
      ledger.create(), ledger.finalize(), std::chrono::seconds(ttl_seconds), timers);
  ResourcePool<int, Resource>& pool = *pool_on_heap;
};
using LedgerPoolOnTimerThread = LedgerPool<3600, teardown::TimerThread>;

}  // namespace

// --- seed 002, mirrored ---------------------------------------------------------------------

TEST_CASE_METHOD(
    LedgerPool<3600>,
    "ResourcePool: closing with cleanups pending finalizes them at once and leaves no timer armed",
    "[resource_pool]") {
  { auto a = pool.acquire(1), b = pool.acquire(2); }
  REQUIRE(timers.pending() == 2);
  REQUIRE(ledger.finalized_now().empty());

  pool.close(teardown::Deadline::never());

  CHECK(ledger.finalized_now().size() == 2);
  CHECK(timers.pending() == 0);
  CHECK(pool.size() == 0);
}

TEST_CASE_METHOD(
    LedgerPoolOnTimerThread,
    "ResourcePool: destroying the pool with cleanups pending on the timer thread leaves no timer armed",
    "[resource_pool]") {
  { auto a = pool.acquire(1), b = pool.acquire(2), c = pool.acquire(3); }
  REQUIRE(timers.pending() == 3);
  pool_on_heap.reset();
  CHECK(ledger.finalized_now().size() == 3);
  CHECK(timers.pending() == 0);
}

TEST_CASE("ResourcePool: a cleanup already running finishes before a re-acquire creates a fresh resource",
          "[resource_pool]") {
  std::mutex log_mutex;
  std::vector<std::string> log;
  auto note = [&](std::string what) {
    std::lock_guard lock(log_mutex);
    log.push_back(std::move(what));
  };
  Gate finalize_entered, finalize_may_finish;
  int created = 0;
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  auto pool_on_heap = std::make_unique<ResourcePool<int, Resource>>(
      [&](const int&) {
        note("create " + std::to_string(created));
        return Resource{created++};
      },
      [&](const int&, Resource& resource) {
        note("finalize begins " + std::to_string(resource.serial));
        finalize_entered.open();
        static_cast<void>(finalize_may_finish.wait(generous));  // no Catch assertion off the main thread
        note("finalize ends " + std::to_string(resource.serial));
      },
      10s, timers);
  auto& pool = *pool_on_heap;
  { auto lease = pool.acquire(7); }
  std::thread expiring([&] { timers.advance(10s); });
  REQUIRE(finalize_entered.wait(generous));

  std::atomic<long> acquirer_tid{0};
  Gate acquirer_started;
  int reacquired_serial = -1;
  std::thread acquirer([&] {
    acquirer_tid = current_tid();
    acquirer_started.open();
    auto lease = pool.acquire(7);
    reacquired_serial = lease->serial;
  });
  REQUIRE(acquirer_started.wait(generous));
  REQUIRE(wait_until_blocked(acquirer_tid));
  finalize_may_finish.open();
  acquirer.join();
  expiring.join();

  CHECK(log == std::vector<std::string>{"create 0", "finalize begins 0", "finalize ends 0", "create 1"});
  CHECK(reacquired_serial == 1);
}

TEST_CASE("ResourcePool: clear racing a running cleanup waits for it and the resource is finalized once",
          "[resource_pool]") {
  Gate finalize_entered, finalize_may_finish;
  std::atomic<int> finalized{0};
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  auto pool_on_heap = std::make_unique<ResourcePool<int, Resource>>(
      [](const int&) { return Resource{0}; },
      [&](const int&, Resource&) {
        finalize_entered.open();
        static_cast<void>(finalize_may_finish.wait(generous));  // no Catch assertion off the main thread
        ++finalized;
      },
      10s, timers);
  auto& pool = *pool_on_heap;
  { auto lease = pool.acquire(7); }
  std::thread expiring([&] { timers.advance(10s); });
  REQUIRE(finalize_entered.wait(generous));

  std::atomic<long> clearer_tid{0};
  Gate clearer_started, clear_returned;
  std::thread clearer([&] {
    clearer_tid = current_tid();
    clearer_started.open();
    pool.clear(7);  // must neither throw nor finalize a second time
    clear_returned.open();
  });
  REQUIRE(clearer_started.wait(generous));
  REQUIRE(wait_until_blocked(clearer_tid));
  CHECK_FALSE(clear_returned.is_open());
  finalize_may_finish.open();
  clearer.join();
  expiring.join();

  CHECK(clear_returned.is_open());
  CHECK(finalized == 1);
  CHECK(pool.size() == 0);
  CHECK_THROWS_AS(pool.clear(7), std::out_of_range);
}

TEST_CASE_METHOD(LedgerPool<10>, "ResourcePool: the TTL starts only after the last lease is released",
                 "[resource_pool]") {
  auto first = pool.acquire(1);
  { auto second = pool.acquire(1); }
  timers.advance(1h);
  CHECK(ledger.finalized_now().empty());
  CHECK(pool.leases(1) == 1);

  first.reset();
  timers.advance(10s - 1ns);
  CHECK(ledger.finalized_now().empty());
  timers.advance(1ns);
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  CHECK(pool.size() == 0);
}

TEST_CASE_METHOD(LedgerPool<10>,
                 "ResourcePool: a re-acquire within the TTL reuses the same object and cancels its cleanup",
                 "[resource_pool]") {
  const Resource* first_address = nullptr;
  {
    auto lease = pool.acquire(1);
    first_address = &lease.get();
  }
  timers.advance(9s);
  auto again = pool.acquire(1);

  CHECK(&again.get() == first_address);
  CHECK(again->serial == 0);
  CHECK(ledger.created == 1);
  CHECK(timers.pending() == 0);
  timers.advance(1h);
  CHECK(ledger.finalized_now().empty());
}

// --- the rest of the contract ---------------------------------------------------------------

TEST_CASE_METHOD(LedgerPool<0>, "ResourcePool: with a zero TTL the last release finalizes at once",
                 "[resource_pool]") {
  { auto lease = pool.acquire(1); }
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  CHECK(timers.pending() == 0);
  CHECK(pool.size() == 0);
}

TEST_CASE("ResourcePool: a Create that throws leaves no entry and propagates", "[resource_pool]") {
  bool fail = true;
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  auto pool_on_heap = std::make_unique<ResourcePool<int, Resource>>(
      [&](const int&) {
        if (fail) throw std::runtime_error("connect refused");
        return Resource{1};
      },
      [](const int&, Resource&) {}, 10s, timers);
  auto& pool = *pool_on_heap;
  CHECK_THROWS_AS(pool.acquire(1), std::runtime_error);
  CHECK(pool.size() == 0);
  CHECK(pool.leases(1) == 0);
  CHECK_THROWS_AS(pool.clear(1), std::out_of_range);

  fail = false;
  CHECK(pool.acquire(1)->serial == 1);
}

TEST_CASE("ResourcePool: a Finalize that throws reaches the error handler and the entry is gone",
          "[resource_pool]") {
  teardown_test::ErrorCapture errors;
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  auto pool_on_heap = std::make_unique<ResourcePool<int, Resource>>(
      [](const int&) { return Resource{0}; },
      [](const int&, Resource&) { throw std::runtime_error("close failed"); }, 10s, timers);
  auto& pool = *pool_on_heap;
  { auto lease = pool.acquire(1); }
  timers.advance(10s);

  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("close failed") != std::string::npos);
  CHECK(pool.size() == 0);
  CHECK_THROWS_AS(pool.clear(1), std::out_of_range);
}

TEST_CASE_METHOD(LedgerPool<10>, "ResourcePool: clear of an absent key throws std::out_of_range",
                 "[resource_pool]") {
  CHECK_THROWS_AS(pool.clear(1), std::out_of_range);
}

TEST_CASE_METHOD(LedgerPool<10>,
                 "ResourcePool: clear of a leased key throws std::logic_error and finalizes nothing",
                 "[resource_pool]") {
  auto lease = pool.acquire(1);
  CHECK_THROWS_AS(pool.clear(1), std::logic_error);
  CHECK(ledger.finalized_now().empty());
  CHECK(pool.leases(1) == 1);
}

TEST_CASE_METHOD(LedgerPool<10>, "ResourcePool: clear of an idle key finalizes it now and cancels its timer",
                 "[resource_pool]") {
  { auto lease = pool.acquire(1); }
  REQUIRE(timers.pending() == 1);
  pool.clear(1);
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  CHECK(timers.pending() == 0);
  timers.advance(1h);
  CHECK(ledger.finalized_now().size() == 1);
}

TEST_CASE_METHOD(LedgerPool<10>, "ResourcePool: a lease released after close finalizes its resource at once",
                 "[resource_pool]") {
  auto lease = pool.acquire(1);
  pool.close(teardown::Deadline::never());
  CHECK(ledger.finalized_now().empty());
  lease.reset();
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  CHECK(timers.pending() == 0);
}

TEST_CASE_METHOD(LedgerPool<10>,
                 "ResourcePool: acquire after close throws PoolClosed, a teardown::Closed (logic_error)",
                 "[resource_pool]") {
  pool.close(teardown::Deadline::never());
  CHECK(pool.closed());
  CHECK_THROWS_AS(pool.acquire(1), teardown::PoolClosed);
  CHECK_THROWS_AS(pool.acquire(1), teardown::Closed);
  CHECK_THROWS_AS(pool.acquire(1), std::logic_error);
  CHECK(ledger.created == 0);
}

TEST_CASE("ResourcePool: Create and Finalize run outside the pool's lock", "[resource_pool]") {
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  std::unique_ptr<ResourcePool<int, Resource>> pool;
  std::size_t size_seen_in_create = 99, size_seen_in_finalize = 99;
  pool = std::make_unique<ResourcePool<int, Resource>>(
      [&](const int&) {
        size_seen_in_create = pool->size();  // would deadlock under the pool's lock
        return Resource{0};
      },
      [&](const int&, Resource&) { size_seen_in_finalize = pool->size(); }, 10s, timers);
  { auto lease = pool->acquire(1); }
  timers.advance(10s);
  CHECK(size_seen_in_create == 0);
  CHECK(size_seen_in_finalize == 0);
}

TEST_CASE_METHOD(LedgerPool<0>,
                 "ResourcePool: a moved-from lease releases nothing; the moved-to lease releases once",
                 "[resource_pool]") {
  auto lease = pool.acquire(1);
  {
    auto moved = std::move(lease);
    CHECK_FALSE(lease);
    CHECK_THROWS_AS(lease.get(), std::logic_error);
    CHECK(pool.leases(1) == 1);
    CHECK(moved.key() == 1);
  }
  CHECK(ledger.finalized_now() == std::vector<int>{0});
}

TEST_CASE("ResourcePool: a TTL cleanup on the default scheduler runs on its timer thread",
          "[resource_pool]") {
  Gate finalized;
  std::thread::id finalized_on;
  auto pool_on_heap = std::make_unique<ResourcePool<int, Resource>>([](const int&) { return Resource{0}; },
                                                                    [&](const int&, Resource&) {
                                                                      finalized_on =
                                                                          std::this_thread::get_id();
                                                                      finalized.open();
                                                                    },
                                                                    1ms);
  auto& pool = *pool_on_heap;
  const auto released_at = teardown::Clock::now();
  { auto lease = pool.acquire(1); }
  REQUIRE(finalized.wait(generous));
  CHECK(teardown::Clock::now() - released_at >= 1ms);
  CHECK(finalized_on != std::this_thread::get_id());
}

TEST_CASE_METHOD(LedgerPool<10>, "ResourcePool: is Closeable and can be closed through close_within",
                 "[resource_pool]") {
  static_assert(teardown::Closeable<ResourcePool<int, Resource>>);
  { auto lease = pool.acquire(1); }
  teardown::close_within(pool, teardown::Deadline::after(1s));
  CHECK(ledger.finalized_now() == std::vector<int>{0});
}

TEST_CASE("ResourcePool: close returns by its deadline while a cleanup runs on the scheduler",
          "[resource_pool]") {
  Gate finalize_entered, finalize_may_finish;
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  std::thread expiring;
  {
    auto pool_on_heap = std::make_unique<ResourcePool<int, Resource>>(
        [](const int&) { return Resource{0}; },
        [&](const int&, Resource&) {
          finalize_entered.open();
          static_cast<void>(finalize_may_finish.wait(generous));  // no Catch assertion off the main thread
        },
        10s, timers);
    auto& pool = *pool_on_heap;
    { auto lease = pool.acquire(1); }
    expiring = std::thread([&] { timers.advance(10s); });
    REQUIRE(finalize_entered.wait(generous));

    const auto started = teardown::Clock::now();
    pool.close(teardown::Deadline::after(20ms));
    CHECK(teardown::Clock::now() - started < 20ms + 1s);
    finalize_may_finish.open();
  }  // the destructor waits for the running cleanup: nothing refers to the pool afterwards
  expiring.join();
  CHECK(timers.pending() == 0);
}

TEST_CASE("ResourcePool: moving the pool keeps its leases and pending cleanups; the moved-from pool is empty",
          "[resource_pool]") {
  Ledger ledger;
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  ResourcePool<int, Resource> original(ledger.create(), ledger.finalize(), 10s, timers);
  auto lease = original.acquire(1);
  { auto idle = original.acquire(2); }

  ResourcePool<int, Resource> moved = std::move(original);
  CHECK(moved.size() == 2);
  CHECK(lease->serial == 0);
  CHECK(original.size() == 0);
  CHECK(original.closed());
  CHECK_THROWS_AS(original.acquire(3), std::logic_error);
  original.close(teardown::Deadline::never());  // a no-op, as a TeardownStack may do

  timers.advance(10s);
  CHECK(ledger.finalized_now() == std::vector<int>{1});
  lease.reset();
  timers.advance(10s);
  CHECK(ledger.finalized_now() == std::vector<int>{1, 0});
}

TEST_CASE("ResourcePool: a negative TTL or an empty callable is rejected at construction",
          "[resource_pool]") {
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  auto create = [](const int&) { return Resource{0}; };
  auto finalize = [](const int&, Resource&) {};
  CHECK_THROWS_AS((ResourcePool<int, Resource>(create, finalize, -1s, timers)), std::invalid_argument);
  CHECK_THROWS_AS((ResourcePool<int, Resource>(nullptr, finalize, 1s, timers)), std::invalid_argument);
  CHECK_THROWS_AS((ResourcePool<int, Resource>(create, nullptr, 1s, timers)), std::invalid_argument);
}

// --- schedulers ------------------------------------------------------------------------------

TEST_CASE("TimerHeap: timers pop in due order, ties in arming order", "[resource_pool][timer_heap]") {
  teardown::detail::TimerHeap<int, int> heap;
  std::mt19937 random(42);
  std::vector<std::pair<int, int>> expected;  // (when, payload); payload = arming order
  for (int i = 0; i < 200; ++i) {
    const int when = static_cast<int>(random() % 20);
    heap.push(when, i);
    expected.emplace_back(when, i);
  }
  std::stable_sort(expected.begin(), expected.end(), [](auto a, auto b) { return a.first < b.first; });
  std::vector<std::pair<int, int>> popped;
  while (!heap.empty()) {
    auto fired = heap.pop();
    popped.emplace_back(fired.when, fired.payload);
  }
  CHECK(popped == expected);
}

TEST_CASE("TimerHeap: cancelling removes exactly that timer; a stale id cancels nothing after slot reuse",
          "[resource_pool][timer_heap]") {
  teardown::detail::TimerHeap<int, int> heap;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(heap.push(100 - i, i));
  for (int i = 0; i < 100; i += 3) CHECK(heap.erase(ids[static_cast<std::size_t>(i)]));
  CHECK_FALSE(heap.erase(ids[0]));            // already cancelled
  const auto reused = heap.push(1000, 1000);  // takes a freed slot
  CHECK_FALSE(heap.erase(ids[0]));            // the old id does not name the new timer
  CHECK_FALSE(heap.erase(0));
  std::vector<int> popped;
  while (!heap.empty()) popped.push_back(heap.pop().payload);
  std::vector<int> expected;
  for (int i = 99; i >= 0; --i)
    if (i % 3 != 0) expected.push_back(i);
  expected.push_back(1000);
  CHECK(popped == expected);
  CHECK_FALSE(heap.erase(reused));  // already fired
}

TEST_CASE("ManualScheduler: advance runs each due timer with now() at its due time", "[resource_pool]") {
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  std::vector<std::pair<int, teardown::Clock::duration>> ran;
  const auto start = timers.now();
  timers.arm(3s, [&] { ran.emplace_back(3, timers.now() - start); });
  timers.arm(1s, [&] { ran.emplace_back(1, timers.now() - start); });
  const auto cancelled = timers.arm(2s, [&] { ran.emplace_back(2, timers.now() - start); });
  CHECK(timers.cancel(cancelled));
  timers.advance(5s);
  CHECK(ran == std::vector<std::pair<int, teardown::Clock::duration>>{{1, 1s}, {3, 3s}});
  CHECK(timers.now() - start == 5s);
  CHECK(timers.pending() == 0);
}

TEST_CASE("ManualScheduler: advancing by a huge duration saturates at the end of time", "[resource_pool]") {
  ManualScheduler timers;
  timers.advance(1s);  // now() is past the epoch: now() + duration::max() would overflow
  int ran = 0;
  timers.arm(1h, [&] { ++ran; });
  timers.advance(teardown::Clock::duration::max());
  CHECK(ran == 1);
  CHECK(timers.now() == teardown::Clock::time_point::max());
  timers.advance(1s);  // already at the end: stays there
  CHECK(timers.now() == teardown::Clock::time_point::max());
}

TEST_CASE("TimerThread: a cancelled timer never runs and a due one runs once", "[resource_pool]") {
  auto timers_on_heap = std::make_unique<teardown::TimerThread>();
  auto& timers = *timers_on_heap;
  std::atomic<int> cancelled_runs{0};
  Gate due_ran;
  const auto id = timers.arm(1h, [&] { ++cancelled_runs; });
  CHECK(timers.cancel(id));
  CHECK_FALSE(timers.cancel(id));
  timers.arm(1ms, [&] { due_ran.open(); });
  CHECK(due_ran.wait(generous));
  CHECK(cancelled_runs == 0);
  CHECK(timers.pending() == 0);
}

// --- a timer callback that loses the race -----------------------------------------------------

namespace {

/// A Scheduler that splits firing in two, as a real timer thread does: `take` is the moment the
/// scheduler commits to running a callback (cancel() fails from then on), `run` the moment the
/// callback actually runs. The window between them is where a re-acquire, clear or close races.
class SteppedScheduler final : public teardown::Scheduler {
 public:
  TimerId arm(teardown::Clock::duration, std::function<void()> callback) override {
    std::lock_guard lock(mutex_);
    armed_[++last_id_] = std::move(callback);
    return last_id_;
  }
  bool cancel(TimerId timer) noexcept override {
    std::lock_guard lock(mutex_);
    return armed_.erase(timer) == 1;
  }
  std::size_t pending() const noexcept override {
    std::lock_guard lock(mutex_);
    return armed_.size();
  }
  TimerId last_armed() const {
    std::lock_guard lock(mutex_);
    return last_id_;
  }
  std::function<void()> take(TimerId timer) {
    std::lock_guard lock(mutex_);
    auto callback = std::move(armed_.at(timer));
    armed_.erase(timer);
    return callback;
  }

 private:
  mutable std::mutex mutex_;
  std::map<TimerId, std::function<void()>> armed_;
  TimerId last_id_ = 0;
};

using SteppedLedgerPool = LedgerPool<10, SteppedScheduler>;

}  // namespace

TEST_CASE_METHOD(
    SteppedLedgerPool,
    "ResourcePool: a timer callback that lost the race to a re-acquire does nothing when it runs",
    "[resource_pool]") {
  { auto lease = pool.acquire(1); }
  auto late_callback = timers.take(timers.last_armed());  // fired, not yet run

  auto lease = pool.acquire(1);  // its cancel comes too late, but the cleanup has not started
  CHECK(lease->serial == 0);
  late_callback();
  CHECK(ledger.finalized_now().empty());
  CHECK(pool.leases(1) == 1);

  lease.reset();  // arms a new cleanup, which does run
  timers.take(timers.last_armed())();
  CHECK(ledger.finalized_now() == std::vector<int>{0});
}

TEST_CASE_METHOD(
    SteppedLedgerPool,
    "ResourcePool: clear and re-create while a stale timer callback is outstanding keep each resource "
    "finalized once",
    "[resource_pool]") {
  { auto lease = pool.acquire(1); }
  auto late_callback = timers.take(timers.last_armed());

  pool.clear(1);  // finalizes now; the late callback still points at the entry
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  CHECK(pool.size() == 0);
  CHECK_THROWS_AS(pool.clear(1), std::out_of_range);
  {
    auto fresh = pool.acquire(1);
    CHECK(fresh->serial == 1);
  }
  late_callback();  // stale: neither the old nor the new resource is finalized by it
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  timers.take(timers.last_armed())();
  CHECK(ledger.finalized_now() == std::vector<int>{0, 1});
}

TEST_CASE_METHOD(SteppedLedgerPool,
                 "ResourcePool: destroying the pool waits for a timer callback already taken to run",
                 "[resource_pool]") {
  { auto lease = pool_on_heap->acquire(1); }
  auto late_callback = timers.take(timers.last_armed());

  std::atomic<long> destroyer_tid{0};
  Gate destroyer_started, destroyed;
  std::thread destroyer([&] {
    destroyer_tid = current_tid();
    destroyer_started.open();
    pool_on_heap.reset();  // finalizes the entry itself, then must wait for the late callback
    destroyed.open();
  });
  REQUIRE(destroyer_started.wait(generous));
  REQUIRE(wait_until_blocked(destroyer_tid));
  CHECK_FALSE(destroyed.is_open());
  CHECK(ledger.finalized_now() == std::vector<int>{0});

  late_callback();  // the pool is still alive for it
  destroyer.join();
  CHECK(destroyed.is_open());
  CHECK(ledger.finalized_now() == std::vector<int>{0});
  CHECK(timers.pending() == 0);
}

// --- threads (run under TSan by the tsan preset) ---------------------------------------------

namespace {

/// One created resource, watched: who holds it, and how often it was finalized.
struct Watched {
  std::atomic<int> holders{0};
  std::atomic<int> finalized{0};
  std::atomic<bool> finalized_while_held{false};
};

struct StressLedger {
  std::mutex mutex;
  std::vector<std::unique_ptr<Watched>> resources;

  ResourcePool<int, Watched*>::Create create() {
    return [this](const int&) {
      std::lock_guard lock(mutex);
      resources.push_back(std::make_unique<Watched>());
      return resources.back().get();
    };
  }
  ResourcePool<int, Watched*>::Finalize finalize() {
    return [](const int&, Watched*& watched) {
      if (watched->holders.load() != 0) watched->finalized_while_held = true;
      ++watched->finalized;
    };
  }
};

void hammer(ResourcePool<int, Watched*>& pool, unsigned seed, int rounds) {
  std::mt19937 random(seed);
  for (int round = 0; round < rounds; ++round) {
    const int key = static_cast<int>(random() % 4);
    if (random() % 8 == 0) {
      try {
        pool.clear(key);
      } catch (const std::out_of_range&) {
      } catch (const std::logic_error&) {
      }
      continue;
    }
    auto lease = pool.acquire(key);
    ++lease.get()->holders;
    if (random() % 2 == 0) {
      auto second = pool.acquire(static_cast<int>(random() % 4));
      ++second.get()->holders;
      --second.get()->holders;
    }
    --lease.get()->holders;
  }
}

void check_every_resource_finalized_once_never_held(StressLedger& ledger) {
  REQUIRE_FALSE(ledger.resources.empty());
  for (const auto& watched : ledger.resources) {
    CHECK(watched->finalized == 1);
    CHECK_FALSE(watched->finalized_while_held);
  }
}

}  // namespace

TEST_CASE(
    "ResourcePool: threads acquiring, releasing and clearing the same keys while time advances "
    "finalize every resource once, never while leased",
    "[resource_pool][stress]") {
  StressLedger ledger;
  auto timers_on_heap = std::make_unique<ManualScheduler>();
  auto& timers = *timers_on_heap;
  {
    auto pool_on_heap =
        std::make_unique<ResourcePool<int, Watched*>>(ledger.create(), ledger.finalize(), 3ms, timers);
    auto& pool = *pool_on_heap;
    std::atomic<bool> done{false};
    std::thread clock([&] {
      while (!done) timers.advance(1ms);
    });
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < 3; ++i) workers.emplace_back([&pool, i] { hammer(pool, i, 5000); });
    for (auto& worker : workers) worker.join();
    done = true;
    clock.join();
    pool.close(teardown::Deadline::never());
    CHECK(pool.size() == 0);
  }
  CHECK(timers.pending() == 0);
  check_every_resource_finalized_once_never_held(ledger);
}

TEST_CASE(
    "ResourcePool: threads sharing keys on the timer thread with a tiny TTL finalize every resource once",
    "[resource_pool][stress]") {
  StressLedger ledger;
  auto timers_on_heap = std::make_unique<teardown::TimerThread>();
  auto& timers = *timers_on_heap;
  {
    auto pool_on_heap =
        std::make_unique<ResourcePool<int, Watched*>>(ledger.create(), ledger.finalize(), 20us, timers);
    auto& pool = *pool_on_heap;
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < 3; ++i) workers.emplace_back([&pool, i] { hammer(pool, 100 + i, 5000); });
    for (auto& worker : workers) worker.join();
  }  // destroyed with cleanups pending or running on the timer thread
  CHECK(timers.pending() == 0);
  check_every_resource_finalized_once_never_held(ledger);
}
