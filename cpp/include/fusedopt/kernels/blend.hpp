// Weight averaging over pairs of arrays: the passes of the wrappers (Lookahead's sync, EMA and
// SWA averages, Schedule-Free's train/eval swap). Operand 0 is `a` (written), operand 1 is `b`
// (read; written too by lerp_sync). Torch's rounding: Lerp as torch.lerp with a scalar weight
// (fused where the target has FMA), and SWA's division as torch's get_swa_avg_fn. Never flushes
// denormals (torch does not). Included inside a per-target anonymous namespace.

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
