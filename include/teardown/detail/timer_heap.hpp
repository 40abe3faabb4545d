// teardown/detail/timer_heap.hpp — a min-heap of one-shot timers with O(log n) cancel by id.
//
// The schedulers of resource_pool.hpp keep their timers here. A timer id names a slot whose
// generation changes when the slot is freed, so a stale id (a timer that already fired or was
// cancelled) is recognised and never cancels a newer timer that reuses the slot. Slots and
// heap positions are recycled: arming and cancelling in a steady state allocates nothing.
// Not thread-safe: the owning scheduler locks around it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace teardown::detail {

template <class TimePoint, class Payload>
class TimerHeap {
 public:
  static_assert(std::is_nothrow_move_constructible_v<Payload>,
                "teardown::detail::TimerHeap: the payload must be nothrow move constructible");

  using Id = std::uint64_t;  // never 0: 0 means "no timer" to callers

  struct Fired {
    Id id;
    TimePoint when;
    Payload payload;
  };

  /// Adds a timer due at `when`; timers due at the same point fire in the order they were armed.
  Id push(TimePoint when, Payload payload) {
    // Every allocation happens before the heap changes, so a throw leaves it as it was.
    heap_.reserve(heap_.size() + 1);
    if (free_slots_.empty()) {
      if (slots_.size() >= std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("teardown::detail::TimerHeap: too many timers armed at once");
      free_slots_.reserve(slots_.size() + 1);  // remove_at() pushes back without allocating
      slots_.emplace_back();
      free_slots_.push_back(static_cast<std::uint32_t>(slots_.size() - 1));
    }
    const std::uint32_t slot_index = free_slots_.back();
    free_slots_.pop_back();
    Slot& slot = slots_[slot_index];
    slot.payload.emplace(std::move(payload));
    heap_.push_back(Node{when, next_sequence_++, slot_index});
    sift_up(heap_.size() - 1);
    return make_id(slot.generation, slot_index);
  }

  /// Removes the timer `id` if it is still pending; O(log n). False for a timer that already
  /// fired, was cancelled, or never existed.
  bool erase(Id id) noexcept {
    Slot* slot = find(id);
    if (slot == nullptr) return false;
    remove_at(slot->heap_position);
    return true;
  }

  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }

  /// When the earliest timer is due. Precondition: !empty().
  [[nodiscard]] TimePoint next_due() const noexcept { return heap_.front().when; }

  /// Removes and returns the earliest timer. Precondition: !empty().
  Fired pop() noexcept {
    const Node top = heap_.front();
    Slot& slot = slots_[top.slot];
    Fired fired{make_id(slot.generation, top.slot), top.when, std::move(*slot.payload)};
    remove_at(0);
    return fired;
  }

 private:
  struct Node {
    TimePoint when;
    std::uint64_t sequence;  // ties broken by arming order
    std::uint32_t slot;
  };
  struct Slot {
    std::uint32_t generation = 1;
    std::size_t heap_position = 0;
    std::optional<Payload> payload;  // engaged while the timer is pending
  };

  static Id make_id(std::uint32_t generation, std::uint32_t slot) noexcept {
    return (static_cast<Id>(generation) << 32) | slot;
  }

  Slot* find(Id id) noexcept {
    const auto slot_index = static_cast<std::uint32_t>(id & 0xffffffffu);
    const auto generation = static_cast<std::uint32_t>(id >> 32);
    if (slot_index >= slots_.size()) return nullptr;
    Slot& slot = slots_[slot_index];
    if (slot.generation != generation || !slot.payload) return nullptr;
    return &slot;
  }

  static bool earlier(const Node& a, const Node& b) noexcept {
    return a.when < b.when || (a.when == b.when && a.sequence < b.sequence);
  }

  void remove_at(std::size_t position) noexcept {
    const std::uint32_t slot_index = heap_[position].slot;
    Slot& slot = slots_[slot_index];
    slot.payload.reset();
    // A generation of 0 would make a valid id equal to 0 ("no timer") for slot 0.
    if (++slot.generation == 0) slot.generation = 1;
    free_slots_.push_back(slot_index);  // capacity reserved: slots_.size() bounds it
    const std::size_t last = heap_.size() - 1;
    if (position != last) {
      place(position, heap_[last]);
      heap_.pop_back();
      if (position > 0 && earlier(heap_[position], heap_[(position - 1) / 2])) {
        sift_up(position);
      } else {
        sift_down(position);
      }
    } else {
      heap_.pop_back();
    }
  }

  void place(std::size_t position, const Node& node) noexcept {
    heap_[position] = node;
    slots_[node.slot].heap_position = position;
  }

  void sift_up(std::size_t position) noexcept {
    const Node node = heap_[position];
    while (position > 0) {
      const std::size_t parent = (position - 1) / 2;
      if (!earlier(node, heap_[parent])) break;
      place(position, heap_[parent]);
      position = parent;
    }
    place(position, node);
  }

  void sift_down(std::size_t position) noexcept {
    const Node node = heap_[position];
    const std::size_t count = heap_.size();
    while (true) {
      std::size_t child = 2 * position + 1;
      if (child >= count) break;
      if (child + 1 < count && earlier(heap_[child + 1], heap_[child])) ++child;
      if (!earlier(heap_[child], node)) break;
      place(position, heap_[child]);
      position = child;
    }
    place(position, node);
  }

  std::vector<Node> heap_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace teardown::detail
