// teardown/unique_resource.hpp — own a handle and release it exactly once.
//
//   auto file = teardown::make_unique_resource_checked(
//       open(path, O_RDONLY | O_CLOEXEC), -1, &::close);       // -1: nothing to close
//   if (!file.owns()) throw std::system_error(errno, std::generic_category(), path);
//   read(file.get(), buf, n);                                   // closed when `file` ends
//
//   teardown::UniqueFd fd{::eventfd(0, EFD_CLOEXEC)};           // the library's own fd owner
//
// Guarantees: no allocation; the deleter runs at most once per owned value and never on the
// invalid value; the handle and deleter are built in place, and if storing either throws, the
// deleter runs on the handle at once and the exception propagates. A move that throws leaves the
// source owning the real handle.
#pragma once

#include <type_traits>
#include <utility>

#include "core.hpp"

#if __has_include(<unistd.h>)
#include "detail/fd.hpp"
#endif

namespace teardown {

namespace detail {

/// A member built in place from `source` (moved when that cannot throw, copied otherwise, so a
/// failure leaves `source` intact); if building it throws, `on_failure()` runs and it propagates.
template <class T>
struct StoredMember {
  constexpr StoredMember() noexcept(
      std::is_nothrow_default_constructible_v<T>) requires std::is_default_constructible_v<T> : value() {}

  template <class Source, class OnFailure>
  constexpr StoredMember(Source&& source,
                         OnFailure on_failure) noexcept(std::is_nothrow_constructible_v<T, Source>) try
      : value(forward_if_nothrow<T, Source>(source)) {
  } catch (...) {
    if constexpr (!std::is_nothrow_constructible_v<T, Source>) on_failure();
  }

  [[no_unique_address]] T value;
};

/// Whether a T can be stored from a `Source` argument the forward_if_nothrow way (a type whose
/// move is deleted is still stored from an rvalue: it is copied, as P0052 says).
template <class T, class Source>
concept storable_from = std::is_constructible_v<T, decltype(forward_if_nothrow<T, Source>(
                                                       std::declval<std::remove_reference_t<Source>&>()))>;

/// The failure step of a UniqueResource constructor: releases `resource` with `deleter` when
/// the object was to own it (never the invalid value of make_unique_resource_checked).
template <class Deleter, class Resource>
struct ReleaseIfOwned {
  Deleter& deleter;
  Resource& resource;
  bool owns;
  void operator()() const noexcept {
    if (owns) call_reporting("unique_resource deleter (run because construction failed)", deleter, resource);
  }
};

struct NoFailureStep {
  constexpr void operator()() const noexcept {}
};

/// A function-pointer deleter built by default is null; reset() would then call through it.
template <class D>
concept defaults_to_a_usable_deleter = std::is_default_constructible_v<D> &&
    !(std::is_pointer_v<D> && std::is_function_v<std::remove_pointer_t<D>>);

/// `source` for an assignment: as an rvalue when that cannot throw (or it cannot be copied),
/// otherwise as a const lvalue, so a failed assignment leaves it intact.
template <class T, class Source>
constexpr decltype(auto) assign_from(Source& source) noexcept {
  if constexpr (std::is_nothrow_assignable_v<T&, Source&&> || !std::is_assignable_v<T&, const Source&>) {
    return std::move(source);
  } else {
    return static_cast<const Source&>(source);
  }
}

struct CheckedResource;

}  // namespace detail

/// Owns a handle `R` and calls `D(handle)` once when it is released.
///
/// Owning after construction from a handle (unless made by make_unique_resource_checked with the
/// invalid value). Move-only: the moved-from object owns nothing; a move that throws leaves the
/// source owning the real handle. `reset()` releases now, `reset(r)` releases and takes `r`,
/// `release()` gives up ownership without calling the deleter. Thread-safety: one owner, one
/// thread. Destructor: calls the deleter if owning; a deleter that throws there is delivered to
/// `teardown::report_error` (from `reset()` it propagates). `R` and `D` are object types (a
/// deviation from P0052, which also allows references: use std::ref).
template <class R, class D>
class UniqueResource {
  static_assert(std::is_object_v<R> && std::is_object_v<D>,
                "teardown::UniqueResource: R and D must be object types (store a pointer or "
                "std::reference_wrapper for a reference)");
  static_assert(std::is_invocable_v<D&, R&>,
                "teardown::UniqueResource: the deleter must be callable with the resource");

