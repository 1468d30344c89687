// Which SIMD target runs, and with how many threads. Chosen once at import, forceable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fusedopt/kernel_table.hpp"

namespace fusedopt {

struct TargetInfo {
    std::string name;      // baseline, avx2, avx512
    bool supported;        // this CPU (and OS) can run it
    const KernelTable* table;  // null where not supported (its code must not run)
};

std::vector<TargetInfo> compiled_targets();   // lowest first
std::string best_supported_target();
const KernelTable& active_kernels();
std::string active_target();
// Makes `name` the active target. Throws std::invalid_argument if it is not compiled in
// or this CPU cannot run it (the Python layer turns the latter into a warning and a fallback).
void set_active_target(const std::string& name);

bool openmp_enabled();
int max_threads();                 // OpenMP's default team size (honours OMP_NUM_THREADS)
int num_threads();                 // set_num_threads's n (else max_threads), at most max_threads
void set_num_threads(int n);       // n >= 1; also this thread's OpenMP limit
std::size_t min_parallel_elements();
void set_min_parallel_elements(std::size_t n);
// Optimizer steps flush denormals to zero unless set_flush_denormal(false); the standalone
// clipping and norm functions never do.
bool flush_denormal();
void set_flush_denormal(bool on);
Exec current_exec();               // clipping, norms, probes
Exec step_exec();                  // an optimizer step
void allow_byte_permutes(bool on);  // tests: kernel_table.hpp, byte_permutes_allowed
void allow_vector_loops(bool on);   // tests: kernel_table.hpp, vector_loops_allowed
// Tests: the elements vector loops took since the last call (counted while `counting` was on;
// kernel_table.hpp, count_vector_loop), and whether to count from now.
std::uint64_t take_vector_loop_count(bool counting);

}  // namespace fusedopt
