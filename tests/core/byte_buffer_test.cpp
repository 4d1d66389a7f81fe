#include "tether/byte_buffer.hpp"

#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <vector>

namespace tether {
namespace {

std::vector<std::byte> pattern(std::size_t n, std::size_t seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::byte((i * 131 + seed) & 0xff);
  return v;
}

// Whether the page holding `p` is mapped: mincore fails with ENOMEM on an unmapped address.
bool page_mapped(const std::byte* p) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  auto* start = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) / page * page);
  unsigned char resident = 0;
  if (mincore(start, page, &resident) == 0) return true;
  EXPECT_EQ(errno, ENOMEM);
  return false;
}

TEST(ByteBuffer, KeepsBytesInOrderWhileGrowingPastAPageWithAConsumedFront) {
  ByteBuffer b;
  std::vector<std::byte> expected;
  std::size_t consumed = 0;
  // Appends of odd sizes, with part of the front consumed before each, so that growth (by
  // operator new below a page, by remapping above) happens with a non-zero head.
  for (std::size_t i = 0; i < 40; ++i) {
    auto piece = pattern(97 * i + 13, i);
    b.append(piece);
    expected.insert(expected.end(), piece.begin(), piece.end());
    const std::size_t drop = b.size() / 3;
    b.consume(drop);
    consumed += drop;
    auto view = b.data();
    ASSERT_EQ(view.size(), expected.size() - consumed);
    ASSERT_TRUE(std::equal(view.begin(), view.end(), expected.begin() + consumed)) << i;
  }
  EXPECT_GE(b.capacity(), detail::mapped_buffer_threshold);
}

TEST(ByteBuffer, CapacityOfAMappedBufferIsWholePages) {
  ByteBuffer b;
  b.prepare(5000);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_GE(b.capacity(), 5000u);
  EXPECT_EQ(b.capacity() % page, 0u);
  ByteBuffer small;
  small.prepare(300);
  EXPECT_EQ(small.capacity(), 300u);  // below a page: exactly what was asked, from the heap
}

TEST(ByteBuffer, FreeingAMappedBufferUnmapsItsPages) {
  ByteBuffer b;
  auto bytes = pattern(64 * 1024, 7);
  b.append(bytes);
  const std::byte* where = b.data().data();
  ASSERT_TRUE(page_mapped(where));
  b.consume(b.size());
  b.shrink_if_idle(0);
  EXPECT_EQ(b.capacity(), 0u);
  // From malloc, these pages would still be mapped (and often resident): the point of mapping
  // burst buffers is that releasing one lowers the RSS at once.
  EXPECT_FALSE(page_mapped(where));
}

TEST(ByteBuffer, ShrinkToContentsKeepsWhatItHoldsInSmallerStorage) {
  ByteBuffer b;
  auto bytes = pattern(40000, 5);
  b.append(bytes);
  b.consume(39000);  // 1000 bytes left, not at the front
  const std::byte* where = b.data().data();
  b.shrink_to_contents();
  EXPECT_EQ(b.capacity(), 1000u);
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_TRUE(std::equal(b.data().begin(), b.data().end(), bytes.begin() + 39000));
  EXPECT_FALSE(page_mapped(where));
  b.append(pattern(10, 1));  // and it grows again from there
  EXPECT_EQ(b.size(), 1010u);
  b.consume(b.size());
  b.shrink_to_contents();
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(ByteBuffer, MovingHandsTheStorageOverAndLeavesTheSourceEmpty) {
  ByteBuffer a;
  auto bytes = pattern(10000, 3);
  a.append(bytes);
  const std::byte* where = a.data().data();
  ByteBuffer b(std::move(a));
  EXPECT_EQ(a.capacity(), 0u);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.data().data(), where);
  ByteBuffer c;
  c.append(pattern(100, 1));
  c = std::move(b);
  EXPECT_EQ(b.capacity(), 0u);
  ASSERT_EQ(c.size(), bytes.size());
  EXPECT_TRUE(std::equal(c.data().begin(), c.data().end(), bytes.begin()));
  c = ByteBuffer();
  EXPECT_FALSE(page_mapped(where));
}

// A process at its limit of mappings (vm.max_map_count) still gets its buffers, from the heap.
TEST(ByteBuffer, FallsBackToTheHeapWhenTheKernelRefusesAMapping) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' own allocators need new mappings for the heap side too, and abort
  // without them; the release build runs this test.
  GTEST_SKIP() << "needs glibc malloc, not a sanitizer's allocator";
#endif
  EXPECT_EXIT(
      {
        auto bytes = pattern(100000, 9);
        // The heap cannot grow either once mappings run out (brk counts them too): give malloc
        // room first, and keep it from mapping or trimming.
        mallopt(M_MMAP_THRESHOLD, 16 << 20);  // the most glibc accepts is 32 MiB
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        void* volatile room = std::malloc(4 << 20);  // volatile: the pair is not optimised away
        std::free(room);
        // Single pages of alternating protection cannot merge: each is a mapping of its own.
        for (int i = 0;; ++i) {
          void* p = mmap(nullptr, 4096, i % 2 ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
          if (p == MAP_FAILED) break;
        }
        ByteBuffer b;
        b.append(bytes);
        b.consume(50000);
        b.append(bytes);
        auto view = b.data();
        bool intact = view.size() == 150000 &&
                      std::equal(view.begin(), view.begin() + 50000, bytes.begin() + 50000) &&
                      std::equal(view.begin() + 50000, view.end(), bytes.begin());
        b.consume(149000);
        b.shrink_to_contents();
        std::exit(intact && b.size() == 1000 ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

TEST(BurstAllocator, AVectorGrownPastAPageIsUnmappedWhenFreed) {
  std::vector<std::uint64_t, BurstAllocator<std::uint64_t>> v;
  for (std::uint64_t i = 0; i < 100000; ++i) v.push_back(i * 7);
  EXPECT_EQ(std::accumulate(v.begin(), v.end(), std::uint64_t{0}),
            std::uint64_t{7} * (99999 * 100000ull / 2));
  const std::byte* where = reinterpret_cast<const std::byte*>(v.data());
  ASSERT_TRUE(page_mapped(where));
  decltype(v)().swap(v);
  EXPECT_FALSE(page_mapped(where));
  std::vector<int, BurstAllocator<int>> small{1, 2, 3};  // below a page: from the heap
  EXPECT_EQ(small[2], 3);
}

}  // namespace
}  // namespace tether
