// heap_watch: an LD_PRELOAD shim that finds which allocations make a process's resident memory
// grow after its warm-up. glibc keeps freed memory resident, so RSS only grows when an
// allocation reaches past the highest address its heap has ever handed out (a new high-water
// mark) or when a chunk is large enough to get its own mapping. This logs exactly those
// allocations, after HEAP_WATCH_AFTER seconds (default 60), with a backtrace, to the file named
// by HEAP_WATCH_LOG with ".PID" appended (default stderr).
//   build: gcc -O2 -shared -fPIC -o heap_watch.so bench/heap_watch.c
//   use:   HEAP_WATCH_LOG=/tmp/hw.log LD_PRELOAD=./heap_watch.so tether soak ...
// Symbolise the addresses with `addr2line -f -C -e BINARY OFFSET` (the log prints module+offset).
#define _GNU_SOURCE
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void __libc_free(void*);

enum { page = 4096, max_heaps = 64 };
// glibc's non-main arenas live in heaps aligned to 64 MiB; the main heap is small and
// contiguous, so keying by 64 MiB block separates arenas without knowing glibc's internals.
static const int heap_shift = 26;

static struct { uintptr_t key, high; } heaps[max_heaps];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside;
static int log_fd = 2;
static double after_s = 60;
static struct timespec start;

static double elapsed(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - start.tv_sec) + (double)(t.tv_nsec - start.tv_nsec) / 1e9;
}

__attribute__((constructor)) static void init(void) {
  clock_gettime(CLOCK_MONOTONIC, &start);
  const char* a = getenv("HEAP_WATCH_AFTER");
  if (a) after_s = atof(a);
  const char* path = getenv("HEAP_WATCH_LOG");
  if (path) {
    // One log per process: a script run under the shim starts several.
    char name[512];
    snprintf(name, sizeof name, "%s.%ld", path, (long)getpid());
    log_fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  }
  // backtrace() loads libgcc_s on first use, which allocates: do it now, not inside malloc.
  void* frames[2];
  inside = 1;
  backtrace(frames, 2);
  inside = 0;
}

static void report(const char* what, void* p, size_t size, uintptr_t grew) {
  char line[160];
  int n = snprintf(line, sizeof line, "t=%.3f tid=%ld %s size=%zu ptr=%p grew=%lu\n", elapsed(),
                   (long)syscall(SYS_gettid), what, size, p, (unsigned long)grew);
  if (write(log_fd, line, (size_t)n) < 0) return;
  void* frames[24];
  int depth = backtrace(frames, 24);
  backtrace_symbols_fd(frames + 2, depth - 2, log_fd);
  if (write(log_fd, "\n", 1) < 0) return;
}

static void watch(void* p, size_t size) {
  if (!p || inside) return;
  inside = 1;
  size_t usable = malloc_usable_size(p);
  // Bit 1 of the chunk's size word: the chunk is a mapping of its own, freed back on free().
  int mapped = (((size_t*)p)[-1] & 2) != 0;
  if (mapped) {
    if (elapsed() >= after_s) report("mmap", p, size, usable);
  } else {
    // The allocation also writes the header of the chunk after it.
    uintptr_t end = ((uintptr_t)p + usable + 16 + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t key = (uintptr_t)p >> heap_shift;
    pthread_mutex_lock(&lock);
    int i = 0;
    while (i < max_heaps && heaps[i].key != key && heaps[i].key != 0) ++i;
    uintptr_t grew = 0;
    if (i < max_heaps) {
      if (heaps[i].key == 0) heaps[i].key = key;
      if (end > heaps[i].high) {
        grew = heaps[i].high ? end - heaps[i].high : 0;
        heaps[i].high = end;
      }
    }
    pthread_mutex_unlock(&lock);
    if (grew && elapsed() >= after_s) report("grow", p, size, grew);
  }
  inside = 0;
}

void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  watch(p, n);
  return p;
}

void* calloc(size_t n, size_t m) {
  void* p = __libc_calloc(n, m);
  watch(p, n * m);
  return p;
}

void* realloc(void* old, size_t n) {
  void* p = __libc_realloc(old, n);
  watch(p, n);
  return p;
}

void free(void* p) {
  __libc_free(p);
}
