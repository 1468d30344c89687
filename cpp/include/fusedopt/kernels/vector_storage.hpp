// 16-bit storage read and written by hand-vectorized loops (simd.hpp: AVX-512 or AVX2), two
// vectors at a time: 2 x FUSEDOPT_SIMD_LANES consecutive elements, x0 the first half. The same
// conversions, roundings and random bits as the scalar code in low_precision.hpp, so the same
// bits: the scratch path narrows bfloat16 state with narrow_state_pair_simd, and a rule's vector
// loop (rule_vector_chunk below: state_vector_loop over the rule's vector_element) takes its
// parameter and state through these, its own element functions run on vectors; int8 state
// (Q8State) a block at a time with quantize.hpp's functions. Included inside a per-target
// anonymous namespace, after low_precision.hpp and quantize.hpp.

#if FUSEDOPT_SIMD_LANES
constexpr std::size_t kPairLanes = 2 * FUSEDOPT_SIMD_LANES;  // elements one step of a loop takes

// The loops below ask for the lines of the elements kPrefetchElements on while they update these:
// the hardware prefetcher alone left them waiting on memory. Adam on 32M parameters, time
// against float32 state, 2 threads on the 2-core Xeon: bfloat16 state 0.84x -> 0.70-0.71x
// (0.98x its probe), bfloat16 parameters and state 0.83x -> 0.72x, int8 state 1.19x ->
// 0.89-0.92x (256, 1024, 2048 on: 0.96x, 0.91x, 0.98x); on 16 cores of that Xeon at 16 threads,
// bfloat16 state 0.73-0.75x -> 0.63-0.64x (1.11-1.15x its probe), bfloat16 parameters 0.77x ->
// 0.67-0.71x, int8 state 0.75-0.78x -> 0.61-0.67x. No change in cache (64K).
constexpr std::size_t kPrefetchElements = 512;
// One step's lines of `a` (kPairLanes elements); always inlined: GCC deletes the calls it did not
// inline to a function that only prefetches (parallel.hpp).
template <bool Write, class T>
[[gnu::always_inline]] inline void prefetch_step(const T* a) {
    for (std::size_t b = 0; b < kPairLanes * sizeof(T); b += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(a) + b, Write ? 1 : 0);
}

inline VecI mix32_v(VecI x) {  // mix32, lane by lane
    x = vxor_i(x, vshr_i(x, 16));
    x = vmul_i(x, vset_i(0x7feb352du));
    x = vxor_i(x, vshr_i(x, 15));
    x = vmul_i(x, vset_i(0x846ca68bu));
    return vxor_i(x, vshr_i(x, 16));
}
// `rounded` (bits whose top halves are x as bfloat16) with each NaN of x made the quiet NaN of
// its sign, as f32_to_bf16 does (an infinity needs nothing: its low half is 0).
inline VecI quiet_nan_bits(VecF x, VecI rounded) {
    return vselect_i(vnan(x), rounded, vor_i(vand_i(vbits(x), vset_i(0x80000000u)), vset_i(0x7fc00000u)));
}
// The top halves of r0 and r1 (x0 and x1 rounded) stored, NaNs made quiet: one check for the
// pair, so the common case, no NaN, costs one compare.
inline void store_top_halves_quiet(std::uint16_t* out, VecF x0, VecF x1, VecI r0, VecI r1) {
    if (__builtin_expect(!vnone(vnan_either(x0, x1)), 0)) {
        r0 = quiet_nan_bits(x0, r0);
        r1 = quiet_nan_bits(x1, r1);
    }
    vstore_top_halves(out, r0, r1);
}
// f32_to_bf16 (to nearest even) before the NaN check, in the top half.
inline VecI nearest_bf16_bits(VecF x) {
    const VecI u = vbits(x);
    return vadd_i(u, vadd_i(vand_i(vshr_i(u, 16), vset_i(1u)), vset_i(0x7fffu)));
}

