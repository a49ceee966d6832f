// Counts heap allocations made by this thread between start() and stop(), by interposing
// malloc/calloc/realloc for the whole test binary, so allocations inside libpsl or the C++
// runtime count too. Include it in exactly one file per test binary. Sanitizer builds bring
// their own allocator: there DPTEST_COUNT_ALLOCATIONS stays undefined and the checks that use
// it are compiled out.
#pragma once

#if !defined(DP_SANITIZE_BUILD) && !defined(__SANITIZE_ADDRESS__)
#define DPTEST_COUNT_ALLOCATIONS 1
#include <cstddef>

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void __libc_free(void*);

namespace dptest::alloc {
inline thread_local bool counting = false;
inline thread_local size_t count = 0;
inline void start() {
    count = 0;
    counting = true;
}
inline size_t stop() {
    counting = false;
    return count;
}
}  // namespace dptest::alloc

extern "C" void* malloc(size_t n) {
    if (dptest::alloc::counting) ++dptest::alloc::count;
    return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b) {
    if (dptest::alloc::counting) ++dptest::alloc::count;
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n) {
    if (dptest::alloc::counting) ++dptest::alloc::count;
    return __libc_realloc(p, n);
}
extern "C" void free(void* p) { __libc_free(p); }
#endif
