// The helper threads a step's pieces run on (team.hpp). Not OpenMP's team: an OpenMP region
// ends only when every thread of its team has arrived, so a helper that another process keeps
// off the CPU holds the step for a scheduler slice even when the calling thread has done all
// the work. Here the calling thread waits only for pieces already being run.
//
// Protocol. A job is published by writing its fields, then `state_` = (generation << 1) | 1.
// A helper that sees a running generation announces itself (`inflight_` + 1), then reads
// `state_` again: unchanged, the job's fields are valid until it leaves; changed, it leaves
// without touching them. The calling thread, once no piece is left to claim, stores the
// generation as finished and waits for `inflight_` to reach 0. Both sides use sequentially
// consistent operations, so either the helper sees the finish or the caller sees the helper.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "fusedopt/team.hpp"

namespace fusedopt {
namespace {

constexpr int kMaxTeam = 256;
// How long an idle helper polls for the next job before it sleeps: steps that follow each
// other within it find it awake (waking a sleeping one costs ~50 us here, measured: 50 us of
// polling left default threads at 0.8-1.0x of one thread at 1M when steps alternated with
// other work every 2 ms, 1 ms gave 0.55x, as libgomp's few ms do). Helpers only poll after
// steps that used them, and an optimizer on a busy machine stops using them (TeamChoice).
// The poll yields the CPU (sched_yield) rather than spinning on `pause`: the caller's next work
// is often a BLAS call whose worker threads want these cores, and a spinning helper held one of
// them (NumPy's OpenBLAS: a 384 x 384 float32 matmul between 1M Adam steps took 1651 us with the
// steps at 2 threads against 786 at 1; yielding, 661 against 660). It sees a job as soon.
constexpr std::int64_t kSpinNs = 1'000'000;

std::atomic<std::uint64_t> g_regions{0};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// One thread's run of pieces, on its own cache line: thread t claims from run t first, then
// from the runs after it, so on a quiet machine each thread touches the same memory step after
// step (its cache), and a late thread's run is taken by the others.
struct alignas(64) PieceRun {
    std::atomic<std::size_t> next{0};
    std::size_t end = 0;
};

struct Job {
    PieceFn fn = nullptr;
    void* ctx = nullptr;
    int team = 1;
    PieceRun runs[kMaxTeam];

    // Deals pieces [0, n) to `threads` threads in equal runs.
    void deal(std::size_t n, int threads) {
        team = threads;
        for (int t = 0; t < threads; ++t) {
            runs[t].next.store(n * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads),
                               std::memory_order_relaxed);
            runs[t].end = n * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
        }
    }

    // Claims and runs pieces for thread `t`.
    void work(int t) {
        for (int v = 0; v < team; ++v) {
            PieceRun& r = runs[(t + v) % team];
            for (;;) {
                const std::size_t i = r.next.fetch_add(1, std::memory_order_relaxed);
                if (i >= r.end) break;
                fn(ctx, i);
            }
        }
    }
};

class Pool {
public:
    // Runs the job's n pieces on the calling thread (index 0) and up to job.team - 1 helpers.
    void run(Job& job, std::size_t n) {
        if (job.team > 1 && busy_.exchange(true, std::memory_order_acquire))
            job.deal(n, 1);  // another thread's step has the helpers: run alone
        if (job.team == 1) {
            job.work(0);
            return;
        }
        const int helpers = grow(job.team - 1);
        if (helpers + 1 < job.team) job.deal(n, helpers + 1);
        if (job.team == 1) {
            busy_.store(false, std::memory_order_release);
            job.work(0);
            return;
        }
        g_regions.fetch_add(1, std::memory_order_relaxed);
        job_.store(&job, std::memory_order_relaxed);
        const std::uint64_t running = ((state_.load(std::memory_order_relaxed) >> 1) + 1) << 1 | 1;
        state_.store(running, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard<std::mutex> lock(m_);
            cv_.notify_all();
        }
        job.work(0);
        state_.store(running & ~std::uint64_t(1), std::memory_order_seq_cst);
        // Only helpers inside a piece are waited for; yield so that a preempted one can run here.
        for (int spin = 0; inflight_.load(std::memory_order_seq_cst) != 0; ++spin) {
            if (spin < 64) cpu_relax(); else sched_yield();
        }
        busy_.store(false, std::memory_order_release);
    }

private:
    // Starts helpers up to `helpers`; returns how many there are (fewer if the system refuses
    // a thread: the step then runs on those).
    int grow(int helpers) {
        while (static_cast<int>(threads_.size()) < helpers) {
            const int index = static_cast<int>(threads_.size()) + 1;
            // Helpers take no signals: Ctrl-C and friends reach the Python thread.
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            try {
                threads_.emplace_back([this, index] { helper(index); });
            } catch (const std::system_error&) {
                pthread_sigmask(SIG_SETMASK, &old, nullptr);
                break;
            }
            pthread_sigmask(SIG_SETMASK, &old, nullptr);
            threads_.back().detach();  // never joined: the pool lives until the process ends
        }
        return static_cast<int>(threads_.size());
    }

    void helper(int index) {
        std::uint64_t seen = state_.load(std::memory_order_acquire);
        for (;;) {
            std::uint64_t s = wait_for_change(seen);
            seen = s;
            if (!(s & 1)) continue;
            inflight_.fetch_add(1, std::memory_order_seq_cst);
            if (state_.load(std::memory_order_seq_cst) == s) {
                Job& job = *job_.load(std::memory_order_relaxed);
                if (index < job.team) job.work(index);
            }
            inflight_.fetch_sub(1, std::memory_order_seq_cst);
        }
    }

    std::uint64_t wait_for_change(std::uint64_t seen) {
        const std::int64_t until = steady_now_ns() + kSpinNs;
        for (;;) {
            const std::uint64_t s = state_.load(std::memory_order_acquire);
            if (s != seen) return s;
            if (steady_now_ns() > until) break;
            sched_yield();
        }
        std::unique_lock<std::mutex> lock(m_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        std::uint64_t s;
        cv_.wait(lock, [&] { return (s = state_.load(std::memory_order_seq_cst)) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        return s;
    }

    std::atomic<bool> busy_{false};
    std::atomic<std::uint64_t> state_{0};
    std::atomic<int> inflight_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<Job*> job_{nullptr};
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<std::thread> threads_;
};

// Never destroyed (helpers may sleep in it at exit). A forked child has no helper threads and
// perhaps a mutex held by one, so it starts a new pool (the parent's is left alone).
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork;

Pool& pool() {
    std::call_once(g_atfork, [] { pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr); }); });
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (!p) {
        Pool* fresh = new Pool;
        if (g_pool.compare_exchange_strong(p, fresh)) p = fresh; else delete fresh;
    }
    return *p;
}

}  // namespace

std::uint64_t parallel_regions() { return g_regions.load(std::memory_order_relaxed); }

void run_pieces(std::size_t n, int threads, PieceFn fn, void* ctx) {
    if (threads > kMaxTeam) threads = kMaxTeam;
    if (threads < 1 || n < 2) threads = 1;
    if (static_cast<std::size_t>(threads) > n) threads = static_cast<int>(n);
    // One job per calling thread, kept: a fresh one would zero kMaxTeam runs (16 KiB) per call.
    // (Pieces never call run_pieces, so a thread's job is never in use twice.)
    thread_local Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.deal(n, threads);
    pool().run(job, n);
}

}  // namespace fusedopt
