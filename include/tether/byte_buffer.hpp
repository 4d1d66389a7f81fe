// A growable byte queue: append at the back, consume from the front, storage reused.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "tether/protocol.hpp"

namespace tether {

namespace detail {
/// From this size up, buffers that grow in bursts (ByteBuffer, BurstAllocator) are mapped
/// from the kernel page by page rather than taken from malloc, so that freeing one hands its
/// pages back at once. From malloc, a buffer grown by a burst and freed afterwards often stays
/// resident: glibc gives the free top of a thread's arena back only after a free of 64 KiB or
/// more, and never memory below a block still in use. Past 1 KiB, where a session's buffers
/// start being released after a burst (so even a 2 KiB step of the heap would stay), at the
/// cost of rounding such a buffer up to a page.
inline constexpr std::size_t mapped_buffer_threshold = 1025;
/// Maps `size` bytes, rounded up to whole pages (written back); nullptr if the kernel refuses
/// (out of memory, or the process's limit of mappings reached).
std::byte* map_pages(std::size_t& size) noexcept;
void unmap_pages(std::byte* data, std::size_t size) noexcept;
/// Grows a mapping to `size` (rounded up, written back), moving it if it must, contents kept;
/// nullptr, the old mapping intact, if the kernel refuses.
std::byte* remap_pages(std::byte* data, std::size_t old_size, std::size_t& size) noexcept;
}  // namespace detail

/// A standard allocator for containers that grow in bursts: below mapped_buffer_threshold from
/// operator new, from there up mapped from the kernel, so that freeing a container grown by a
/// burst lowers the RSS at once. Throws std::bad_alloc if the kernel refuses a mapping.
template <typename T>
struct BurstAllocator {
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  using value_type = T;
  BurstAllocator() = default;
  template <typename U>
  BurstAllocator(const BurstAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    std::size_t bytes = n * sizeof(T);
    if (bytes < detail::mapped_buffer_threshold) return static_cast<T*>(::operator new(bytes));
    if (std::byte* p = detail::map_pages(bytes)) return reinterpret_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, std::size_t n) noexcept {
    std::size_t bytes = n * sizeof(T);
    if (bytes < detail::mapped_buffer_threshold)
      ::operator delete(p);
    else
      detail::unmap_pages(reinterpret_cast<std::byte*>(p), bytes);  // whole pages, as mapped
  }
  template <typename U>
  bool operator==(const BurstAllocator<U>&) const noexcept {
    return true;
  }
};

/// Contiguous FIFO of bytes. Consuming from the front only moves an offset; the storage is
/// compacted when the consumed part dominates, so a steady stream allocates nothing.
/// Unlike std::vector it never zero-fills space it is about to overwrite. Storage from
/// detail::mapped_buffer_threshold up is mapped from the kernel (from operator new if it
/// refuses), so freeing it lowers the process's RSS whatever the malloc. Not thread-safe.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&& o) noexcept
      : storage_(std::exchange(o.storage_, nullptr)),
        capacity_(std::exchange(o.capacity_, 0)),
        mapped_(std::exchange(o.mapped_, false)),
        head_(std::exchange(o.head_, 0)),
        tail_(std::exchange(o.tail_, 0)) {}
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    if (this != &o) {
      release();
      storage_ = std::exchange(o.storage_, nullptr);
      capacity_ = std::exchange(o.capacity_, 0);
      mapped_ = std::exchange(o.mapped_, false);
      head_ = std::exchange(o.head_, 0);
      tail_ = std::exchange(o.tail_, 0);
    }
    return *this;
  }
  ~ByteBuffer() { release(); }

  ByteView data() const noexcept { return {storage_ + head_, tail_ - head_}; }
  MutableByteView mutable_data() noexcept { return {storage_ + head_, tail_ - head_}; }
  std::size_t size() const noexcept { return tail_ - head_; }
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t capacity() const noexcept { return capacity_; }

  /// Makes room for `n` more bytes at the back and returns where to write them; commit() after.
  std::byte* prepare(std::size_t n) {
    if (capacity_ - tail_ < n) make_room(n);
    return storage_ + tail_;
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
      release();
      head_ = tail_ = 0;
    }
  }
  /// Frees the storage, or moves what it holds into storage just large enough. For buffers
  /// grown by a burst that are rarely seen empty (a busy connection between two writes).
  void shrink_to_contents();

 private:
  void release() noexcept;
  // Frees the current storage and takes `data` in its place (contents already copied).
  void adopt(std::byte* data, std::size_t capacity, bool mapped) noexcept;
  void make_room(std::size_t n);

  std::byte* storage_ = nullptr;
  std::size_t capacity_ = 0;
  bool mapped_ = false;  // storage_ is a mapping of capacity_ bytes, not from operator new
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace tether
