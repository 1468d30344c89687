// One parallel region over the concatenated element range of a SegmentList.
// Thread t gets a contiguous slice whose ends are cache-line aligned inside their arrays,
// so no two threads write the same cache line; small totals run on the calling thread.
// Included inside a per-target anonymous namespace.

constexpr std::size_t kAlignElements = 16;  // 64 bytes of float32

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
    return l.starts[s] + ((x - l.starts[s]) & ~(kAlignElements - 1));
}

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

inline int team_size(const SegmentList& l, const Exec& e) {
#ifdef _OPENMP
    if (e.threads > 1 && l.total >= e.min_parallel) return e.threads;
#endif
    return 1;
}

template <class Body>
inline void parallel_walk(const SegmentList& l, const Exec& e, Body body) {
    const int nt = team_size(l, e);
    if (nt == 1) {
        // A local copy, as in the parallel branch: GCC then keeps the captured scalars in
        // registers; walking `body` itself left the serial loops unvectorized (a store to the
        // arrays might alias them).
        Body local = body;
        walk(l, 0, l.total, local);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        Body local = body;
        walk(l, split_point(l, t, n), split_point(l, t + 1, n), local);
    }
#endif
}

template <class T>
inline T* operand(const Segment& s, int slot) { return static_cast<T*>(s.data[slot]); }
