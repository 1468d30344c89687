// Weight averaging over pairs of arrays: the passes of the wrappers (Lookahead's sync, EMA and
// SWA averages, Schedule-Free's train/eval swap). Operand 0 is `a` (written), operand 1 is `b`
// (read; written too by lerp_sync). Torch's rounding: Lerp as torch.lerp with a scalar weight
// (fused where the target has FMA), and SWA's division as torch's get_swa_avg_fn. Never flushes
// denormals (torch does not). Included inside a per-target anonymous namespace, after
// low_precision.hpp.

template <class T, BlendOp Op>
void blend_run(const SegmentList& l, double w, const Exec& e) {
    const Lerp<T> lerp(w);
    const T div = T(w);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* __restrict a = operand<T>(seg, 0) + lo;
        T* __restrict b = operand<T>(seg, 1) + lo;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            if (Op == BlendOp::lerp) a[i] = lerp(a[i], b[i]);
            if (Op == BlendOp::lerp_sync) b[i] = a[i] = lerp(a[i], b[i]);
            if (Op == BlendOp::div) a[i] = a[i] + (b[i] - a[i]) / div;
            if (Op == BlendOp::copy) a[i] = b[i];
        }
    });
}

template <class T>
void blend_kernel(const SegmentList& l, BlendOp op, double w, const Exec& e) {
    switch (op) {
        case BlendOp::lerp: return blend_run<T, BlendOp::lerp>(l, w, e);
        case BlendOp::lerp_sync: return blend_run<T, BlendOp::lerp_sync>(l, w, e);
        case BlendOp::div: return blend_run<T, BlendOp::div>(l, w, e);
        case BlendOp::copy: return blend_run<T, BlendOp::copy>(l, w, e);
    }
}

// 16-bit `a` (bfloat16 or float16) with `b` of its dtype or float32 (a Schedule-Free parameter
// and its float32 z): float32 arithmetic, each stored 16-bit value rounded once to nearest even
// (torch's lerp on bfloat16/float16 CPU tensors computes in float32 too).
template <DType A, bool B_WIDE, BlendOp Op>
void blend_run_low(const SegmentList& l, double w, const Exec& e) {
    using BT = std::conditional_t<B_WIDE, float, std::uint16_t>;
    const Lerp<float> lerp(w);
    const float div = float(w);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        std::uint16_t* __restrict a = operand<std::uint16_t>(seg, 0) + lo;
        BT* __restrict b = operand<BT>(seg, 1) + lo;
        auto widen1 = [](std::uint16_t h) { return A == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h); };
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            const float x = widen1(a[i]);
            float y;
            if constexpr (B_WIDE)
                y = b[i];
            else
                y = widen1(b[i]);
            const float r = Op == BlendOp::copy ? y : Op == BlendOp::div ? x + (y - x) / div : lerp(x, y);
            a[i] = A == DType::bf16 ? f32_to_bf16(r) : f32_to_f16(r);
            if constexpr (Op == BlendOp::lerp_sync) {
                if constexpr (B_WIDE)
                    b[i] = widen1(a[i]);
                else
                    b[i] = a[i];
            }
        }
    });
}

template <DType A, bool B_WIDE>
void blend_low_op(const SegmentList& l, BlendOp op, double w, const Exec& e) {
    switch (op) {
        case BlendOp::lerp: return blend_run_low<A, B_WIDE, BlendOp::lerp>(l, w, e);
        case BlendOp::lerp_sync: return blend_run_low<A, B_WIDE, BlendOp::lerp_sync>(l, w, e);
        case BlendOp::div: return blend_run_low<A, B_WIDE, BlendOp::div>(l, w, e);
        case BlendOp::copy: return blend_run_low<A, B_WIDE, BlendOp::copy>(l, w, e);
    }
}

void blend_low_kernel(const SegmentList& l, BlendOp op, double w, DType a, DType b, const Exec& e) {
    const bool wide = b == DType::f32;
    if (a == DType::bf16) return wide ? blend_low_op<DType::bf16, true>(l, op, w, e) : blend_low_op<DType::bf16, false>(l, op, w, e);
    return wide ? blend_low_op<DType::f16, true>(l, op, w, e) : blend_low_op<DType::f16, false>(l, op, w, e);
}
