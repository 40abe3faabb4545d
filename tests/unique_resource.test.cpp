#include <teardown/unique_resource.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"

namespace {

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

/// A temporary file that exists for one test.
struct TempFile {
  std::string path;
  int fd;
  TempFile() : path("/tmp/teardown-unique-resource-XXXXXX") {
    fd = ::mkstemp(path.data());
    REQUIRE(fd >= 0);
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

struct Recorder {
  std::vector<int>* released;
  void operator()(int handle) const { released->push_back(handle); }
};

/// A deleter whose copy constructor throws when asked to.
struct ThrowingCopyDeleter {
  std::vector<int>* released;
  bool throw_on_copy;
  ThrowingCopyDeleter(std::vector<int>* r, bool t) : released(r), throw_on_copy(t) {}
  ThrowingCopyDeleter(const ThrowingCopyDeleter& other)
      : released(other.released), throw_on_copy(other.throw_on_copy) {
    if (throw_on_copy) throw std::bad_alloc();
  }
  void operator()(int handle) const { released->push_back(handle); }
};

}  // namespace

TEST_CASE("UniqueResource: the deleter runs once when the owner ends", "[unique_resource]") {
  std::vector<int> released;
  {
    teardown::UniqueResource owner(7, Recorder{&released});
    CHECK(owner.owns());
    CHECK(owner.get() == 7);
  }
  CHECK(released == std::vector<int>{7});
}

TEST_CASE("UniqueResource: reset() releases now and only once", "[unique_resource]") {
  std::vector<int> released;
  {
    teardown::UniqueResource owner(7, Recorder{&released});
    owner.reset();
    CHECK_FALSE(owner.owns());
    owner.reset();
  }
  CHECK(released == std::vector<int>{7});
}

TEST_CASE("UniqueResource: reset(r) releases the old handle and owns the new one", "[unique_resource]") {
  std::vector<int> released;
  {
    teardown::UniqueResource owner(1, Recorder{&released});
    owner.reset(2);
    CHECK(released == std::vector<int>{1});
    CHECK(owner.get() == 2);
  }
  CHECK(released == std::vector<int>{1, 2});
}

TEST_CASE("UniqueResource: release() gives up ownership without calling the deleter", "[unique_resource]") {
  std::vector<int> released;
  {
    teardown::UniqueResource owner(5, Recorder{&released});
    CHECK(owner.release() == 5);
    CHECK_FALSE(owner.owns());
  }
  CHECK(released.empty());
}

TEST_CASE("UniqueResource: moving transfers ownership; the moved-from owner releases nothing",
          "[unique_resource]") {
  std::vector<int> released;
  {
    teardown::UniqueResource first(3, Recorder{&released});
    teardown::UniqueResource second(std::move(first));
    CHECK_FALSE(first.owns());
    CHECK(second.owns());
    teardown::UniqueResource third(4, Recorder{&released});
    third = std::move(second);  // releases 4, takes 3
    CHECK(released == std::vector<int>{4});
  }
  CHECK(released == std::vector<int>{4, 3});
}

TEST_CASE("make_unique_resource_checked: the invalid value is not owned", "[unique_resource]") {
  std::vector<int> released;
  {
    auto invalid = teardown::make_unique_resource_checked(-1, -1, Recorder{&released});
    CHECK_FALSE(invalid.owns());
    auto valid = teardown::make_unique_resource_checked(9, -1, Recorder{&released});
    CHECK(valid.owns());
  }
  CHECK(released == std::vector<int>{9});
}

TEST_CASE("UniqueResource: a deleter that cannot be stored releases the handle at once",
          "[unique_resource]") {
  std::vector<int> released;
  const ThrowingCopyDeleter deleter(&released, true);
  using Owner = teardown::UniqueResource<int, ThrowingCopyDeleter>;
  CHECK_THROWS_AS(Owner(11, deleter), std::bad_alloc);
  CHECK(released == std::vector<int>{11});
}

TEST_CASE("UniqueResource: a throwing deleter in the destructor goes to the error handler",
          "[unique_resource][error_handler]") {
  teardown_test::ErrorCapture capture;
  {
    teardown::UniqueResource owner(1, [](int) { throw std::runtime_error("close failed"); });
  }
  REQUIRE(capture.errors().size() == 1);
  CHECK(capture.errors()[0] == "unique_resource deleter threw in a destructor: close failed");
}

TEST_CASE("UniqueResource: a throwing deleter in reset() propagates and is not called twice",
          "[unique_resource]") {
  teardown_test::ErrorCapture capture;
  int calls = 0;
  {
    teardown::UniqueResource owner(1, [&](int) {
      ++calls;
      throw std::runtime_error("close failed");
    });
    CHECK_THROWS_AS(owner.reset(), std::runtime_error);
    CHECK_FALSE(owner.owns());
  }
  CHECK(calls == 1);
  CHECK(capture.errors().empty());
}

TEST_CASE("UniqueResource: works with the real open/close pair", "[unique_resource]") {
  TempFile file;
  int fd = -1;
  {
    auto owner =
        teardown::make_unique_resource_checked(::open(file.path.c_str(), O_RDONLY | O_CLOEXEC), -1, &::close);
    REQUIRE(owner.owns());
    fd = owner.get();
    CHECK(fd_is_open(fd));
  }
  CHECK_FALSE(fd_is_open(fd));
  ::close(file.fd);
}

TEST_CASE("UniqueFd: closes the descriptor when it ends", "[unique_resource][unique_fd]") {
  TempFile file;
  const int fd = file.fd;
  {
    teardown::UniqueFd owner{fd};
    CHECK(owner.valid());
    CHECK(fd_is_open(fd));
  }
  CHECK_FALSE(fd_is_open(fd));
}

TEST_CASE("UniqueFd: -1 (or any negative value) means empty", "[unique_resource][unique_fd]") {
  teardown::UniqueFd empty{-1};
  CHECK_FALSE(empty.valid());
  CHECK(empty.get() == -1);
  teardown::UniqueFd negative{-42};
  CHECK(negative.get() == -1);
}

TEST_CASE("UniqueFd: release() hands the descriptor over without closing it",
          "[unique_resource][unique_fd]") {
  TempFile file;
  int fd = -1;
  {
    teardown::UniqueFd owner{file.fd};
    fd = owner.release();
  }
  CHECK(fd_is_open(fd));
  ::close(fd);
}

TEST_CASE("UniqueFd: reset() closes the old descriptor; move leaves the source empty",
          "[unique_resource][unique_fd]") {
  TempFile file;
  const int second = ::dup(file.fd);
  REQUIRE(second >= 0);
  teardown::UniqueFd owner{file.fd};
  owner.reset(second);
  CHECK_FALSE(fd_is_open(file.fd));
  teardown::UniqueFd moved{std::move(owner)};
  CHECK_FALSE(owner.valid());
  CHECK(moved.get() == second);
  moved = teardown::UniqueFd{};
  CHECK_FALSE(fd_is_open(second));
}

// ---- Regressions found by running the peers' suites (docs/scope_guard.md, "Conformance") -------

namespace {

/// A deleter with no data members whose move throws (its copy does not): storing it must build
/// it in place, never move a temporary into a [[no_unique_address]] member (g++ did).
struct EmptyDeleterThrowingMove {
  static inline int calls = 0;
  static inline int moves = 0;
  EmptyDeleterThrowingMove() = default;
  EmptyDeleterThrowingMove(const EmptyDeleterThrowingMove&) noexcept(false) {}
  EmptyDeleterThrowingMove(EmptyDeleterThrowingMove&&) noexcept(false) {
    ++moves;
    throw std::bad_alloc();
  }
  void operator()(int) const { ++calls; }
};

/// A handle whose move leaves the source holding -1, so a moved-from handle is visible.
struct Handle {
  int value;
  explicit Handle(int v) : value(v) {}
  Handle(const Handle&) = default;
  Handle(Handle&& other) noexcept : value(std::exchange(other.value, -1)) {}
  Handle& operator=(const Handle&) = default;
  Handle& operator=(Handle&& other) noexcept {
    value = std::exchange(other.value, -1);
    return *this;
  }
};

/// Records the handles it releases; copying and moving it throw while `*fail` is set.
struct FailingDeleter {
  std::vector<int>* released;
  const bool* fail;
  FailingDeleter(std::vector<int>* r, const bool* f) : released(r), fail(f) {}
  FailingDeleter(const FailingDeleter& other) : released(other.released), fail(other.fail) { check(); }
  FailingDeleter(FailingDeleter&& other) noexcept(false) : released(other.released), fail(other.fail) {
    check();
  }
  FailingDeleter& operator=(const FailingDeleter& other) {
    other.check();
    released = other.released;
    return *this;
  }
  FailingDeleter& operator=(FailingDeleter&& other) noexcept(false) { return *this = other; }
  template <class AnyHandle>
  void operator()(const AnyHandle& handle) const {
    released->push_back(handle.value);
  }
  void check() const {
    if (*fail) throw std::bad_alloc();
  }
};

/// A handle that can only be moved (without throwing); a move leaves -1 behind, so releasing a
/// moved-from handle is visible.
struct MoveOnlyIntHandle {
  int value;
  explicit MoveOnlyIntHandle(int v) noexcept : value(v) {}
  MoveOnlyIntHandle(MoveOnlyIntHandle&& other) noexcept : value(std::exchange(other.value, -1)) {}
  MoveOnlyIntHandle& operator=(MoveOnlyIntHandle&& other) noexcept {
    value = std::exchange(other.value, -1);
    return *this;
  }
};

/// A resource that cannot be copied.
struct MoveOnlyHandle {
  std::unique_ptr<int> value;
  friend bool operator==(const MoveOnlyHandle& a, const MoveOnlyHandle& b) { return a.value == b.value; }
};

/// A resource whose copy throws; equal to an int when it holds that int.
struct ThrowingCopyHandle {
  int value;
  explicit ThrowingCopyHandle(int v) : value(v) {}
  ThrowingCopyHandle(const ThrowingCopyHandle&) { throw std::bad_alloc(); }
  friend bool operator==(const ThrowingCopyHandle& a, int b) { return a.value == b; }
};

template <class T>
concept dereferenceable = requires(T& t) {
  *t;
};

}  // namespace

TEST_CASE("UniqueResource: an empty deleter is built in place, so it is never moved and always runs",
          "[unique_resource][regression]") {
  EmptyDeleterThrowingMove::calls = EmptyDeleterThrowingMove::moves = 0;
  const EmptyDeleterThrowingMove deleter;
  {
    teardown::UniqueResource<int, EmptyDeleterThrowingMove> owner(3, deleter);
    CHECK(owner.owns());
  }
  CHECK(EmptyDeleterThrowingMove::moves == 0);
  CHECK(EmptyDeleterThrowingMove::calls == 1);
}

TEST_CASE("UniqueResource: a move whose deleter copy throws leaves the source owning the real handle",
          "[unique_resource][regression]") {
  std::vector<int> released;
  bool fail = false;
  {
    teardown::UniqueResource<Handle, FailingDeleter> source(Handle(5), FailingDeleter(&released, &fail));
    fail = true;
    using Owner = teardown::UniqueResource<Handle, FailingDeleter>;
    CHECK_THROWS_AS(Owner(std::move(source)), std::bad_alloc);
    fail = false;
    CHECK(source.owns());
    CHECK(source.get().value == 5);
    CHECK(released.empty());
  }
  CHECK(released == std::vector<int>{5});
}

TEST_CASE(
    "UniqueResource: a move whose deleter copy throws releases a move-only handle once, with the source's "
    "deleter, and the source owns nothing",
    "[unique_resource][regression]") {
  // The handle cannot be copied, so the source cannot keep it while the deleter is copied: P0052's
  // rule (Boost.Scope moves it back instead; docs/scope_guard.md, "teardown against P0052").
  std::vector<int> released;
  bool fail = false;
  {
    using Owner = teardown::UniqueResource<MoveOnlyIntHandle, FailingDeleter>;
    Owner source(MoveOnlyIntHandle(5), FailingDeleter(&released, &fail));
    fail = true;
    CHECK_THROWS_AS(Owner(std::move(source)), std::bad_alloc);
    fail = false;
    CHECK(released == std::vector<int>{5});  // the real handle, not the moved-from -1
    CHECK_FALSE(source.owns());
  }
  CHECK(released == std::vector<int>{5});  // not again when the source ends
}

TEST_CASE(
    "UniqueResource: a move assignment whose deleter copy throws leaves the source owning the real handle",
    "[unique_resource][regression]") {
  std::vector<int> released;
  bool fail = false;
  {
    teardown::UniqueResource<Handle, FailingDeleter> source(Handle(5), FailingDeleter(&released, &fail));
    teardown::UniqueResource<Handle, FailingDeleter> target(Handle(7), FailingDeleter(&released, &fail));
    fail = true;
    CHECK_THROWS_AS(target = std::move(source), std::bad_alloc);
    fail = false;
    CHECK(released == std::vector<int>{7});  // the target released its own handle first
    CHECK_FALSE(target.owns());
    CHECK(source.owns());
    CHECK(source.get().value == 5);
  }
  CHECK(released == std::vector<int>{7, 5});
}

TEST_CASE(
    "make_unique_resource_checked: the deleter never runs on the invalid value, even when storing throws",
    "[unique_resource][regression]") {
  int calls = 0;
  auto deleter = [&calls](const ThrowingCopyHandle&) { ++calls; };
  const ThrowingCopyHandle invalid_handle(-1);
  CHECK_THROWS_AS(teardown::make_unique_resource_checked(invalid_handle, -1, deleter), std::bad_alloc);
  CHECK(calls == 0);
  const ThrowingCopyHandle valid_handle(4);
  CHECK_THROWS_AS(teardown::make_unique_resource_checked(valid_handle, -1, deleter), std::bad_alloc);
  CHECK(calls == 1);  // a valid handle that cannot be stored is still released
}

TEST_CASE(
    "make_unique_resource_checked: the deleter never runs on the invalid value when storing the deleter "
    "throws",
    "[unique_resource][regression]") {
  std::vector<int> released;
  const ThrowingCopyDeleter deleter(&released, true);
  CHECK_THROWS_AS(teardown::make_unique_resource_checked(-1, -1, deleter), std::bad_alloc);
  CHECK(released.empty());
  CHECK_THROWS_AS(teardown::make_unique_resource_checked(4, -1, deleter), std::bad_alloc);
  CHECK(released == std::vector<int>{4});  // a valid handle is released by the deleter passed in
}

TEST_CASE("UniqueResource: a function-pointer deleter cannot be default-constructed into null",
          "[unique_resource][regression]") {
  STATIC_REQUIRE_FALSE(std::is_default_constructible_v<teardown::UniqueResource<int, void (*)(int)>>);
  STATIC_REQUIRE(std::is_default_constructible_v<teardown::UniqueResource<int, Recorder>>);
}

TEST_CASE("UniqueResource: a move-only resource can be owned, checked and released",
          "[unique_resource][regression]") {
  int released = 0;
  auto deleter = [&released](MoveOnlyHandle& handle) { released += handle.value ? *handle.value : 100; };
  auto owner = teardown::make_unique_resource_checked(MoveOnlyHandle{std::make_unique<int>(3)},
                                                      MoveOnlyHandle{}, deleter);
  REQUIRE(owner.owns());
  auto moved = std::move(owner);
  MoveOnlyHandle handed_over = moved.release();
  CHECK_FALSE(moved.owns());
  REQUIRE(handed_over.value);
  CHECK(*handed_over.value == 3);
  auto empty = teardown::make_unique_resource_checked(MoveOnlyHandle{}, MoveOnlyHandle{}, deleter);
  CHECK_FALSE(empty.owns());
  CHECK(released == 0);
}

TEST_CASE("UniqueResource: operator* exists only for pointers to object types",
          "[unique_resource][regression]") {
  STATIC_REQUIRE(dereferenceable<teardown::UniqueResource<int*, void (*)(int*)>>);
  STATIC_REQUIRE_FALSE(dereferenceable<teardown::UniqueResource<void*, void (*)(void*)>>);
  STATIC_REQUIRE_FALSE(dereferenceable<teardown::UniqueResource<const void*, void (*)(const void*)>>);
  STATIC_REQUIRE_FALSE(dereferenceable<teardown::UniqueResource<int, void (*)(int)>>);
  int value = 8;
  teardown::UniqueResource<int*, void (*)(int*)> owner(&value, [](int*) {});
  CHECK(*owner == 8);
  teardown::UniqueResource<void*, void (*)(void*)> opaque(&value, [](void*) {});
  CHECK(opaque.get() == &value);
}
