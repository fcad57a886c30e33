#pragma once
// A fixed-capacity lock-free queue (Dmitry Vyukov's bounded MPMC ring), used as the gateway's
// MPSC hand-off from I/O threads to the ledger sender: TryPush never blocks and fails when the
// queue is full, so a stalled consumer can never stall a request.
//
//   BoundedQueue<std::unique_ptr<Event>> queue(100000);
//   if (!queue.TryPush(std::move(event))) CountDrop();   // any thread
//   while (auto e = queue.TryPop()) Send(std::move(*e));  // consumer thread(s)
//
// Thread-safe for any number of producers and consumers. T must be default-constructible and
// movable.

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>

namespace tollgate::gateway {

template <typename T>
class BoundedQueue {
 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit BoundedQueue(size_t capacity) {
    size_t n = 2;
    while (n < capacity) n <<= 1;
    mask_ = n - 1;
    capacity_ = capacity < 2 ? 2 : capacity;
    cells_ = std::make_unique<Cell[]>(n);
    for (size_t i = 0; i < n; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }

  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Moves `value` into the queue; returns false (leaving `value` untouched) when full.
  bool TryPush(T&& value) {
    if (size() >= capacity_) return false;
    size_t pos = enqueue_pos_.load(std::memory_order_relaxed);
    Cell* cell;
    while (true) {
      cell = &cells_[pos & mask_];
      const size_t seq = cell->sequence.load(std::memory_order_acquire);
      const intptr_t diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (diff == 0) {
        if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return false;  // full
      } else {
        pos = enqueue_pos_.load(std::memory_order_relaxed);
      }
    }
    cell->value = std::move(value);
    cell->sequence.store(pos + 1, std::memory_order_release);
    return true;
  }

  std::optional<T> TryPop() {
    size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    Cell* cell;
    while (true) {
      cell = &cells_[pos & mask_];
      const size_t seq = cell->sequence.load(std::memory_order_acquire);
      const intptr_t diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
      if (diff == 0) {
        if (dequeue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return std::nullopt;  // empty
      } else {
        pos = dequeue_pos_.load(std::memory_order_relaxed);
      }
    }
    std::optional<T> out(std::move(cell->value));
    cell->value = T();
    cell->sequence.store(pos + mask_ + 1, std::memory_order_release);
    return out;
  }

  // Approximate number of queued items (exact when no push or pop is in progress).
  size_t size() const {
    const size_t enq = enqueue_pos_.load(std::memory_order_relaxed);
    const size_t deq = dequeue_pos_.load(std::memory_order_relaxed);
    return enq >= deq ? enq - deq : 0;
  }

  size_t capacity() const { return capacity_; }

 private:
  struct Cell {
    std::atomic<size_t> sequence;
    T value;
  };

  static constexpr size_t kCacheLine = 64;

  std::unique_ptr<Cell[]> cells_;
  size_t mask_ = 0;
  size_t capacity_ = 0;
  alignas(kCacheLine) std::atomic<size_t> enqueue_pos_{0};
  alignas(kCacheLine) std::atomic<size_t> dequeue_pos_{0};
};

}  // namespace tollgate::gateway
