// Adam with bfloat16 moments on a float32 parameter (state_dtype="bfloat16", no amsgrad), AVX-512:
// each vector of 32 elements is widened, updated and rounded back in registers, where the generic
// path (scratch_chunk) makes three passes over a float32 scratch block (widen, adam_rule::loop,
// narrow_state_pair). The same operations in adam_rule::loop's order, the same random bits and
// rounding as scratch_chunk, so the same bits (tests/test_state_dtype.py compares both paths).
// Included inside a per-target anonymous namespace, after adam_common.hpp and low_precision.hpp.

// Elements [0, n - n % 32) of one piece (`at`: the first one's index in its array, for the
// random bits); returns how many it did: none on targets without AVX-512.
template <bool CWD, bool DEC, bool HAT>
std::size_t adam_bf16_pair(float* __restrict p, const float* __restrict g, std::uint16_t* __restrict m16,
                           std::uint16_t* __restrict v16, std::size_t n, const DecayedGrad<float, CWD, DEC>& grad,
                           const Moments<float>& mom, float bc2_sqrt, float eps, float neg_step, std::uint32_t key,
                           std::uint32_t at) {
#if defined(__AVX512F__)
    const __m512 lo = _mm512_set1_ps(grad.gin.lo), hi = _mm512_set1_ps(grad.gin.hi);
    const __m512 scale = _mm512_set1_ps(grad.gin.scale), wd = _mm512_set1_ps(grad.wd);
    const __m512 decay = _mm512_set1_ps(grad.decay), weight = _mm512_set1_ps(mom.m_lerp.weight);
    const __mmask16 small = mom.m_lerp.small ? 0xffff : 0;  // the lerp's addend: m, else d
    const __m512 beta2 = _mm512_set1_ps(mom.beta2), one_minus_beta2 = _mm512_set1_ps(mom.one_minus_beta2);
    const __m512 bc2 = _mm512_set1_ps(bc2_sqrt), epsv = _mm512_set1_ps(eps), step = _mm512_set1_ps(neg_step);
    // adam_rule::loop on 16 lanes: m and v in, the new moments out, the parameter stored.
    auto update = [&](float* pp, const float* gp, __m512& m, __m512& v) {
        __m512 x = _mm512_loadu_ps(gp);  // GradIn: clamp (NaN passes), then scale
        x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), x, lo);
        x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), x, hi);
        __m512 d = _mm512_mul_ps(x, scale);
        __m512 pv = _mm512_loadu_ps(pp);
        if (DEC) pv = _mm512_mul_ps(pv, decay);
        if (CWD) d = _mm512_fmadd_ps(pv, wd, d);
        m = _mm512_fmadd_ps(weight, _mm512_sub_ps(d, m), _mm512_mask_blend_ps(small, d, m));
        v = _mm512_fmadd_ps(_mm512_mul_ps(one_minus_beta2, d), d, _mm512_mul_ps(v, beta2));
        const __m512 root = _mm512_sqrt_ps(v);
        const __m512 denom = HAT ? _mm512_add_ps(root, epsv) : _mm512_add_ps(_mm512_div_ps(root, bc2), epsv);
        _mm512_storeu_ps(pp, _mm512_add_ps(pv, _mm512_div_ps(_mm512_mul_ps(step, m), denom)));
    };
    StateBits32 bits(key, at);
    const std::size_t end = n - n % 32;
    for (std::size_t i = 0; i < end; i += 32) {
        __m512 m0, m1, v0, v1;
        widen_bf16_32(m16 + i, m0, m1);
        widen_bf16_32(v16 + i, v0, v1);
        update(p + i, g + i, m0, v0);
        update(p + i + 16, g + i + 16, m1, v1);
        __m512i r0, r1;
        bits.next(r0, r1);
        store_rounded_pair(m16 + i, m0, m1, v16 + i, v0, v1, r0, r1);
    }
    return end;
#else
    (void)p, (void)g, (void)m16, (void)v16, (void)n, (void)grad, (void)mom, (void)bc2_sqrt, (void)eps, (void)neg_step,
        (void)key, (void)at;
    return 0;
#endif
}
