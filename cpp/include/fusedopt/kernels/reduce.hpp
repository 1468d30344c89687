// Gradient norms and the non-finite check: one read pass, float64 accumulation.
// The element range is cut into a fixed grid of chunks (its size depends on the total only);
// each chunk is reduced alone (Lanes for the sum of squares, `omp simd` reductions otherwise)
// and the chunks are summed in order, so the result has the same bits at any thread count (a
// SIMD target's lane order is its own, so targets may differ in the last bit). Included inside
// a per-target anonymous namespace.

template <NormKind K>
inline double norm_term(double y, double p) {
    if (K == NormKind::l2) return y * y;
    if (K == NormKind::l1) return y;
    return __builtin_pow(y, p);
}

template <class T, NormKind K>
inline void norm_piece(const T* __restrict x, std::size_t n, double p, NormScale scale, NormPartials& a) {
    double sum = 0.0, hi = a.max_abs, lo = a.min_abs;
    const double s1 = scale.first, s2 = scale.second;
#pragma omp simd reduction(+ : sum) reduction(max : hi) reduction(min : lo)
    for (std::size_t i = 0; i < n; ++i) {
        const double y = abs_(static_cast<double>(x[i]));
        sum += norm_term<K>((y * s1) * s2, p);
        hi = y > hi ? y : hi;
        lo = y < lo ? y : lo;
    }
    a.sum += sum;
    a.max_abs = hi;
    a.min_abs = lo;
}

template <class T, NormKind K>
NormPartials norm_chunk(const SegmentList& l, int slot, std::size_t begin, std::size_t end, double p,
                        NormScale scale) {
    NormPartials r;
    r.min_abs = __builtin_inf();
    if constexpr (K == NormKind::l2_sum) {  // no max, min or scaling: the sum of squares alone
        Lanes squares;
        auto add = [&](const Segment& seg, std::size_t lo, std::size_t hi) {
            squares.add_squares(operand<T>(seg, slot) + lo, hi - lo);
        };
        walk(l, begin, end, add);
        r.sum = squares.total();
    } else {
        auto body = [&](const Segment& seg, std::size_t lo, std::size_t hi) {
            norm_piece<T, K>(operand<T>(seg, slot) + lo, hi - lo, p, scale, r);
        };
        walk(l, begin, end, body);
    }
    return r;
}

// Each chunk's partials into parts[c] (chunk c: elements [c * chunk, (c + 1) * chunk) of the list).
template <class T, NormKind K>
void norm_parts(const SegmentList& l, int slot, std::size_t chunk, double p, NormScale scale, NormPartials* parts,
                const Exec& e) {
    const std::size_t nchunks = (l.total + chunk - 1) / chunk;
    auto do_chunks = [&](std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {
            const std::size_t end = (c + 1) * chunk < l.total ? (c + 1) * chunk : l.total;
            parts[c] = norm_chunk<T, K>(l, slot, c * chunk, end, p, scale);
        }
    };
    auto piece = [&](std::size_t c) { do_chunks(c, c + 1); };
    const int nt = team_size(l, e);
    if (nt == 1)
        do_chunks(0, nchunks);
    else
        run_on_team(nchunks, nt, piece);
}

template <class T, NormKind K>
NormPartials norm_run(const SegmentList& l, int slot, double p, NormScale scale, const Exec& e) {
    const std::size_t chunk = norm_chunk_size(l.total);
    NormPartials parts[kMaxNormChunks];
    norm_parts<T, K>(l, slot, chunk, p, scale, parts, e);
    return fold_norm_partials(parts, (l.total + chunk - 1) / chunk);
}

template <class T>
NormPartials norm_kernel(const SegmentList& l, int slot, NormKind kind, double p, NormScale scale, const Exec& e) {
    if (kind == NormKind::l2_sum) return norm_run<T, NormKind::l2_sum>(l, slot, p, scale, e);
    if (kind == NormKind::l2) return norm_run<T, NormKind::l2>(l, slot, p, scale, e);
    if (kind == NormKind::l1) return norm_run<T, NormKind::l1>(l, slot, p, scale, e);
    return norm_run<T, NormKind::pnorm>(l, slot, p, scale, e);
}

template <class T>
void norm_chunks_kernel(const SegmentList& l, int slot, NormKind kind, double p, NormScale scale, std::size_t chunk,
                        NormPartials* out, const Exec& e) {
    if (kind == NormKind::l2_sum) return norm_parts<T, NormKind::l2_sum>(l, slot, chunk, p, scale, out, e);
    if (kind == NormKind::l2) return norm_parts<T, NormKind::l2>(l, slot, chunk, p, scale, out, e);
    if (kind == NormKind::l1) return norm_parts<T, NormKind::l1>(l, slot, chunk, p, scale, out, e);
    return norm_parts<T, NormKind::pnorm>(l, slot, chunk, p, scale, out, e);
}

