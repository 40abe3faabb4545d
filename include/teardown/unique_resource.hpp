// teardown/unique_resource.hpp — own a handle and release it exactly once.
//
//   auto file = teardown::make_unique_resource_checked(
//       ::open(path, O_RDONLY | O_CLOEXEC), -1, &::close);     // -1: nothing to close
//   if (!file.owns()) throw std::system_error(errno, std::generic_category(), path);
//   ::read(file.get(), buf, n);                                 // closed when `file` ends
//
//   teardown::UniqueFd fd{::eventfd(0, EFD_CLOEXEC)};           // the library's own fd owner
//
// Guarantees: no allocation; the deleter runs at most once per owned value; if storing the
// handle or deleter throws, the deleter runs on the handle at once and the exception propagates.
#pragma once

#include <type_traits>
#include <utility>

#include "core.hpp"

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

namespace teardown {

/// Owns a handle `R` and calls `D(handle)` once when it is released.
///
/// Owning after construction from a handle (unless made by make_unique_resource_checked with the
/// invalid value). Move-only: the moved-from object owns nothing. `reset()` releases now,
/// `reset(r)` releases and takes `r`, `release()` gives up ownership without calling the deleter.
/// Thread-safety: one owner, one thread. Destructor: calls the deleter if owning; a deleter that
/// throws there is delivered to `teardown::report_error` (from `reset()` it propagates).
/// `R` and `D` are object types (a deviation from P0052, which also allows references).
template <class R, class D>
class UniqueResource {
  static_assert(std::is_object_v<R> && std::is_object_v<D>,
                "teardown::UniqueResource: R and D must be object types (store a pointer for a "
                "reference)");
  static_assert(std::is_invocable_v<D&, R&>,
                "teardown::UniqueResource: the deleter must be callable with the resource");

 public:
  // clang-format off
  /// Owns nothing.
  UniqueResource()
    requires(std::is_default_constructible_v<R> && std::is_default_constructible_v<D>)
  = default;

  /// Owns `resource`. If storing either argument throws, `deleter(resource)` runs at once.
  template <class RR, class DD>
    requires(std::is_constructible_v<R, RR> && std::is_constructible_v<D, DD>)
  UniqueResource(RR&& resource, DD&& deleter) noexcept(std::is_nothrow_constructible_v<R, RR> &&
                                                       std::is_nothrow_constructible_v<D, DD>)
      : resource_(store<R>(std::forward<RR>(resource), deleter)),
        deleter_(store<D>(std::forward<DD>(deleter), deleter, resource_)),
        owns_(true) {}
  // clang-format on

  UniqueResource(UniqueResource&& other) noexcept(
      std::is_nothrow_move_constructible_v<R>&& std::is_nothrow_move_constructible_v<D>)
      : resource_(std::move(other.resource_)),
        deleter_(std::move(other.deleter_)),
        owns_(std::exchange(other.owns_, false)) {}

  UniqueResource& operator=(UniqueResource&& other) noexcept(
      std::is_nothrow_move_assignable_v<R>&& std::is_nothrow_move_assignable_v<D>&&
          std::is_nothrow_invocable_v<D&, R&>) {
    if (this != &other) {
      reset();
      resource_ = std::move(other.resource_);
      deleter_ = std::move(other.deleter_);
      owns_ = std::exchange(other.owns_, false);
    }
    return *this;
  }

  UniqueResource(const UniqueResource&) = delete;
  UniqueResource& operator=(const UniqueResource&) = delete;

  ~UniqueResource() {
    if (!owns_) return;
    owns_ = false;
    detail::call_reporting("unique_resource deleter threw in a destructor", deleter_, resource_);
  }

  /// Releases the owned handle now (the deleter runs once); afterwards owns nothing.
  void reset() noexcept(std::is_nothrow_invocable_v<D&, R&>) {
    if (!owns_) return;
    owns_ = false;  // first, so a throwing deleter is never called twice
    deleter_(resource_);
  }

  /// Releases the owned handle and takes `resource`. If the assignment throws, the deleter runs
  /// on `resource` and the exception propagates.
  template <class RR>
  requires std::is_assignable_v<R&, RR>
  void reset(RR&& resource) {
    reset();
    try {
      resource_ = std::forward<RR>(resource);
    } catch (...) {
      detail::call_reporting("unique_resource deleter (run because reset failed)", deleter_, resource);
      throw;
    }
    owns_ = true;
  }

  /// Gives up ownership without calling the deleter; returns the handle.
  R release() noexcept(std::is_nothrow_copy_constructible_v<R>) {
    owns_ = false;
    return resource_;
  }

  [[nodiscard]] const R& get() const noexcept { return resource_; }
  [[nodiscard]] const D& get_deleter() const noexcept { return deleter_; }
  [[nodiscard]] bool owns() const noexcept { return owns_; }
  explicit operator bool() const noexcept { return owns_; }

  decltype(auto) operator*() const noexcept requires std::is_pointer_v<R> { return *resource_; }
  R operator->() const noexcept requires std::is_pointer_v<R> { return resource_; }

 private:
  /// Constructs a member of type T from `source`; if that throws, `deleter(resource)` runs
  /// (the resource being `source` itself when it is the one being stored) and it propagates.
  template <class T, class Source, class Deleter, class... Resource>
  static T store(Source&& source, Deleter& deleter,
                 Resource&... resource) noexcept(std::is_nothrow_constructible_v<T, Source>) {
    if constexpr (std::is_nothrow_constructible_v<T, Source>) {
      return T(std::forward<Source>(source));
    } else {
      try {
        return T(detail::forward_if_nothrow<T, Source>(source));
      } catch (...) {
        if constexpr (sizeof...(Resource) == 0) {
          detail::call_reporting("unique_resource deleter (run because construction failed)", deleter,
                                 source);
        } else {
          detail::call_reporting("unique_resource deleter (run because construction failed)", deleter,
                                 resource...);
        }
        throw;
      }
    }
  }

  [[no_unique_address]] R resource_{};
  [[no_unique_address]] D deleter_{};
  bool owns_ = false;
};

template <class R, class D>
UniqueResource(R, D) -> UniqueResource<R, D>;

/// A UniqueResource that owns `resource` unless it equals `invalid` (say, -1 from ::open).
template <class R, class D, class S = std::decay_t<R>>
[[nodiscard]] UniqueResource<std::decay_t<R>, std::decay_t<D>> make_unique_resource_checked(R&& resource,
                                                                                            const S& invalid,
                                                                                            D&& deleter) {
  const bool valid = !bool(resource == invalid);
  UniqueResource<std::decay_t<R>, std::decay_t<D>> owner(std::forward<R>(resource), std::forward<D>(deleter));
  if (!valid) (void)owner.release();
  return owner;
}

#if __has_include(<unistd.h>)

/// Owns a POSIX file descriptor; -1 means empty.
///
/// `close()` is called once and never retried: on Linux the descriptor is released even when
/// close fails with EINTR, and retrying could close a descriptor another thread just opened.
/// Move-only; the moved-from object is empty. Thread-safety: one owner. Signal-safety: the
/// destructor only calls close(2), which is async-signal-safe.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  /// Closes the owned descriptor (if any) and takes `fd` (-1: none).
  void reset(int fd = -1) noexcept {
    const int previous = std::exchange(fd_, fd < 0 ? -1 : fd);
    if (previous >= 0) ::close(previous);
  }
  /// Gives up ownership; returns the descriptor (-1 if empty).
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

 private:
  int fd_ = -1;
};

#endif

}  // namespace teardown