// state_bits(key, at + i) for the elements of each step from `at` on: r0 for the first half,
// r1 for the second; the Weyl sequence advanced by additions.
struct StateBits {
    VecI w0, w1, step;
    StateBits(std::uint32_t key, std::uint32_t at) {
        const VecI golden = vset_i(0x9e3779b9u);
        w0 = vadd_i(vset_i(key + 0x9e3779b9u * at), vmul_i(golden, vlane_index()));
        w1 = vadd_i(w0, vset_i(0x9e3779b9u * FUSEDOPT_SIMD_LANES));
        step = vset_i(0x9e3779b9u * static_cast<std::uint32_t>(kPairLanes));
    }
    void next(VecI& r0, VecI& r1) {
        r0 = mix32_v(w0);
        r1 = mix32_v(w1);
        w0 = vadd_i(w0, step);
        w1 = vadd_i(w1, step);
    }
};
// One step's values rounded stochastically (f32_to_bf16_stochastic) with 16 random bits per
// lane, stored.
inline void store_rounded(std::uint16_t* out, VecF x0, VecF x1, VecI r0, VecI r1) {
    store_top_halves_quiet(out, x0, x1, vadd_i(vbits(x0), r0), vadd_i(vbits(x1), r1));
}
// Two arrays' values rounded with one hash per element (StateBits): a's 16 random bits its low
// half, b's its high half.
inline void store_rounded_pair(std::uint16_t* out_a, VecF a0, VecF a1, std::uint16_t* out_b, VecF b0, VecF b1, VecI r0,
                               VecI r1) {
    const VecI low = vset_i(0xffffu);
    store_rounded(out_a, a0, a1, vand_i(r0, low), vand_i(r1, low));
    store_rounded(out_b, b0, b1, vshr_i(r0, 16), vshr_i(r1, 16));
}
inline void widen_bf16_pair(const std::uint16_t* a, VecF& x0, VecF& x1) {  // exact
    VecI lo, hi;
    vwiden_u16(a, lo, hi);
    x0 = vfloat(vshl_i(lo, 16));
    x1 = vfloat(vshl_i(hi, 16));
}

// narrow_state_pair's elements [0, n - n % kPairLanes); returns how many.
inline std::size_t narrow_state_pair_simd(const float* __restrict a, std::uint16_t* __restrict out_a,
                                          const float* __restrict b, std::uint16_t* __restrict out_b, std::size_t n,
                                          std::uint32_t key, std::uint32_t at) {
    constexpr std::size_t W = FUSEDOPT_SIMD_LANES;
    StateBits bits(key, at);
    const std::size_t end = n - n % kPairLanes;
    for (std::size_t i = 0; i < end; i += kPairLanes) {
        VecI r0, r1;
        bits.next(r0, r1);
        if (out_b)
            store_rounded_pair(out_a + i, vload(a + i), vload(a + i + W), out_b + i, vload(b + i), vload(b + i + W),
                               r0, r1);
        else
            store_rounded(out_a + i, vload(a + i), vload(a + i + W), vand_i(r0, vset_i(0xffffu)),
                          vand_i(r1, vset_i(0xffffu)));
    }
    return end;
}

// An array of float32, bfloat16 or float16 values, one step at a time: read exactly, stored
// rounded to nearest even (as widen and narrow).
struct F32Lanes {
    using Elem = float;
    static void load(const float* a, VecF& x0, VecF& x1) {
        x0 = vload(a);
        x1 = vload(a + FUSEDOPT_SIMD_LANES);
    }
    static void store(float* a, VecF x0, VecF x1) {
        vstore(a, x0);
        vstore(a + FUSEDOPT_SIMD_LANES, x1);
    }
};
struct Bf16Lanes {
    using Elem = std::uint16_t;
    static void load(const std::uint16_t* a, VecF& x0, VecF& x1) { widen_bf16_pair(a, x0, x1); }
    static void store(std::uint16_t* a, VecF x0, VecF x1) {
        store_top_halves_quiet(a, x0, x1, nearest_bf16_bits(x0), nearest_bf16_bits(x1));
    }
};
struct F16Lanes {
    using Elem = std::uint16_t;
    static void load(const std::uint16_t* a, VecF& x0, VecF& x1) {
        x0 = vload_f16(a);
        x1 = vload_f16(a + FUSEDOPT_SIMD_LANES);
    }
    static void store(std::uint16_t* a, VecF x0, VecF x1) {
        vstore_f16(a, x0);
        vstore_f16(a + FUSEDOPT_SIMD_LANES, x1);
    }
};

