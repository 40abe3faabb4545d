#include <teardown/unique_resource.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
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
