// Replaces every replaceable global operator new and operator delete for the executable it is
// built into. Include it from exactly one translation unit per test executable (the operators are
// ordinary, non-inline definitions), and only where the build allows a replacement: TSan's runtime
// defines operator new itself, so the including test keeps its own TSan guard around the include.
//
// Every form is defined, so that no allocation pairs a runtime's operator new with this delete (a
// sanitizer runtime that also defines them keeps all of its own forms in one object file, which
// must then not be needed at all). The policy stays with the test: it defines
// teardown_test::allow_allocation, which every operator new calls before it allocates, to count
// allocations or to make a chosen one fail.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace teardown_test {

/// Defined by the test that includes this header; called by every replaced operator new before it
/// allocates. Returning false makes that allocation fail: the nothrow forms return nullptr, the
/// others throw std::bad_alloc. It must not allocate.
bool allow_allocation(std::size_t size) noexcept;

namespace replaced_new {

inline void* allocate_or_null(std::size_t size, std::size_t align) noexcept {
  if (!allow_allocation(size)) return nullptr;
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  void* memory = nullptr;
  return ::posix_memalign(&memory, align, size) == 0 ? memory : nullptr;
}

inline void* allocate(std::size_t size, std::size_t align) {
  if (void* memory = allocate_or_null(size, align)) return memory;
  throw std::bad_alloc();
}

inline constexpr std::size_t default_align = alignof(std::max_align_t);

}  // namespace replaced_new
}  // namespace teardown_test

void* operator new(std::size_t size) {
  return teardown_test::replaced_new::allocate(size, teardown_test::replaced_new::default_align);
}
void* operator new[](std::size_t size) {
  return teardown_test::replaced_new::allocate(size, teardown_test::replaced_new::default_align);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return teardown_test::replaced_new::allocate(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return teardown_test::replaced_new::allocate(size, static_cast<std::size_t>(align));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return teardown_test::replaced_new::allocate_or_null(size, teardown_test::replaced_new::default_align);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return teardown_test::replaced_new::allocate_or_null(size, teardown_test::replaced_new::default_align);
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return teardown_test::replaced_new::allocate_or_null(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return teardown_test::replaced_new::allocate_or_null(size, static_cast<std::size_t>(align));
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t, const std::nothrow_t&) noexcept { std::free(memory); }