// The parameter as a vector loop reads and writes it, a step from element i on (load, then
// store): a float32 one in place; a 16-bit one (Lanes) in place, or from its float32 master copy
// (MASTER: the copy updated, the parameter written from it), rounded to nearest even or, for
// bfloat16, stochastically (STOCHASTIC: narrow_stochastic's random bits).
struct F32Param {
    using Grad = F32Lanes;
    using Vec = VecF;
    float* p;
    [[gnu::always_inline]] void prefetch(std::size_t i) const { prefetch_step<true>(p + i); }
    void load(std::size_t i, VecF& x0, VecF& x1) const { F32Lanes::load(p + i, x0, x1); }
    void store(std::size_t i, VecF x0, VecF x1) const { F32Lanes::store(p + i, x0, x1); }
};
template <class Lanes, bool MASTER, bool STOCHASTIC>
struct LowParam {
    using Grad = Lanes;
    using Vec = VecF;
    std::uint16_t* p;
    float* master;
    std::uint32_t key, at;  // STOCHASTIC: random_bits(key, at + i) for element i
    [[gnu::always_inline]] void prefetch(std::size_t i) const {
        prefetch_step<true>(p + i);
        if (MASTER) prefetch_step<true>(master + i);
    }
    void load(std::size_t i, VecF& x0, VecF& x1) const {
        if (MASTER)
            F32Lanes::load(master + i, x0, x1);
        else
            Lanes::load(p + i, x0, x1);
    }
    void store(std::size_t i, VecF x0, VecF x1) const {
        if (MASTER) F32Lanes::store(master + i, x0, x1);
        if (!STOCHASTIC) return Lanes::store(p + i, x0, x1);
        const VecI index = vadd_i(vset_i(at + static_cast<std::uint32_t>(i)), vlane_index());
        const VecI k = vset_i(key), low = vset_i(0xffffu);
        const VecI r0 = mix32_v(vxor_i(k, mix32_v(index)));
        const VecI r1 = mix32_v(vxor_i(k, mix32_v(vadd_i(index, vset_i(FUSEDOPT_SIMD_LANES)))));
        store_rounded(p + i, x0, x1, vand_i(r0, low), vand_i(r1, low));
    }
};

// The rule's parameter-shaped state operands (S of them, at most kVectorSlots, in operand
// order), a step of each at a time: float32 in place (F32State<0>: a rule without state), or,
// one or two of them, bfloat16 rounded stochastically with narrow_state_pair's bits (stored in
// order: the bits advance; one hash per element serves a pair, the first slot its low half, the
// second its high half). Three bfloat16 slots stay on the scratch path: in one loop they were
// slower (AVX2, in cache: Adam amsgrad 1.86 against 1.80 ns per element, RMSprop centered with
// momentum 2.16 against 1.77; the registers spill).
constexpr int kVectorSlots = 3, kBf16VectorSlots = 2;
using StateVecs = VecF[kVectorSlots][2];  // [slot][half]

template <int S>
struct F32State {
    static constexpr int slots = S;
    float* a[S > 0 ? S : 1];
    [[gnu::always_inline]] void prefetch(std::size_t i) const {
        for (int k = 0; k < S; ++k) prefetch_step<true>(a[k] + i);
    }
    void load(std::size_t i, StateVecs& x) const {
        for (int k = 0; k < S; ++k) F32Lanes::load(a[k] + i, x[k][0], x[k][1]);
    }
    void store(std::size_t i, const StateVecs& x) const {
        for (int k = 0; k < S; ++k) F32Lanes::store(a[k] + i, x[k][0], x[k][1]);
    }
};
template <int S>
struct Bf16State {
    static_assert(S >= 1 && S <= kBf16VectorSlots, "one hash serves at most two slots");
    static constexpr int slots = S;
    std::uint16_t* a[S];
    StateBits bits;
    [[gnu::always_inline]] void prefetch(std::size_t i) const {
        for (int k = 0; k < S; ++k) prefetch_step<true>(a[k] + i);
    }
    void load(std::size_t i, StateVecs& x) const {
        for (int k = 0; k < S; ++k) widen_bf16_pair(a[k] + i, x[k][0], x[k][1]);
    }
    void store(std::size_t i, const StateVecs& x) {
        VecI r0, r1;
        bits.next(r0, r1);
        if constexpr (S == 2)
            return store_rounded_pair(a[0] + i, x[0][0], x[0][1], a[1] + i, x[1][0], x[1][1], r0, r1);
        store_rounded(a[0] + i, x[0][0], x[0][1], vand_i(r0, vset_i(0xffffu)), vand_i(r1, vset_i(0xffffu)));
    }
};

