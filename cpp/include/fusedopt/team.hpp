// Whether helper threads pay off on this machine right now.
//
// When another process holds a core, a helper thread may start (or resume) a scheduler slice
// late, milliseconds after the step's own work is done. The kernels therefore hand out work in
// pieces that any thread may take (the calling thread finishes what a late helper has not
// started, and waits only for pieces being run) and report, per region, how long the calling
// thread worked and then waited. team.cpp keeps a ledger of the time helpers saved
// against one thread alone and the time late regions lost; when losses win, the process runs
// on one thread for a back-off time that doubles while that keeps happening, so a busy machine
// costs one late region now and then instead of one every few steps. Results never depend on
// it: pieces are cut at the same cache-line-aligned points whoever runs them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fusedopt {

// fn(ctx, i) for every i in [0, n), on the calling thread and up to `threads` - 1 helper
// threads (helper_pool.cpp). Pieces should be of about equal size: thread t starts with the
// t-th run of n/threads pieces, then takes what is left of the others'.
using PieceFn = void (*)(void* ctx, std::size_t piece);
void run_pieces(std::size_t n, int threads, PieceFn fn, void* ctx);

// `wanted` threads, or 1 while a recent region showed that helpers arrive late.
int team_threads(int wanted);

struct RegionReport {
    std::int64_t work_ns;         // calling thread: region start until no piece was left
    std::int64_t wait_ns;         // calling thread: from then until the region ended
    std::size_t caller_pieces;    // pieces the calling thread ran
    std::size_t pieces;           // pieces in the region (of about equal size)
};
void report_region(const RegionReport& r);

std::int64_t steady_now_ns();

struct TeamStatus {
    bool serial_now;              // regions run on one thread until the back-off ends
    double backoff_s;             // the next back-off's length
    std::uint64_t regions;        // parallel regions reported so far
    std::uint64_t late_regions;   // of them, slower than one thread (estimated) would have been
};
TeamStatus team_status();

// Pinned: always the wanted team, nothing learned (tests that must exercise every thread).
// Either way, the ledger starts afresh.
void pin_team(bool pinned);

}  // namespace fusedopt
