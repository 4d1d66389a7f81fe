#include "tether/byte_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#if defined(__SANITIZE_THREAD__)
#define TETHER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TETHER_TSAN 1
#endif
#endif
#ifndef TETHER_TSAN
#define TETHER_TSAN 0
#endif

namespace tether {

namespace detail {

namespace {

std::size_t whole_pages(std::size_t n) noexcept {
  static const std::size_t page = [] {
    long size = sysconf(_SC_PAGESIZE);
    return size > 0 ? static_cast<std::size_t>(size) : std::size_t{4096};
  }();
  return (n + page - 1) / page * page;
}

}  // namespace

std::byte* map_pages(std::size_t& size) noexcept {
  const std::size_t rounded = whole_pages(size);
  void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  size = rounded;
  return static_cast<std::byte*>(p);
}

void unmap_pages(std::byte* data, std::size_t size) noexcept {
  munmap(data, size);
}

std::byte* remap_pages(std::byte* data, std::size_t old_size, std::size_t& size) noexcept {
#if TETHER_TSAN
  // ThreadSanitizer does not intercept mremap, so the pages the kernel moves or adds keep the
  // shadow state of whatever was at those addresses before, such as the stack of a thread that
  // has exited, and it reports races with writes that happened to other memory. Map, copy and
  // unmap instead: all three are intercepted.
  std::byte* p = map_pages(size);
  if (!p) return nullptr;
  std::memcpy(p, data, std::min(old_size, size));
  unmap_pages(data, old_size);
  return p;
#else
  const std::size_t rounded = whole_pages(size);
  void* p = mremap(data, old_size, rounded, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return nullptr;
  size = rounded;
  return static_cast<std::byte*>(p);
#endif
}

}  // namespace detail

namespace {

struct Storage {
  std::byte* data;
  std::size_t capacity;
  bool mapped;
};

// Mapped from the threshold up; from operator new below it, or when the kernel refuses a
// mapping (a process near its limit of mappings still gets its buffer).
Storage allocate(std::size_t capacity) {
  if (capacity >= detail::mapped_buffer_threshold) {
    std::size_t size = capacity;
    if (std::byte* p = detail::map_pages(size)) return {p, size, true};
  }
  return {static_cast<std::byte*>(::operator new(capacity)), capacity, false};
}

void free_storage(std::byte* data, std::size_t capacity, bool mapped) noexcept {
  if (mapped)
    detail::unmap_pages(data, capacity);
  else
    ::operator delete(data);
}

}  // namespace

void ByteBuffer::release() noexcept {
  if (storage_) free_storage(storage_, capacity_, mapped_);
  storage_ = nullptr;
  capacity_ = 0;
  mapped_ = false;
}

void ByteBuffer::adopt(std::byte* data, std::size_t capacity, bool mapped) noexcept {
  release();
  storage_ = data;
  capacity_ = capacity;
  mapped_ = mapped;
}

void ByteBuffer::make_room(std::size_t n) {
  const std::size_t live = size();
  if (capacity_ - live >= n) {
    // Enough room once the consumed front is reclaimed: slide instead of growing.
    std::memmove(storage_, storage_ + head_, live);
  } else {
    if (head_ != 0) std::memmove(storage_, storage_ + head_, live);
    std::size_t cap = std::max({live + n, capacity_ * 2, std::size_t{256}});
    std::byte* moved = mapped_ ? detail::remap_pages(storage_, capacity_, cap) : nullptr;
    if (moved) {  // grown in place or moved by the kernel, without a copy
      storage_ = moved;
      capacity_ = cap;
    } else {
      Storage bigger = allocate(cap);
      if (live) std::memcpy(bigger.data, storage_, live);
      adopt(bigger.data, bigger.capacity, bigger.mapped);
    }
  }
  head_ = 0;
  tail_ = live;
}

void ByteBuffer::shrink_to_contents() {
  if (empty()) return shrink_if_idle(0);
  const std::size_t live = size();
  Storage smaller = allocate(live);
  if (smaller.capacity >= capacity_) {  // a page is a page: nothing to gain
    free_storage(smaller.data, smaller.capacity, smaller.mapped);
    return;
  }
  std::memcpy(smaller.data, storage_ + head_, live);
  adopt(smaller.data, smaller.capacity, smaller.mapped);
  head_ = 0;
  tail_ = live;
}

}  // namespace tether