// int8 state (kernels/quantize.hpp): S operands of codes, each with its blocks' scales (from
// the loop's first block), `is_signed` per operand.
template <int S>
struct Q8State {
    static constexpr int slots = S;
    std::uint8_t* codes[S];
    float* scales[S];
    bool is_signed[S];
    [[gnu::always_inline]] void prefetch(std::size_t i) const {
        for (int k = 0; k < S; ++k) prefetch_step<true>(codes[k] + i);
    }
};

// The lines of the step kPrefetchElements on from element i asked for (none past `end`).
template <class Param, class G, class State>
[[gnu::always_inline]] inline void prefetch_ahead(const Param& param, const G* g, const State& state, std::size_t i,
                                                  std::size_t end) {
    if (i + kPrefetchElements >= end) return;
    param.prefetch(i + kPrefetchElements);
    prefetch_step<false>(g + i + kPrefetchElements);
    state.prefetch(i + kPrefetchElements);
}

// One step of a loop: f(p, g, state...) on each half, with S state operands.
template <int S, class F>
[[gnu::always_inline]] inline void step_halves(F& f, VecF (&p)[2], VecF (&x)[2], StateVecs& s) {
    for (int h = 0; h < 2; ++h) {
        if constexpr (S == 0)
            f(p[h], x[h]);
        else if constexpr (S == 1)
            f(p[h], x[h], s[0][h]);
        else if constexpr (S == 2)
            f(p[h], x[h], s[0][h], s[1][h]);
        else
            f(p[h], x[h], s[0][h], s[1][h], s[2][h]);
    }
}

