// One parallel region over the concatenated element range of a SegmentList.
// The range is cut into pieces whose ends are aligned inside their arrays (SegmentList::align
// after the segment's lead: at least a cache line of float32, so no two threads write the same
// cache line, and every element is computed the same way whoever runs it); each thread works
// through its own run of pieces, then takes what is left of the others' (team.hpp: a late
// helper's work is done by the calling thread, which never waits for a helper that has not
// started). Small totals run on the calling thread. Included inside a
// per-target anonymous namespace (the file including it includes fusedopt/team.hpp first).

// The segment holding element x of the concatenated range (last s with starts[s] <= x).
inline std::size_t segment_of(const SegmentList& l, std::size_t x) {
    std::size_t lo = 0, hi = l.count;
    while (hi - lo > 1) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (l.starts[mid] <= x) lo = mid; else hi = mid;
    }
    return lo;
}

inline std::size_t split_point(const SegmentList& l, int t, int nt) {
    if (t <= 0) return 0;
    if (t >= nt) return l.total;
    const std::size_t x = static_cast<std::size_t>(
        static_cast<unsigned __int128>(l.total) * static_cast<unsigned>(t) / static_cast<unsigned>(nt));
    const std::size_t s = segment_of(l, x);
    const std::size_t in = x - l.starts[s], lead = l.segments[s].lead;
    return l.starts[s] + (in < lead ? 0 : lead + (in - lead) / l.align * l.align);
}

// No software prefetch of the next array's start: an earlier one here never ran (GCC found the
// helper, whose only effect was prefetching, "pure" and deleted every call it had not inlined),
// and made to run it slowed the step: 1000 arrays of 1K, 1 thread, per extra array SGD 24-27 ->
// 33-45 ns with 4 to 64 lines per operand, Adam 27-55 -> 53-211.

// Calls body(segment, lo, hi) for every piece of [begin, end), in order.
template <class Body>
inline void walk(const SegmentList& l, std::size_t begin, std::size_t end, Body& body) {
    if (begin >= end) return;
    for (std::size_t s = segment_of(l, begin); s < l.count && l.starts[s] < end; ++s) {
        const std::size_t a = l.starts[s], b = l.starts[s + 1];
        const std::size_t lo = begin > a ? begin - a : 0;
        const std::size_t hi = (end < b ? end : b) - a;
        if (hi > lo) body(l.segments[s], lo, hi);
    }
}

// A piece from a segment's start, long enough (kPeelMinElements: segments.hpp), runs the
// segment's lead apart, so the rest starts on a cache line of the parameter (Segment::lead;
// pieces start at 0 or after the lead).
template <class Body>
struct PeelLead {
    Body body;
    void operator()(const Segment& seg, std::size_t lo, std::size_t hi) {
        if (lo < seg.lead && hi - lo >= kPeelMinElements) {
            body(seg, lo, seg.lead);
            lo = seg.lead;
        }
        body(seg, lo, hi);
    }
};

inline int team_size(const SegmentList& l, const Exec& e) {
    return splits_work(l.total, e) ? e.threads : 1;
}

// Denormal numbers flushed to zero (x86: MXCSR's FTZ and DAZ bits; aarch64: FPCR's FZ bit,
// which does both) while it lives, on this thread; the caller's setting comes back after. A
// denormal operand or result costs a microcode assist of ~100 cycles per vector on x86; an
// optimizer state decaying towards zero meets them every step.
class FlushDenormals {
public:
    explicit FlushDenormals(bool on) : on_(on) {
        if (!on_) return;
#if defined(__x86_64__) || defined(__i386__)
        saved_ = __builtin_ia32_stmxcsr();
        __builtin_ia32_ldmxcsr(static_cast<unsigned>(saved_) | kFtzDaz);
#elif defined(__aarch64__)
        __asm__ volatile("mrs %0, fpcr" : "=r"(saved_));
        __asm__ volatile("msr fpcr, %0" : : "r"(saved_ | kFz));
#endif
    }
    ~FlushDenormals() {
        if (!on_) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_ldmxcsr(static_cast<unsigned>(saved_));
#elif defined(__aarch64__)
        __asm__ volatile("msr fpcr, %0" : : "r"(saved_));
#endif
    }
    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

private:
    static constexpr unsigned kFtzDaz = 0x8040;                  // x86: flush-to-zero (bit 15), denormals-are-zero (bit 6)
    static constexpr std::uint64_t kFz = std::uint64_t(1) << 24;  // aarch64: flush-to-zero, inputs and results
    bool on_;
    std::uint64_t saved_ = 0;
};

// About this many pieces per thread: enough for the calling thread to take over a late helper's
// share in small bites, few enough that claiming one (an atomic add) costs nothing.
constexpr std::size_t kPiecesPerThread = 8;
constexpr std::size_t kMinPieceElements = 8192;

// piece(i) for every i in [0, n) on a team of nt threads (team.hpp).
template <class Piece>
inline void run_on_team(std::size_t n, int nt, Piece& piece) {
    run_pieces(n, nt, [](void* ctx, std::size_t i) { (*static_cast<Piece*>(ctx))(i); }, &piece);
}

// ranges(begin, end) over pieces of the concatenated range that together cover it once, with
// denormals flushed as e says.
template <class Ranges>
inline void parallel_ranges(const SegmentList& l, const Exec& e, Ranges ranges) {
    const int nt = team_size(l, e);
    if (nt == 1) {
        FlushDenormals flush(e.flush_denormals);
        // A local copy, as in the parallel branch: GCC then keeps the captured scalars in
        // registers; walking with the caller's own left the serial loops unvectorized (a store
        // to the arrays might alias them).
        Ranges local{ranges};
        local(std::size_t(0), l.total);
        return;
    }
    std::size_t n = static_cast<std::size_t>(nt) * kPiecesPerThread;
    if (n > l.total / kMinPieceElements) n = l.total / kMinPieceElements;
    if (n < static_cast<std::size_t>(nt)) n = static_cast<std::size_t>(nt);
    auto piece = [&](std::size_t i) {
        FlushDenormals flush(e.flush_denormals);
        Ranges local{ranges};
        local(split_point(l, static_cast<int>(i), static_cast<int>(n)),
              split_point(l, static_cast<int>(i) + 1, static_cast<int>(n)));
    };
    run_on_team(n, nt, piece);
}

// body(segment, lo, hi) for every piece of every segment (parallel_ranges, walk, PeelLead).
template <class Body>
inline void parallel_walk(const SegmentList& l, const Exec& e, Body body) {
    parallel_ranges(l, e, [&l, body](std::size_t begin, std::size_t end) {
        PeelLead<Body> local{body};
        walk(l, begin, end, local);
    });
}

template <class T>
inline T* operand(const Segment& s, int slot) { return static_cast<T*>(s.data[slot]); }