 public:
  // clang-format off
  /// Owns nothing. Not available for a function-pointer deleter, which would be null.
  UniqueResource()
    requires(std::is_default_constructible_v<R> && detail::defaults_to_a_usable_deleter<D>)
  = default;

  /// Owns `resource`. If storing either argument throws, `deleter(resource)` runs at once.
  template <class RR, class DD>
    requires(detail::storable_from<R, RR> && detail::storable_from<D, DD>)
  UniqueResource(RR&& resource, DD&& deleter) noexcept(std::is_nothrow_constructible_v<R, RR> &&
                                                       std::is_nothrow_constructible_v<D, DD>)
      : UniqueResource(std::forward<RR>(resource), std::forward<DD>(deleter), true) {}

  /// The moved-from object owns nothing. If storing the deleter or the handle throws, `other`
  /// still owns the real handle: the handle is copied, not moved, while the deleter's copy may
  /// throw. (A handle that can only be moved is released by `other`'s deleter instead, P0052.)
  UniqueResource(UniqueResource&& other) noexcept(detail::nothrow_relocatable_v<R> &&
                                                  detail::nothrow_relocatable_v<D>)
    requires((std::is_nothrow_move_constructible_v<R> || std::is_copy_constructible_v<R>) &&
             (std::is_nothrow_move_constructible_v<D> || std::is_copy_constructible_v<D>))
      : resource_(move_or_keep_handle(other), detail::NoFailureStep{}),
        deleter_(detail::forward_if_nothrow<D, D>(other.deleter_.value), ReleaseMovedHandle{other, resource_.value}),
        owns_(std::exchange(other.owns_, false)) {}
  // clang-format on

  /// Releases the handle owned now, then takes `other`'s. If assigning the deleter or the handle
  /// throws, `other` is intact (still owning) and this object owns nothing.
  UniqueResource& operator=(UniqueResource&& other) noexcept(
      std::is_nothrow_move_assignable_v<R>&& std::is_nothrow_move_assignable_v<D>&&
          std::is_nothrow_invocable_v<D&, R&>) {
    if (this != &other) {
      reset();
      if constexpr (std::is_nothrow_move_assignable_v<D>) {
        resource_.value = detail::assign_from<R>(other.resource_.value);
        deleter_.value = std::move(other.deleter_.value);
      } else {
        // The deleter first: if copying it throws, `other`'s handle has not been touched.
        deleter_.value = detail::assign_from<D>(other.deleter_.value);
        resource_.value = detail::assign_from<R>(other.resource_.value);
      }
      owns_ = std::exchange(other.owns_, false);
    }
    return *this;
  }

  UniqueResource(const UniqueResource&) = delete;
  UniqueResource& operator=(const UniqueResource&) = delete;

  ~UniqueResource() {
    if (!owns_) return;
    owns_ = false;
    detail::call_reporting("unique_resource deleter threw in a destructor", deleter_.value, resource_.value);
  }

  /// Releases the owned handle now (the deleter runs once); afterwards owns nothing.
  void reset() noexcept(std::is_nothrow_invocable_v<D&, R&>) {
    if (!owns_) return;
    owns_ = false;  // first, so a throwing deleter is never called twice
    deleter_.value(resource_.value);
  }

  /// Releases the owned handle and takes `resource`. If the assignment throws, the deleter runs
  /// on `resource` and the exception propagates.
  template <class RR>
  requires std::is_assignable_v<R&, RR>
  void reset(RR&& resource) {
    reset();
    if constexpr (std::is_nothrow_assignable_v<R&, RR>) {
      resource_.value = std::forward<RR>(resource);
    } else {
      try {
        if constexpr (std::is_assignable_v<R&, const std::remove_reference_t<RR>&>) {
          resource_.value = std::as_const(resource);
        } else {
          resource_.value = std::forward<RR>(resource);
        }
      } catch (...) {
        detail::call_reporting("unique_resource deleter (run because reset failed)", deleter_.value,
                               resource);
        throw;
      }
    }
    owns_ = true;
  }

  /// Gives up ownership without calling the deleter; returns the handle (moved out: for an int
  /// or a pointer that is a copy, so get() still returns it). If that move throws, still owns.
  R release() noexcept(detail::nothrow_relocatable_v<R>) {
    R handle(detail::forward_if_nothrow<R, R>(resource_.value));
    owns_ = false;
    return handle;
  }

