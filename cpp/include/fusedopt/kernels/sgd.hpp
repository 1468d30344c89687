// SGD family: torch.optim.SGD and the classic "lr inside the velocity" formulation.
// Operand slots: 0 p, 1 g, 2 momentum_buffer (when momentum != 0).

template <class T, bool WD, bool MOM, bool FIRST, bool NESTEROV>
inline void sgd_torch_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, std::size_t n,
                           GradIn<T> gin, T wd, T mom, T keep, T nlr) {
    for (std::size_t i = 0; i < n; ++i) {
        T d = gin(g[i]);
        if (WD) d = fmadd(p[i], wd, d);
        if (MOM) {
            const T b = FIRST ? d : fmadd(d, keep, buf[i] * mom);
            buf[i] = b;
            d = NESTEROV ? fmadd(b, mom, d) : b;
        }
        p[i] = fmadd(d, nlr, p[i]);
    }
}

// v = mu*v - lr*g; p += v. Nesterov form: p += -mu*v_prev + (1+mu)*v.
template <class T, bool WD, bool NESTEROV>
inline void sgd_classic_loop(T* __restrict p, const T* __restrict g, T* __restrict v, std::size_t n,
                             GradIn<T> gin, T wd, T mom, T nlr) {
    const T one_plus_mom = T(1) + mom, neg_mom = -mom;
    for (std::size_t i = 0; i < n; ++i) {
        T d = gin(g[i]);
        if (WD) d = fmadd(p[i], wd, d);
        const T prev = v[i];
        const T now = fmadd(d, nlr, prev * mom);
        v[i] = now;
        p[i] = p[i] + (NESTEROV ? fmadd(now, one_plus_mom, neg_mom * prev) : now);
    }
}

template <class T, bool WD, bool MOM, bool FIRST, bool NESTEROV, bool CLASSIC>
void sgd_run(const SegmentList& l, const SgdScalars& s, const GradTransform& gt, const Exec& e) {
    const GradIn<T> gin(gt);
    const T wd = T(s.weight_decay), mom = T(s.momentum);
    const T keep = T(1.0 - s.dampening), nlr = T(-s.lr);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* p = operand<T>(seg, 0) + lo;
        const T* g = operand<T>(seg, 1) + lo;
        T* buf = MOM ? operand<T>(seg, 2) + lo : nullptr;
        if (CLASSIC)
            sgd_classic_loop<T, WD, NESTEROV>(p, g, buf, hi - lo, gin, wd, mom, nlr);
        else
            sgd_torch_loop<T, WD, MOM, FIRST, NESTEROV>(p, g, buf, hi - lo, gin, wd, mom, keep, nlr);
    });
}

template <class T, bool WD>
void sgd_pick(const SegmentList& l, const SgdScalars& s, const GradTransform& gt, const Exec& e) {
    const bool mom = s.momentum != 0.0 || s.classic;
    if (s.classic) {
        if (s.nesterov) return sgd_run<T, WD, true, false, true, true>(l, s, gt, e);
        return sgd_run<T, WD, true, false, false, true>(l, s, gt, e);
    }
    if (!mom) return sgd_run<T, WD, false, false, false, false>(l, s, gt, e);
    if (s.first_step) {
        if (s.nesterov) return sgd_run<T, WD, true, true, true, false>(l, s, gt, e);
        return sgd_run<T, WD, true, true, false, false>(l, s, gt, e);
    }
    if (s.nesterov) return sgd_run<T, WD, true, false, true, false>(l, s, gt, e);
    return sgd_run<T, WD, true, false, false, false>(l, s, gt, e);
}

template <class T>
void sgd_kernel(const SegmentList& l, const SgdScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay != 0.0) return sgd_pick<T, true>(l, s, gt, e);
    return sgd_pick<T, false>(l, s, gt, e);
}
