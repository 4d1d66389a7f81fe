// A growable byte queue: append at the back, consume from the front, storage reused.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "tether/protocol.hpp"

namespace tether {

/// Contiguous FIFO of bytes. Consuming from the front only moves an offset; the storage is
/// compacted when the consumed part dominates, so a steady stream allocates nothing.
/// Unlike std::vector it never zero-fills space it is about to overwrite. Not thread-safe.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&&) noexcept = default;
  ByteBuffer& operator=(ByteBuffer&&) noexcept = default;

  ByteView data() const noexcept { return {storage_.get() + head_, tail_ - head_}; }
  MutableByteView mutable_data() noexcept { return {storage_.get() + head_, tail_ - head_}; }
  std::size_t size() const noexcept { return tail_ - head_; }
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t capacity() const noexcept { return capacity_; }

  /// Makes room for `n` more bytes at the back and returns where to write them; commit() after.
  std::byte* prepare(std::size_t n) {
    if (capacity_ - tail_ < n) make_room(n);
    return storage_.get() + tail_;
  }
  /// Publishes `n` bytes written after prepare(n).
  void commit(std::size_t n) noexcept { tail_ += n; }
  void append(ByteView b) {
    if (b.empty()) return;
    std::memcpy(prepare(b.size()), b.data(), b.size());
    commit(b.size());
  }
  /// Drops `n` bytes from the front.
  void consume(std::size_t n) noexcept {
    head_ += n;
    if (head_ == tail_) head_ = tail_ = 0;
  }
  void clear() noexcept { head_ = tail_ = 0; }
  /// Frees the storage when it is empty and larger than `keep` bytes (idle connections).
  void shrink_if_idle(std::size_t keep) noexcept {
    if (empty() && capacity_ > keep) {
      storage_.reset();
      capacity_ = head_ = tail_ = 0;
    }
  }

 private:
  void make_room(std::size_t n) {
    std::size_t live = size();
    if (capacity_ - live >= n) {
      // Enough room once the consumed front is reclaimed: slide instead of growing.
      std::memmove(storage_.get(), storage_.get() + head_, live);
    } else {
      std::size_t cap = std::max({live + n, capacity_ * 2, std::size_t{256}});
      auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
      if (live) std::memcpy(bigger.get(), storage_.get() + head_, live);
      storage_ = std::move(bigger);
      capacity_ = cap;
    }
    head_ = 0;
    tail_ = live;
  }

  std::unique_ptr<std::byte[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace tether
