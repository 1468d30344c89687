// TeamChoice (team.hpp): exploration by time. Steps run in epochs of one mode: long ones in the
// mode that was faster (exploit), short ones in the other (explore). An epoch's mean step time,
// stalls included, is that mode's figure, and the next exploit epoch goes to the faster mode.
// An explored mode that wins is compared with a fresh figure of the other before it takes over:
// the other's last one may come from a few disturbed milliseconds (another process on a core
// while the team was timed at start: 20 ms of figures then handed 400 ms to one thread, 1.9x
// slower steps; the bench's rows at 256K showed it once or twice a run).
// A rare stall (a helper preempted inside its piece: milliseconds) can outweigh thousands of
// microsecond gains, so figures are means over whole epochs, never a best sample.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>

#include "fusedopt/team.hpp"

namespace fusedopt {
namespace {

constexpr std::int64_t kExploreNs = 20'000'000;        // an explore epoch (and the first two)
constexpr std::int64_t kMinExploitNs = 400'000'000;    // so exploring costs <= ~5% of the time
constexpr std::int64_t kMaxExploitNs = 4'000'000'000;  // ... and <= ~0.5% while it keeps losing
constexpr int kMinSteps = 2;                           // measured steps in an epoch, at least
// An explored mode must win clearly to take over; the exploited one must lose clearly to end its
// epoch early (another process took a core), in its mean over about the last kRecentNs: long
// enough that one stall among many quick steps does not count, short enough to react at once
// when every step stalls.
constexpr double kRecentNs = 50'000'000.0;
constexpr double kExploreWins = 0.97;
constexpr double kExploitLoses = 1.25;
constexpr double kExploreLosesByFar = 2.0;

std::atomic<bool> g_pinned{false};

}  // namespace

std::int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

void pin_team(bool pinned) { g_pinned.store(pinned, std::memory_order_relaxed); }

bool team_pinned() { return g_pinned.load(std::memory_order_relaxed); }

bool TeamChoice::use_team() const { return team_pinned() || mode_; }

void TeamChoice::start_epoch(bool mode, bool explore, std::int64_t length_ns) {
    mode_ = mode;
    explore_ = explore;
    length_ns_ = length_ns;
    time_ns_ = 0;
    steps_ = 0;
    recent_ns_ = recent_steps_ = 0.0;
    first_ = true;
}

void TeamChoice::record(bool team, std::int64_t ns) {
    if (team_pinned() || team != mode_) return;
    if (first_) {  // an epoch's first step may wake sleeping helpers (or allocate state)
        first_ = false;
        return;
    }
    time_ns_ += ns;
    ++steps_;
    const double decay = std::exp(-double(ns) / kRecentNs);
    recent_ns_ = recent_ns_ * decay + double(ns);
    recent_steps_ = recent_steps_ * decay + 1.0;
    const double mean = double(time_ns_) / steps_;
    const double other = mean_[!mode_];
    const bool done = time_ns_ >= length_ns_ && steps_ >= kMinSteps;
    const double recent = recent_ns_ / recent_steps_;
    const bool losing = other > 0.0 && (explore_ ? mean > kExploreLosesByFar * other : recent > kExploitLoses * other);
    if (!done && !losing) return;
    if (!warm_) {  // the first epoch pays for starting the helpers: measure the team again
        warm_ = true;
        start_epoch(mode_, true, kExploreNs);
        return;
    }
    mean_[mode_] = losing && !explore_ ? recent : mean;  // what it costs now, not the epoch's past
    if (other == 0.0) {  // the other mode was never measured: measure it now
        start_epoch(!mode_, true, kExploreNs);
    } else if (!explore_) {  // exploited long enough, or lost its lead: look at the other
        start_epoch(!mode_, !losing, losing ? kMinExploitNs : kExploreNs);
    } else if (confirming_) {  // this mode measured again after the other won against it
        confirming_ = false;
        const bool other_won = other < kExploreWins * mean;
        exploit(other_won ? !mode_ : mode_, other_won);
    } else if (mean < kExploreWins * other) {  // the explored mode won: against a figure of the
        confirming_ = true;                     // other that may be old, so measure that again
        start_epoch(!mode_, true, kExploreNs);
    } else {
        exploit(!mode_, false);
    }
}

void TeamChoice::exploit(bool mode, bool took_over) {
    exploit_ns_ = took_over ? kMinExploitNs : std::min(2 * exploit_ns_, kMaxExploitNs);
    start_epoch(mode, false, exploit_ns_);
}

}  // namespace fusedopt
