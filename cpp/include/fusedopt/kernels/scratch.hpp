// The scratch path: a unit whose storage the rule's float32 kernel cannot update in place
// (16-bit parameters, compressed state: kernel_table.hpp, Storage) runs it on float32 copies,
// block by block; a rule with a vector loop takes what it can first. Included inside a
// per-target anonymous namespace, after low_precision.hpp, quantize.hpp and vector_storage.hpp.

inline void narrow_state_pair(const float* __restrict a, std::uint16_t* __restrict out_a, const float* __restrict b,
                              std::uint16_t* __restrict out_b, std::size_t n, std::uint32_t key, std::size_t first) {
    std::uint32_t at = static_cast<std::uint32_t>(first);
#if FUSEDOPT_SIMD_LANES
    const std::size_t done = narrow_state_pair_simd(a, out_a, b, out_b, n, key, at);
    a += done, out_a += done, b += out_b ? done : 0, out_b += out_b ? done : 0;
    n -= done, at += static_cast<std::uint32_t>(done);
#endif
    if (!out_b) {
        for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n); ++i)
            out_a[i] = f32_to_bf16_stochastic(a[i], state_bits(key, at + i));
        return;
    }
    for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n); ++i) {
        const std::uint32_t r = state_bits(key, at + i);
        out_a[i] = f32_to_bf16_stochastic(a[i], r);
        out_b[i] = f32_to_bf16_stochastic(b[i], r >> 16);
    }
}

// (No software prefetch of the blocks ahead: one here never ran, deleted by GCC as parallel.hpp
// tells, and made to run it slowed Adam with bfloat16 state, 8M elements, 0.50 -> 0.93 ns per
// element at 1 thread and 0.35 -> 0.53 at 2. The vector loops do ask for their lines ahead:
// vector_storage.hpp, kPrefetchElements.)

// Elements [lo, hi) of a segment that the rule's float32 kernel `f32` cannot update in place
// (kernel_table.hpp, Storage): block by block, the 16-bit parameter and gradient and the
// compressed state are widened into float32 scratch on the stack (exact: a state value is what
// its stored bits mean), the kernel updates the scratch (float32 operands in place), and each
// stored value is rounded once: the parameter to nearest even (or stochastically), bfloat16
// state stochastically, int8 state to its blocks' codes (kernels/quantize.hpp). So no rule
// header knows about storage, and memory traffic stays the stored bytes (the scratch lives in
// L1). With int8 state, `lo` is a multiple of kQuantBlock (the plan's piece alignment).
void scratch_chunk(const Segment& seg, std::size_t lo, std::size_t hi, ChunkKernel f32, const void* scalars,
                   const double* values, const GradTransform& gt, const Storage& st) {
    static_assert(kLowBlock % kQuantBlock == 0, "scratch blocks hold whole int8 blocks");
    alignas(64) float scratch[2 + kMaxRuleSlots][kLowBlock];  // parameter, gradient, the rule's state
    const bool low = low_precision(st.param);
    for (std::size_t b = lo; b < hi; b += kLowBlock) {
        const std::size_t n = hi - b < kLowBlock ? hi - b : kLowBlock;
        Segment s = seg;
        s.size = n;
        s.offset = seg.offset + b;
        for (int k = 0; k < kMaxOperands; ++k) {
            if (!seg.data[k]) continue;
            switch (k < 2 ? (low ? SlotStorage::bf16 : SlotStorage::plain) : st.slot[k]) {
            case SlotStorage::plain:
                s.data[k] = static_cast<float*>(seg.data[k]) + b;
                break;
            case SlotStorage::scales:  // the engine's, not the rule's
                s.data[k] = nullptr;
                break;
            case SlotStorage::whole:  // (not moved: the rule indexes it from s.offset)
                break;
            case SlotStorage::bf16:  // (16-bit parameters and gradients: their own dtype)
                s.data[k] = scratch[k];
                if (k != 0 || st.master < 0)
                    widen(k < 2 ? st.param : DType::bf16, static_cast<const std::uint16_t*>(seg.data[k]) + b,
                          scratch[k], n);
                break;
            case SlotStorage::q8_signed:
            case SlotStorage::q8_unsigned: {
                const std::uint8_t* codes = static_cast<const std::uint8_t*>(seg.data[k]) + b;
                const float* scales = static_cast<const float*>(seg.data[st.scales[k]]) + b / kQuantBlock;
                if (st.slot[k] == SlotStorage::q8_signed)
                    dequantize<true>(codes, scratch[k], n, scales, quant_map(true));
                else
                    dequantize<false>(codes, scratch[k], n, scales, quant_map(false));
                s.data[k] = scratch[k];
                break;
            }
            }
        }
        float* w = scratch[0];  // what the rule updates as the parameter
        if (st.master >= 0) {
            w = static_cast<float*>(s.data[st.master]);
            s.data[0] = w;
            s.data[st.master] = nullptr;
        } else if (!low) {
            w = static_cast<float*>(s.data[0]);
        }
        f32(s, 0, n, scalars, values, gt);
        int pending = -1;  // a bfloat16 operand waiting for its pair
        std::uint32_t pair_key = mix32(st.key);
        for (int k = 2; k < kMaxOperands; ++k) {
            if (!seg.data[k]) continue;
            if (st.slot[k] == SlotStorage::bf16) {
                if (pending < 0) {
                    pending = k;
                    continue;
                }
                narrow_state_pair(scratch[pending], static_cast<std::uint16_t*>(seg.data[pending]) + b, scratch[k],
                                  static_cast<std::uint16_t*>(seg.data[k]) + b, n, pair_key, b);
                pending = -1;
                pair_key = mix32(pair_key);
            } else if (st.slot[k] == SlotStorage::q8_signed || st.slot[k] == SlotStorage::q8_unsigned) {
                float* scales = static_cast<float*>(seg.data[st.scales[k]]) + b / kQuantBlock;
                std::uint8_t* codes = static_cast<std::uint8_t*>(seg.data[k]) + b;
                if (st.slot[k] == SlotStorage::q8_signed)
                    quantize_span<true>(scratch[k], codes, scales, n, quant_map(true));
                else
                    quantize_span<false>(scratch[k], codes, scales, n, quant_map(false));
            }
        }
        if (pending >= 0)
            narrow_state_pair(scratch[pending], static_cast<std::uint16_t*>(seg.data[pending]) + b, nullptr, nullptr, n,
                              pair_key, b);
        if (!low) continue;
        std::uint16_t* const param = static_cast<std::uint16_t*>(seg.data[0]) + b;
        if (st.stochastic)
            narrow_stochastic(st.param, w, param, n, st.key, b);
        else
            narrow(st.param, w, param, n);
    }
}

// A rule with a vector loop (R::vector_slots) runs it on what it takes, scratch_chunk the rest
// (its tail, other storages): the same bits either way.
template <class R>
void scratch_chunk_vector(const Segment& seg, std::size_t lo, std::size_t hi, ChunkKernel f32, const void* scalars,
                          const double* values, const GradTransform& gt, const Storage& st) {
    if (vector_loops_allowed()) {
        const auto& s = *static_cast<const typename R::Scalars*>(scalars);
        const std::size_t done = rule_vector_chunk<R>(typename R::vector_slots{}, seg, lo, hi, s, values, gt, st);
        if (done) count_vector_loop(done);
        lo += done;
    }
    if (lo < hi) scratch_chunk(seg, lo, hi, f32, scalars, values, gt, st);
}