  [[nodiscard]] const R& get() const noexcept { return resource_.value; }
  [[nodiscard]] const D& get_deleter() const noexcept { return deleter_.value; }
  [[nodiscard]] bool owns() const noexcept { return owns_; }
  explicit operator bool() const noexcept { return owns_; }

  /// For a pointer to an object type only (not `void*`, not a function pointer).
  std::add_lvalue_reference_t<std::remove_pointer_t<R>> operator*() const noexcept
      requires(std::is_pointer_v<R>&& std::is_object_v<std::remove_pointer_t<R>>) {
    return *resource_.value;
  }
  R operator->() const noexcept requires std::is_pointer_v<R> { return resource_.value; }

 private:
  friend struct detail::CheckedResource;

  /// In a move, whether the handle is copied (leaving `other` whole) because the deleter's copy
  /// may throw after it.
  static constexpr bool keeps_handle_while_deleter_moves =
      !detail::nothrow_relocatable_v<D> && std::is_copy_constructible_v<R>;

  /// A move whose deleter copy threw after the (move-only) handle was moved: `other`'s deleter
  /// releases the handle and `other` stops owning it (P0052's rule), so it is neither lost nor
  /// released twice.
  struct ReleaseMovedHandle {
    UniqueResource& other;
    R& moved_handle;
    void operator()() const noexcept {
      if (keeps_handle_while_deleter_moves || !other.owns_) return;
      other.owns_ = false;
      detail::call_reporting("unique_resource deleter (run because a move failed)", other.deleter_.value,
                             moved_handle);
    }
  };

  static constexpr decltype(auto) move_or_keep_handle(UniqueResource& other) noexcept {
    if constexpr (keeps_handle_while_deleter_moves) {
      return static_cast<const R&>(other.resource_.value);
    } else {
      return detail::forward_if_nothrow<R, R>(other.resource_.value);
    }
  }

  // clang-format off
  /// Owns `resource` if `owns`; if storing either argument throws, `deleter(resource)` runs at
  /// once, but only if it was to be owned.
  template <class RR, class DD>
  UniqueResource(RR&& resource, DD&& deleter, bool owns) noexcept(std::is_nothrow_constructible_v<R, RR> &&
                                                                  std::is_nothrow_constructible_v<D, DD>)
      : resource_(std::forward<RR>(resource), detail::ReleaseIfOwned<DD, RR>{deleter, resource, owns}),
        deleter_(std::forward<DD>(deleter), detail::ReleaseIfOwned<DD, R>{deleter, resource_.value, owns}),
        owns_(owns) {}
  // clang-format on

  [[no_unique_address]] detail::StoredMember<R> resource_;
  [[no_unique_address]] detail::StoredMember<D> deleter_;
  bool owns_ = false;
};

template <class R, class D>
UniqueResource(R, D) -> UniqueResource<R, D>;

namespace detail {
struct CheckedResource {
  template <class R, class D, class RR, class DD>
  static UniqueResource<R, D> make(RR&& resource, DD&& deleter, bool owns) {
    return UniqueResource<R, D>(std::forward<RR>(resource), std::forward<DD>(deleter), owns);
  }
};
}  // namespace detail

/// A UniqueResource that owns `resource` unless it equals `invalid` (say, -1 from ::open). The
/// deleter is never called on the invalid value, not even when storing the arguments throws.
template <class R, class D, class S = std::decay_t<R>>
[[nodiscard]] UniqueResource<std::decay_t<R>, std::decay_t<D>> make_unique_resource_checked(
    R&& resource, const S& invalid,
    D&& deleter) noexcept(std::is_nothrow_constructible_v<std::decay_t<R>, R>&&
                              std::is_nothrow_constructible_v<std::decay_t<D>, D>) {
  const bool owns = !bool(resource == invalid);
  return detail::CheckedResource::make<std::decay_t<R>, std::decay_t<D>>(std::forward<R>(resource),
                                                                         std::forward<D>(deleter), owns);
}

#if __has_include(<unistd.h>)

/// Owns a POSIX file descriptor; -1 means empty. `close()` is called once and never retried;
/// move-only, the moved-from object is empty. Defined in detail/fd.hpp, where the library's
/// own fd plumbing uses it.
using UniqueFd = detail::UniqueFd;

#endif

}  // namespace teardown