// A rule's update of a float32 parameter with int8 state, a block of kQuantBlock at a time: the
// block's state decoded into float32 in L1, updated a step at a time by f (its largest magnitude
// kept on the way), and encoded while the next block is updated, so the quantizer's work runs
// beside the rule's divisions rather than after them (the scratch path's passes, one after the
// other, left the divider idle while it encoded). The same operations as the scratch path
// (dequantize, the element function, the block's largest bits, quantize_run): the same bits.
// Elements [0, n - n % kQuantBlock); returns how many.
template <class Param, int S, class F>
std::size_t state_vector_loop(Param param, const float* __restrict g, Q8State<S> state, std::size_t n, F&& f) {
    constexpr std::size_t B = kQuantBlock, kRun = 64;  // encoded kRun values at a time
    static_assert(B % kPairLanes == 0 && (S * B) % kRun == 0, "steps and runs tile a block");
    const std::size_t blocks = n / B;
    alignas(64) float values[2][S][B];  // the block being updated and the one being encoded
    float inv[S] = {};                  // the latter's inverse scales
    const QuantMap& signed_map = quant_map(true);
    const QuantMap& unsigned_map = quant_map(false);
    const QuantRegs signed_regs(signed_map), unsigned_regs(unsigned_map);
    // run r of the encoded block's S * B values
    const auto encode = [&](std::size_t block, const float (*v)[B], std::size_t r) {
        const int k = static_cast<int>(r * kRun / B);
        const std::size_t at = r * kRun % B;
        std::uint8_t* const out = state.codes[k] + block * B + at;
        if (state.is_signed[k])
            quantize_run<true>(v[k] + at, out, kRun, inv[k], signed_regs, signed_map);
        else
            quantize_run<false>(v[k] + at, out, kRun, inv[k], unsigned_regs, unsigned_map);
    };
    for (std::size_t b = 0; b <= blocks; ++b) {
        float (*const cur)[B] = values[b & 1];
        const float (*const prev)[B] = values[(b & 1) ^ 1];
        const bool update = b < blocks, encoding = b > 0;
        if (update)
            for (int k = 0; k < S; ++k) {
                const std::uint8_t* codes = state.codes[k] + b * B;
                if (state.is_signed[k])
                    dequantize<true>(codes, cur[k], B, state.scales[k] + b, signed_map);
                else
                    dequantize<false>(codes, cur[k], B, state.scales[k] + b, unsigned_map);
            }
        VecI largest[S][2];
        for (int k = 0; k < S; ++k) largest[k][0] = largest[k][1] = vset_i(0);
        std::size_t runs = 0, owed = 0;  // runs of the previous block encoded, values due
        for (std::size_t i = 0; update && i < B; i += kPairLanes) {
            const std::size_t at = b * B + i;
            prefetch_ahead(param, g, state, at, n);
            VecF p[2], x[2];
            StateVecs s;
            param.load(at, p[0], p[1]);
            F32Lanes::load(g + at, x[0], x[1]);
            for (int k = 0; k < S; ++k) F32Lanes::load(cur[k] + i, s[k][0], s[k][1]);
            step_halves<S>(f, p, x, s);
            param.store(at, p[0], p[1]);
            for (int k = 0; k < S; ++k) {
                F32Lanes::store(cur[k] + i, s[k][0], s[k][1]);
                for (int h = 0; h < 2; ++h)
                    largest[k][h] = vmax_u(largest[k][h], vand_i(vbits(s[k][h]), vset_i(0x7fffffffu)));
            }
            for (owed += S * kPairLanes; encoding && owed >= kRun; owed -= kRun) encode(b - 1, prev, runs++);
        }
        for (; encoding && runs < S * B / kRun; ++runs) encode(b - 1, prev, runs);
        if (update)
            for (int k = 0; k < S; ++k) {
                const float absmax = block_absmax(vlargest_u(vmax_u(largest[k][0], largest[k][1])));
                state.scales[k][b] = absmax;  // (its old value was read above)
                inv[k] = inverse_scale(absmax);
            }
    }
    return blocks * B;
}

// A rule's update of a parameter and its state, a step at a time: f(p, g, state...) on each
// half (float32 vectors; p and the state updated in place). Elements [0, n - n % kPairLanes)
// of a piece; returns how many.
template <class Param, class State, class F>
std::size_t state_vector_loop(Param param, const typename Param::Grad::Elem* __restrict g, State state, std::size_t n,
                              F&& f) {
    const std::size_t end = n - n % kPairLanes;
    for (std::size_t i = 0; i < end; i += kPairLanes) {
        prefetch_ahead(param, g, state, i, end);
        VecF p[2], x[2];
        StateVecs s;
        param.load(i, p[0], p[1]);
        Param::Grad::load(g + i, x[0], x[1]);
        state.load(i, s);
        step_halves<State::slots>(f, p, x, s);
        param.store(i, p[0], p[1]);
        state.store(i, s);
    }
    return end;
}
#endif

