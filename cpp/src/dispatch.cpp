#include "fusedopt/dispatch.hpp"

#include <atomic>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fusedopt {

#ifdef FUSEDOPT_HAVE_BASELINE
namespace baseline { const KernelTable& kernel_table(); }
#endif
#ifdef FUSEDOPT_HAVE_AVX2
namespace avx2 { const KernelTable& kernel_table(); }
#endif
#ifdef FUSEDOPT_HAVE_AVX512
namespace avx512 { const KernelTable& kernel_table(); }
#endif

namespace {

#if defined(__x86_64__) || defined(_M_X64)
// GCC's checks include the OS saving the wider registers (XGETBV), and the full
// x86-64-v3 / -v4 feature sets (BMI, MOVBE, AVX-512 BW/DQ/VL, ...) the compiler may use.
bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3");
}
bool cpu_has_avx512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4");
}
#else
bool cpu_has_avx2() { return false; }
bool cpu_has_avx512() { return false; }
#endif

// A target's kernel_table() runs code compiled for that target (building its table), so it is
// called only where the CPU can run it: on an AVX2 machine, touching the AVX-512 table at
// import raised SIGILL (found under valgrind, which has no AVX-512).
std::vector<TargetInfo> make_targets() {
    std::vector<TargetInfo> t;
    auto add = [&t](const char* name, bool supported, const KernelTable& (*table)()) {
        t.push_back({name, supported, supported ? &table() : nullptr});
    };
#ifdef FUSEDOPT_HAVE_BASELINE
    add("baseline", true, &baseline::kernel_table);
#endif
#ifdef FUSEDOPT_HAVE_AVX2
    add("avx2", cpu_has_avx2(), &avx2::kernel_table);
#endif
#ifdef FUSEDOPT_HAVE_AVX512
    add("avx512", cpu_has_avx512(), &avx512::kernel_table);
#endif
    return t;
}

const std::vector<TargetInfo>& targets() {
    static const std::vector<TargetInfo> t = make_targets();
    return t;
}

const KernelTable* best_table() {
    const KernelTable* best = nullptr;
    for (const auto& t : targets())
        if (t.supported) best = t.table;
    return best;
}

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<int> g_threads{0};  // 0: not set yet, use max_threads()
std::atomic<std::size_t> g_min_parallel{1u << 16};
std::atomic<bool> g_flush_denormals{true};
std::atomic<bool> g_byte_permutes{true};
std::atomic<bool> g_vector_loops{true};
std::atomic<bool> g_counting_vector_loops{false};
std::atomic<std::uint64_t> g_vector_loop_elements{0};

}  // namespace

std::vector<TargetInfo> compiled_targets() { return targets(); }

std::string best_supported_target() { return best_table()->name; }

const KernelTable& active_kernels() {
    const KernelTable* t = g_active.load(std::memory_order_acquire);
    if (!t) {
        t = best_table();
        g_active.store(t, std::memory_order_release);
    }
    return *t;
}

std::string active_target() { return active_kernels().name; }

void set_active_target(const std::string& name) {
    for (const auto& t : targets()) {
        if (t.name != name) continue;
        if (!t.supported) throw std::invalid_argument("target '" + name + "' is not supported by this CPU");
        g_active.store(t.table, std::memory_order_release);
        return;
    }
    throw std::invalid_argument("target '" + name + "' is not compiled into this build");
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int num_threads() {
    // The calling thread's OpenMP limit bounds it, so threadpoolctl's threadpool_limits (which
    // sets that limit through omp_set_num_threads) limits fusedopt too.
    const int n = g_threads.load(std::memory_order_relaxed);
    const int limit = max_threads();
    return n > 0 && n < limit ? n : limit;
}

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("num_threads must be >= 1");
    g_threads.store(openmp_enabled() ? n : 1, std::memory_order_relaxed);
#ifdef _OPENMP
    omp_set_num_threads(n);  // lifts this thread's limit too (as torch.set_num_threads does)
#endif
}

std::size_t min_parallel_elements() { return g_min_parallel.load(std::memory_order_relaxed); }

void set_min_parallel_elements(std::size_t n) { g_min_parallel.store(n, std::memory_order_relaxed); }

bool flush_denormal() { return g_flush_denormals.load(std::memory_order_relaxed); }

void set_flush_denormal(bool on) { g_flush_denormals.store(on, std::memory_order_relaxed); }

Exec current_exec() { return Exec{num_threads(), min_parallel_elements(), false}; }

Exec step_exec() { return Exec{num_threads(), min_parallel_elements(), flush_denormal()}; }

bool byte_permutes_allowed() { return g_byte_permutes.load(std::memory_order_relaxed); }
void allow_byte_permutes(bool on) { g_byte_permutes.store(on, std::memory_order_relaxed); }
bool vector_loops_allowed() { return g_vector_loops.load(std::memory_order_relaxed); }
void allow_vector_loops(bool on) { g_vector_loops.store(on, std::memory_order_relaxed); }
void count_vector_loop(std::size_t elements) {
    if (g_counting_vector_loops.load(std::memory_order_relaxed))
        g_vector_loop_elements.fetch_add(elements, std::memory_order_relaxed);
}
std::uint64_t take_vector_loop_count(bool counting) {
    g_counting_vector_loops.store(counting, std::memory_order_relaxed);
    return g_vector_loop_elements.exchange(0, std::memory_order_relaxed);
}

}  // namespace fusedopt
