// A pooled type must be move constructible: Create returns it by value. The static_assert says
// to pool a std::unique_ptr instead.
// expect: T must be move constructible
#include <teardown/resource_pool.hpp>

#include <mutex>

struct Pinned {
  Pinned() = default;
  Pinned(Pinned&&) = delete;
};

int main() {
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::ResourcePool<int, Pinned> pool([](const int&) { return Pinned{}; }, [](const int&, Pinned&) {});
#else
  teardown::ResourcePool<int, int> pool([](const int& key) { return key; }, [](const int&, int&) {});
#endif
  return static_cast<int>(pool.size());
}