// The storages a rule's vector loop takes (R::vector_slots, R::vector_element) in place of
// scratch_chunk: the parameter and gradient float32, bfloat16 or float16 (with or without a
// master copy; stochastic rounding for bfloat16), and S state operands (those present, in
// operand order; no other) all float32, up to kBf16VectorSlots all bfloat16, or all int8 (with
// their scales; a float32 parameter, `lo` the start of a block). For elements
// [lo, ...) of `seg`: returns body(param, g, state) (the elements it did; typename
// decltype(param)::Vec is the vector type), or 0 for another storage or on a target without
// vector loops.
template <int S, class Body>
std::size_t with_vector_storage(const Segment& seg, std::size_t lo, const Storage& st, Body&& body) {
#if FUSEDOPT_SIMD_LANES
    static_assert(S <= kVectorSlots, "state operands a vector loop takes");
    if (st.stochastic && st.param != DType::bf16) return 0;
    int state_at[S > 0 ? S : 1], count = 0;  // the state operands
    for (int k = 2; k < kMaxOperands; ++k) {
        if (k == st.master || !seg.data[k] || st.slot[k] == SlotStorage::scales) continue;
        if (count == S) return 0;  // (more than the loop takes)
        state_at[count++] = k;
    }
    if (count != S) return 0;
    const SlotStorage first = S > 0 ? st.slot[state_at[0]] : SlotStorage::plain;
    const bool bf16_state = first == SlotStorage::bf16;
    const bool int8_state = first == SlotStorage::q8_signed || first == SlotStorage::q8_unsigned;
    for (int k = 0; k < S; ++k) {
        const SlotStorage x = st.slot[state_at[k]];
        if (int8_state ? x != SlotStorage::q8_signed && x != SlotStorage::q8_unsigned
                       : x != (bf16_state ? SlotStorage::bf16 : SlotStorage::plain))
            return 0;
    }
    if (bf16_state && S > kBf16VectorSlots) return 0;
    if constexpr (S > 0) {
        if (int8_state) {  // a float32 parameter only (lo: the start of a block, the plan's piece alignment)
            if (st.param != DType::f32) return 0;
            Q8State<S> state{};
            for (int k = 0; k < S; ++k) {
                state.codes[k] = operand<std::uint8_t>(seg, state_at[k]) + lo;
                state.scales[k] = operand<float>(seg, st.scales[state_at[k]]) + lo / kQuantBlock;
                state.is_signed[k] = st.slot[state_at[k]] == SlotStorage::q8_signed;
            }
            return body(F32Param{operand<float>(seg, 0) + lo}, operand<float>(seg, 1) + lo, state);
        }
    }
    const auto with_state = [&](auto param) -> std::size_t {
        const auto* g = operand<typename decltype(param)::Grad::Elem>(seg, 1) + lo;
        if constexpr (S > 0 && S <= kBf16VectorSlots) {
            if (bf16_state) {
                Bf16State<S> state{{}, StateBits(mix32(st.key), static_cast<std::uint32_t>(lo))};
                for (int k = 0; k < S; ++k) state.a[k] = operand<std::uint16_t>(seg, state_at[k]) + lo;
                return body(param, g, state);
            }
        }
        F32State<S> state{};
        for (int k = 0; k < S; ++k) state.a[k] = operand<float>(seg, state_at[k]) + lo;
        return body(param, g, state);
    };
    if (st.param == DType::f32) return bf16_state ? with_state(F32Param{operand<float>(seg, 0) + lo}) : 0;
    std::uint16_t* const p = operand<std::uint16_t>(seg, 0) + lo;
    float* const master = st.master >= 0 ? operand<float>(seg, st.master) + lo : nullptr;
    const std::uint32_t at = static_cast<std::uint32_t>(lo);
    if (st.param == DType::f16)
        return master ? with_state(LowParam<F16Lanes, true, false>{p, master, st.key, at})
                      : with_state(LowParam<F16Lanes, false, false>{p, master, st.key, at});
    if (st.stochastic)
        return master ? with_state(LowParam<Bf16Lanes, true, true>{p, master, st.key, at})
                      : with_state(LowParam<Bf16Lanes, false, true>{p, master, st.key, at});
    return master ? with_state(LowParam<Bf16Lanes, true, false>{p, master, st.key, at})
                  : with_state(LowParam<Bf16Lanes, false, false>{p, master, st.key, at});
#else
    static_cast<void>(seg), static_cast<void>(lo), static_cast<void>(st), static_cast<void>(body);
    return 0;
#endif
}

// The state operand counts a rule's vector loop takes (R::vector_slots; none: it has none).
template <int... S>
struct SlotCounts {
    static constexpr int size = sizeof...(S);
};

// Whether rule R picks one of several counts per step: R::vector_slot_count(scalars).
template <class R, class = void>
struct PicksSlotCount : std::false_type {};
template <class R>
struct PicksSlotCount<R, std::void_t<decltype(R::vector_slot_count(std::declval<const typename R::Scalars&>()))>>
    : std::true_type {};

