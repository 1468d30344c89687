// Adam (no amsgrad) on 16-bit storage in one hand-vectorized loop (simd.hpp: AVX-512 or AVX2):
// bfloat16 or float16 parameters and gradients (master weights too), float32 or bfloat16
// moments (vector_storage.hpp, with_vector_storage). Each step of 2 vectors is widened,
// updated and rounded back in registers, where the scratch path (scratch.hpp) makes passes over
// a float32 scratch block (widen, adam_rule::loop, round). The same operations in
// adam_rule::loop's order, the same roundings and random bits, so the same bits
// (tests/test_compressed_state.py compares the two on every target that has the loop).
// Included inside a per-target anonymous namespace, after adam_common.hpp and vector_storage.hpp.

// Elements [0, n - n % kPairLanes) of one piece; returns how many it did: none on a target
// without vector loops.
template <class Param, class State, bool CWD, bool DEC, bool HAT>
std::size_t adam_vector(Param param, const typename Param::Grad::Elem* __restrict g, State state, std::size_t n,
                        const DecayedGrad<float, CWD, DEC>& grad, const Moments<float>& mom, float bc2_sqrt, float eps,
                        float neg_step) {
#if FUSEDOPT_SIMD_LANES
    const VecF lo = vset(grad.gin.lo), hi = vset(grad.gin.hi), scale = vset(grad.gin.scale);
    const VecF wd = vset(grad.wd), decay = vset(grad.decay);
    const VecF weight = vset(mom.m_lerp.weight);
    const VecMask small = vmask(mom.m_lerp.small);  // the lerp's addend: m, else d
    const VecF beta2 = vset(mom.beta2), one_minus_beta2 = vset(mom.one_minus_beta2);
    const VecF bc2 = vset(bc2_sqrt), epsv = vset(eps), step = vset(neg_step);
    // adam_rule::loop on one vector.
    auto update = [&](VecF& p, VecF x, VecF& m, VecF& v) {
        x = vselect(vless(x, lo), x, lo);  // GradIn: clamped (a NaN passes), then scaled
        x = vselect(vgreater(x, hi), x, hi);
        VecF d = vmul(x, scale);
        if (DEC) p = vmul(p, decay);
        if (CWD) d = vfmadd(p, wd, d);
        m = vfmadd(weight, vsub(d, m), vselect(small, d, m));
        v = vfmadd(vmul(one_minus_beta2, d), d, vmul(v, beta2));
        const VecF root = vsqrt(v);
        const VecF denom = HAT ? vadd(root, epsv) : vadd(vdiv(root, bc2), epsv);
        p = vadd(p, vdiv(vmul(step, m), denom));
    };
    const std::size_t end = n - n % kPairLanes;
    for (std::size_t i = 0; i < end; i += kPairLanes) {
        VecF p0, p1, g0, g1, m0, m1, v0, v1;
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
