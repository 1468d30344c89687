// Weight averaging over pairs of arrays: the passes of the wrappers (Lookahead's sync, EMA and
// SWA averages, Schedule-Free's train/eval swap). Operand 0 is `a` (written), operand 1 is `b`
// (read; written too by lerp_sync). Torch's rounding: Lerp as torch.lerp with a scalar weight
// (fused where the target has FMA), and SWA's division as torch's get_swa_avg_fn. Never flushes
// denormals (torch does not). Included inside a per-target anonymous namespace, after
// low_precision.hpp.

// One run of elements, in T's arithmetic (lerp and div by value, copies of the caller's: see
// docs/performance.md on loops GCC kept scalar).
template <class T, BlendOp Op>
inline void blend_elements(T* __restrict a, T* __restrict b, std::size_t n, Lerp<T> lerp, T div) {
    for (std::size_t i = 0; i < n; ++i) {
        if (Op == BlendOp::lerp) a[i] = lerp(a[i], b[i]);
        if (Op == BlendOp::lerp_sync) b[i] = a[i] = lerp(a[i], b[i]);
        if (Op == BlendOp::div) a[i] = a[i] + (b[i] - a[i]) / div;
        if (Op == BlendOp::copy) a[i] = b[i];
    }
}

template <class T, BlendOp Op>
void blend_run(const SegmentList& l, double w, const Exec& e) {
    const Lerp<T> lerp(w);
    const T div = T(w);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        blend_elements<T, Op>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, hi - lo, lerp, div);
    });
}

// 16-bit `a` (bfloat16 or float16: `t`) with `b` of its dtype or float32 (B_WIDE: a Schedule-Free
// parameter and its float32 z): blocks widened to float32 scratch (exact), the float32 blend, `a`
// rounded back once to nearest even (torch's lerp on bfloat16/float16 CPU tensors computes in
// float32 too); lerp_sync's `b` then gets the stored `a`.
template <bool B_WIDE, BlendOp Op>
void blend_run_low(const SegmentList& l, double w, DType t, const Exec& e) {
    const Lerp<float> lerp(w);
    const float div = float(w);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        alignas(64) float x[kLowBlock], y[kLowBlock];
        std::uint16_t* a = operand<std::uint16_t>(seg, 0) + lo;
        for (std::size_t at = 0, n = 0; at < hi - lo; at += n) {
            n = hi - lo - at < kLowBlock ? hi - lo - at : kLowBlock;
            widen(t, a + at, x, n);
            float* wide_b = y;
            std::uint16_t* b16 = nullptr;
            if constexpr (B_WIDE) {
                wide_b = operand<float>(seg, 1) + lo + at;
            } else {
                b16 = operand<std::uint16_t>(seg, 1) + lo + at;
                widen(t, b16, y, n);
            }
            blend_elements<float, Op>(x, wide_b, n, lerp, div);
            narrow(t, x, a + at, n);
            if constexpr (Op == BlendOp::lerp_sync) {
                if constexpr (B_WIDE)
                    widen(t, a + at, wide_b, n);
                else
                    __builtin_memcpy(b16, a + at, n * sizeof(std::uint16_t));
            }
        }
    });
}

// Calls f(std::integral_constant<BlendOp, op>()).
template <class F>
void with_blend_op(BlendOp op, F&& f) {
    switch (op) {
        case BlendOp::lerp: return f(std::integral_constant<BlendOp, BlendOp::lerp>());
        case BlendOp::lerp_sync: return f(std::integral_constant<BlendOp, BlendOp::lerp_sync>());
        case BlendOp::div: return f(std::integral_constant<BlendOp, BlendOp::div>());
        case BlendOp::copy: return f(std::integral_constant<BlendOp, BlendOp::copy>());
    }
}

template <class T>
void blend_kernel(const SegmentList& l, BlendOp op, double w, const Exec& e) {
    with_blend_op(op, [&](auto o) { blend_run<T, decltype(o)::value>(l, w, e); });
}

void blend_low_kernel(const SegmentList& l, BlendOp op, double w, DType a, DType b, const Exec& e) {
    with_blend_op(op, [&](auto o) {
        if (b == DType::f32)
            blend_run_low<true, decltype(o)::value>(l, w, a, e);
        else
            blend_run_low<false, decltype(o)::value>(l, w, a, e);
    });
}
