// Adam (no amsgrad) on 16-bit storage in one AVX-512 loop: bfloat16 or float16 parameters and
// gradients (master weights too), float32 or bfloat16 moments (with_vector_storage). Each 32 elements are widened,
// updated and rounded back in registers, where the generic path (scratch_chunk) makes passes
// over a float32 scratch block (widen, adam_rule::loop, round). The same operations in
// adam_rule::loop's order, the same roundings and random bits, so the same bits
// (tests/test_compressed_state.py and test_low_precision.py compare it with the avx2 target).
// Included inside a per-target anonymous namespace, after adam_common.hpp and low_precision.hpp.

// Elements [0, n - n % 32) of one piece; returns how many it did: none without AVX-512.
template <class Param, class State, bool CWD, bool DEC, bool HAT>
std::size_t adam_vector(Param param, const typename Param::Grad::Elem* __restrict g, State state, std::size_t n,
                        const DecayedGrad<float, CWD, DEC>& grad, const Moments<float>& mom, float bc2_sqrt, float eps,
                        float neg_step) {
#if defined(__AVX512F__)
    const __m512 lo = _mm512_set1_ps(grad.gin.lo), hi = _mm512_set1_ps(grad.gin.hi);
    const __m512 scale = _mm512_set1_ps(grad.gin.scale), wd = _mm512_set1_ps(grad.wd);
    const __m512 decay = _mm512_set1_ps(grad.decay), weight = _mm512_set1_ps(mom.m_lerp.weight);
    const __mmask16 small = mom.m_lerp.small ? 0xffff : 0;  // the lerp's addend: m, else d
    const __m512 beta2 = _mm512_set1_ps(mom.beta2), one_minus_beta2 = _mm512_set1_ps(mom.one_minus_beta2);
    const __m512 bc2 = _mm512_set1_ps(bc2_sqrt), epsv = _mm512_set1_ps(eps), step = _mm512_set1_ps(neg_step);
    // adam_rule::loop on 16 lanes.
    auto update = [&](__m512& pv, __m512 x, __m512& m, __m512& v) {
        x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), x, lo);  // GradIn: NaN passes
        x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), x, hi);
        __m512 d = _mm512_mul_ps(x, scale);
        if (DEC) pv = _mm512_mul_ps(pv, decay);
        if (CWD) d = _mm512_fmadd_ps(pv, wd, d);
        m = _mm512_fmadd_ps(weight, _mm512_sub_ps(d, m), _mm512_mask_blend_ps(small, d, m));
        v = _mm512_fmadd_ps(_mm512_mul_ps(one_minus_beta2, d), d, _mm512_mul_ps(v, beta2));
        const __m512 root = _mm512_sqrt_ps(v);
        const __m512 denom = HAT ? _mm512_add_ps(root, epsv) : _mm512_add_ps(_mm512_div_ps(root, bc2), epsv);
        pv = _mm512_add_ps(pv, _mm512_div_ps(_mm512_mul_ps(step, m), denom));
    };
    const std::size_t end = n - n % 32;
    for (std::size_t i = 0; i < end; i += 32) {
        __m512 p0, p1, g0, g1, m0, m1, v0, v1;
        param.load(i, p0, p1);
        Param::Grad::load(g + i, g0, g1);
        state.load(i, m0, m1, v0, v1);
        update(p0, g0, m0, v0);
        update(p1, g1, m1, v1);
        param.store(i, p0, p1);
        state.store(i, m0, m1, v0, v1);
    }
    return end;
#else
    static_cast<void>(param), static_cast<void>(g), static_cast<void>(state), static_cast<void>(n);
    static_cast<void>(grad), static_cast<void>(mom), static_cast<void>(bc2_sqrt), static_cast<void>(eps);
    static_cast<void>(neg_step);
    return 0;
#endif
}