// Standalone clipping: x *= factor, and clamp(x, lo, hi) with NaN kept (torch.clamp); the
// element loops are shared with the 16-bit arrays' (low_precision.hpp).
template <class T>
inline void scale_elements(T* __restrict x, std::size_t n, T f) {
    for (std::size_t i = 0; i < n; ++i) x[i] = x[i] * f;
}
template <class T>
inline void clamp_elements(T* __restrict x, std::size_t n, T lo, T hi) {
    for (std::size_t i = 0; i < n; ++i) {
        T y = x[i] < lo ? lo : x[i];
        x[i] = y > hi ? hi : y;
    }
}

template <class T>
void scale_kernel(const SegmentList& l, double factor, const Exec& e) {
    const T f = T(factor);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        scale_elements(operand<T>(seg, 0) + lo, hi - lo, f);
    });
}

template <class T>
void clamp_kernel(const SegmentList& l, double lo_, double hi_, const Exec& e) {
    const T lo_v = T(lo_), hi_v = T(hi_);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        clamp_elements(operand<T>(seg, 0) + lo, hi - lo, lo_v, hi_v);
    });
}

// Memory-traffic probe: read g (slot 1), read and write `RW` arrays (slot 0, then 2, 3, 4).
template <class T, int RW>
void probe_run(const SegmentList& l, const Exec& e) {
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* __restrict a = operand<T>(seg, 0) + lo;
        const T* __restrict g = operand<T>(seg, 1) + lo;
        T* __restrict b = RW > 1 ? operand<T>(seg, 2) + lo : nullptr;
        T* __restrict c = RW > 2 ? operand<T>(seg, 3) + lo : nullptr;
        T* __restrict d = RW > 3 ? operand<T>(seg, 4) + lo : nullptr;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            const T x = g[i];
            a[i] = a[i] + x;
            if (RW > 1) b[i] = b[i] + x;
            if (RW > 2) c[i] = c[i] + x;
            if (RW > 3) d[i] = d[i] + x;
        }
    });
}

template <class T>
void probe_kernel(const SegmentList& l, int rw, const Exec& e) {
    switch (rw) {
        case 1: return probe_run<T, 1>(l, e);
        case 2: return probe_run<T, 2>(l, e);
        case 3: return probe_run<T, 3>(l, e);
        default: return probe_run<T, 4>(l, e);
    }
}

// The probe of storage that is not the kernel's arithmetic type (bfloat16 parameters, compressed
// state): the parameter and gradient as P (2 or 4 bytes), each state array as S (1, 2 or 4
// bytes), read and written with trivial integer arithmetic.
template <class P, class S, int RW>
void probe_mixed_run(const SegmentList& l, const Exec& e) {
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        P* __restrict a = operand<P>(seg, 0) + lo;
        const P* __restrict g = operand<const P>(seg, 1) + lo;
        S* __restrict b = RW > 1 ? operand<S>(seg, 2) + lo : nullptr;
        S* __restrict c = RW > 2 ? operand<S>(seg, 3) + lo : nullptr;
        S* __restrict d = RW > 3 ? operand<S>(seg, 4) + lo : nullptr;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            a[i] = static_cast<P>(a[i] + g[i]);
            if (RW > 1) b[i] = static_cast<S>(b[i] + 1);
            if (RW > 2) c[i] = static_cast<S>(c[i] + 1);
            if (RW > 3) d[i] = static_cast<S>(d[i] + 1);
        }
    });
}

template <class P, class S>
void probe_mixed_rw(const SegmentList& l, int rw, const Exec& e) {
    switch (rw) {
        case 1: return probe_mixed_run<P, S, 1>(l, e);
        case 2: return probe_mixed_run<P, S, 2>(l, e);
        case 3: return probe_mixed_run<P, S, 3>(l, e);
        default: return probe_mixed_run<P, S, 4>(l, e);
    }
}

// param_bytes: 2 or 4; state_bytes: 1, 2 or 4.
void probe_mixed_kernel(const SegmentList& l, int rw, int param_bytes, int state_bytes, const Exec& e) {
    using U8 = std::uint8_t;
    using U16 = std::uint16_t;
    using U32 = std::uint32_t;
    if (param_bytes == 2) {
        if (state_bytes == 1) return probe_mixed_rw<U16, U8>(l, rw, e);
        if (state_bytes == 2) return probe_mixed_rw<U16, U16>(l, rw, e);
        return probe_mixed_rw<U16, U32>(l, rw, e);
    }
    if (state_bytes == 1) return probe_mixed_rw<U32, U8>(l, rw, e);
    if (state_bytes == 2) return probe_mixed_rw<U32, U16>(l, rw, e);
    return probe_mixed_rw<U32, U32>(l, rw, e);
}