// A vector loop as a rule's vector_element sees it: run(f) runs it with the element function f;
// SPARE: whether the loop leaves vector ports idle beside the divider (KeepsPortsBusy).
template <class Loop, bool SPARE>
struct VectorRun {
    const Loop& loop;
    static constexpr bool spare_ports = SPARE;
    template <class F>
    void operator()(F&& f) const {
        loop(f);
    }
};
// Whether a storage's own work (a vector loop's Param or State) keeps the vector ports busy, so
// that a rule should leave its divisions on the divider rather than trade them for multiply-adds
// (QuotientByConstant) or float64 products (DivideByConstant). Adam in cache, 1 core, ns per
// element, division -> multiply-adds: int8 state 0.93 -> 0.98 (AVX-512); bfloat16 state 0.68 ->
// 0.77-0.88 on AVX2 (AVX-512: no change; NAdam's products there 0.71-0.73 -> 0.73-0.77);
// bfloat16 parameters 0.59 -> 0.64-0.65 on AVX2, their rounding on the ports the multiply-adds
// need (AVX-512: 0.58 -> 0.44). Plain float32 and float16 storage: false.
template <class Storage>
struct KeepsPortsBusy : std::false_type {};
#if FUSEDOPT_SIMD_LANES
template <int S>
struct KeepsPortsBusy<Q8State<S>> : std::true_type {};
template <int S>
struct KeepsPortsBusy<Bf16State<S>> : std::true_type {};
template <bool MASTER, bool STOCHASTIC>
struct KeepsPortsBusy<LowParam<Bf16Lanes, MASTER, STOCHASTIC>> : std::bool_constant<FUSEDOPT_SIMD_LANES == 8> {};
#endif
template <class Run>
constexpr bool spare_ports() {
    return std::decay_t<Run>::spare_ports;
}

// Rule R's vector loop with S state operands over elements [lo, ...) of `seg` (with_vector_storage),
// or 0: R::vector_element<Vec, S>(scalars, grad transform, run) makes the rule's constants as Vec
// and calls run(f) once with its element function f(p, g, state...) (or not at all: the scratch
// path takes the chunk; run is a VectorRun). A rule with a reduction pass takes the segment and the
// array's values too: vector_element<Vec, S>(scalars, segment, values, grad transform, run).
template <class R, int S>
std::size_t rule_vector_chunk_with(const Segment& seg, std::size_t lo, std::size_t hi, const typename R::Scalars& s,
                                   const double* values, const GradTransform& gt, const Storage& st) {
    return with_vector_storage<S>(seg, lo, st, [&](auto param, const auto* g, auto state) {
        using V = typename decltype(param)::Vec;
        std::size_t done = 0;
        const auto loop = [&](auto&& f) { done = state_vector_loop(param, g, state, hi - lo, f); };
        constexpr bool spare = !KeepsPortsBusy<decltype(param)>::value && !KeepsPortsBusy<decltype(state)>::value;
        const VectorRun<decltype(loop), spare> run{loop};
        if constexpr (R::reduce_passes > 0)
            R::template vector_element<V, S>(s, seg, values, gt, run);
        else
            R::template vector_element<V, S>(s, gt, run);
        return done;
    });
}

// Rule R's vector loop over what it takes of elements [lo, hi) of `seg`; returns how many it did.
template <class R, int... S>
std::size_t rule_vector_chunk(SlotCounts<S...>, const Segment& seg, std::size_t lo, std::size_t hi,
                              const typename R::Scalars& s, const double* values, const GradTransform& gt,
                              const Storage& st) {
    static_assert(sizeof...(S) == 1 || PicksSlotCount<R>::value, "a rule with several counts picks one per step");
    int count = 0;
    if constexpr (PicksSlotCount<R>::value)
        count = R::vector_slot_count(s);
    else
        count = (S, ...);  // (the only one)
    std::size_t done = 0;
    static_cast<void>(
        ((count == S && (done = rule_vector_chunk_with<R, S>(seg, lo, hi, s, values, gt, st), true)) || ...));
    return done;
}
