// The threads a step runs on, and whether to use them.
//
// When another process holds a core, a helper thread may start (or resume) a scheduler slice
// late, milliseconds after the step's own work is done. So the kernels hand out work in pieces
// that any thread may take: the calling thread finishes what a late helper has not started and
// waits only for pieces being run (helper_pool.cpp). What remains (helpers preempted inside a
// piece, waking them, their spinning taking a core from someone) can still make the team slower
// than one thread on a busy machine; each optimizer therefore times its steps both ways and
// uses the faster (TeamChoice). Results never depend on either: pieces are cut at the same
// cache-line-aligned points whoever runs them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fusedopt {

// fn(ctx, i) for every i in [0, n), on the calling thread and up to `threads` - 1 helper
// threads. Pieces should be of about equal size: thread t starts with the t-th run of
// n/threads pieces, then takes what is left of the others'.
using PieceFn = void (*)(void* ctx, std::size_t piece);
void run_pieces(std::size_t n, int threads, PieceFn fn, void* ctx);

std::int64_t steady_now_ns();

// Pinned: TeamChoice always picks the team (tests that must exercise every thread count).
void pin_team(bool pinned);
bool team_pinned();
// Parallel regions run so far (jobs that offered pieces to helpers).
std::uint64_t parallel_regions();

// One optimizer's choice between one thread and the team, from its own step times (stalls
// included): about 95% of the time in the mode that was faster, 5% re-measuring the other (less
// while the other keeps losing); a mode that clearly falls behind is left at once
// (team_choice.cpp).
class TeamChoice {
public:
    bool use_team() const;
    void record(bool team, std::int64_t ns);

private:
    void start_epoch(bool mode, bool explore, std::int64_t length_ns);
    // An exploit epoch of `mode`: the shortest if it just took over, else twice the last (the
    // other keeps losing), up to the longest.
    void exploit(bool mode, bool took_over);

    double mean_[2] = {0.0, 0.0};  // ns per step of the last epoch in each mode (0: none yet)
    bool mode_ = true;             // this epoch's: the team first
    bool explore_ = true;
    bool first_ = true;
    bool warm_ = false;            // the first epoch is over (its figure is not kept)
    bool confirming_ = false;      // this epoch re-measures the mode the explored one beat
    std::int64_t length_ns_ = 20'000'000;
    std::int64_t exploit_ns_ = 400'000'000;
    std::int64_t time_ns_ = 0;     // this epoch's measured steps
    int steps_ = 0;
    double recent_ns_ = 0.0;       // the same, decayed with age (team_choice.cpp: kRecentNs)
    double recent_steps_ = 0.0;
};

}  // namespace fusedopt
