#include "fusedopt/team.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

namespace fusedopt {
namespace {

// The ledger: what helper threads saved (their regions' time against the one-thread estimate)
// minus what late regions cost. A late region can cost a scheduler slice (measured here: 2 to
// 20 ms) against savings of some microseconds, so it is the balance, not the share of late
// regions, that decides. While the balance stays >= 0 helpers are used; when it drops below,
// the process runs on one thread for a back-off time, which doubles each time (a machine that
// stays busy is tried again about every 2 s) and returns to its minimum once the balance is
// full again.
constexpr std::int64_t kMinBackoffNs = 1'000'000;
constexpr std::int64_t kMaxBackoffNs = 2'000'000'000;
constexpr std::int64_t kFullBalanceNs = 20'000'000;
// Debt allowed before backing off: helpers that wake too late to take a piece cost the calling
// thread only the wake-up call (some microseconds), and the next step may find them awake.
constexpr std::int64_t kToleranceNs = 100'000;
// One thread alone runs a memory-bound step a little faster per element than while it shares
// the bandwidth with helpers, so the estimate of its time is discounted.
constexpr double kAloneDiscount = 0.9;

struct Ledger {
    std::mutex m;
    std::int64_t balance = 0;
    std::int64_t backoff = kMinBackoffNs;
    std::uint64_t regions = 0, late = 0;
};
Ledger g_ledger;
std::atomic<std::int64_t> g_serial_until{0};
std::atomic<bool> g_pinned{false};

}  // namespace

std::int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

int team_threads(int wanted) {
    if (wanted <= 1 || g_pinned.load(std::memory_order_relaxed)) return wanted < 1 ? 1 : wanted;
    const std::int64_t until = g_serial_until.load(std::memory_order_relaxed);
    return until != 0 && steady_now_ns() < until ? 1 : wanted;
}

void report_region(const RegionReport& r) {
    // One thread alone would have run the helpers' pieces at the calling thread's pace (when the
    // helpers ran them all, there is no pace to go by: counted as neither gain nor loss).
    std::int64_t saved = 0;
    if (r.caller_pieces > 0) {
        const double per_piece = double(r.work_ns) / double(r.caller_pieces);
        const double alone = double(r.work_ns) + kAloneDiscount * per_piece * double(r.pieces - r.caller_pieces);
        saved = static_cast<std::int64_t>(alone) - (r.work_ns + r.wait_ns);
    }
    // Helpers that took nothing still woke and spun, taking CPU time from this thread or another
    // process: charge an eighth of the work, so that ~20 such regions in a row back off.
    if (r.caller_pieces == r.pieces) saved -= r.work_ns / 8;
    std::lock_guard<std::mutex> lock(g_ledger.m);
    ++g_ledger.regions;
    if (saved < 0) ++g_ledger.late;
    if (g_pinned.load(std::memory_order_relaxed)) return;
    g_ledger.balance = std::min(g_ledger.balance + saved, kFullBalanceNs);
    if (g_ledger.balance == kFullBalanceNs) g_ledger.backoff = kMinBackoffNs;
    if (g_ledger.balance < -kToleranceNs) {
        g_serial_until.store(steady_now_ns() + g_ledger.backoff, std::memory_order_relaxed);
        g_ledger.backoff = std::min(2 * g_ledger.backoff, kMaxBackoffNs);
        g_ledger.balance = 0;
    }
}

void pin_team(bool pinned) {
    std::lock_guard<std::mutex> lock(g_ledger.m);
    g_pinned.store(pinned, std::memory_order_relaxed);
    g_ledger.balance = 0;
    g_ledger.backoff = kMinBackoffNs;
    g_serial_until.store(0, std::memory_order_relaxed);
}

TeamStatus team_status() {
    const std::int64_t until = g_serial_until.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(g_ledger.m);
    return TeamStatus{until != 0 && steady_now_ns() < until, double(g_ledger.backoff) * 1e-9,
                      g_ledger.regions, g_ledger.late};
}

}  // namespace fusedopt
