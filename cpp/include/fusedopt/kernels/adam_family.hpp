// torch.optim.Adam/AdamW, Adamax, NAdam, RAdam, and Lion.
// Slots: 0 p, 1 g, 2 exp_avg, then
//   Adam: 3 exp_avg_sq, 4 max_exp_avg_sq (amsgrad);  Adamax: 3 exp_inf;
//   NAdam, RAdam: 3 exp_avg_sq;  Lion: nothing more.

// The gradient as the Adam family sees it, with weight decay: decoupled multiplies p by
// (1 - lr*wd) before anything else; coupled adds wd*p to the (negated, clipped) gradient.
template <class T, bool CWD, bool DEC>
struct DecayedGrad {
    GradIn<T> gin;
    T wd, decay;
    DecayedGrad(const GradTransform& gt, double weight_decay, double decay_)
        : gin(gt), wd(T(weight_decay)), decay(T(decay_)) {}
    T operator()(T& p, T g) const {
        T d = gin(g);
        if (DEC) p = p * decay;
        if (CWD) d = fmadd(p, wd, d);
        return d;
    }
};

// torch's moment updates: m = lerp(m, g, 1 - beta1); v = beta2*v + (1 - beta2)*g*g (mul_, addcmul_).
template <class T>
struct Moments {
    Lerp<T> m_lerp;
    T beta2, one_minus_beta2;
    Moments(double beta1, double beta2_) : m_lerp(1.0 - beta1), beta2(T(beta2_)), one_minus_beta2(T(1.0 - beta2_)) {}
    T first(T m, T d) const { return m_lerp(m, d); }
    T second(T v, T d) const { return fmadd(one_minus_beta2 * d, d, v * beta2); }
};

// The prologue the Adam family shares: the (decayed) gradient, then both moments, written back.
// Returns the gradient the update uses; `m` and `v` hold the new moments.
template <class T, bool CWD, bool DEC>
inline T step_moments(T& p, T g, T& m, T& v, const DecayedGrad<T, CWD, DEC>& grad, const Moments<T>& mom) {
    const T d = grad(p, g);
    m = mom.first(m, d);
    v = mom.second(v, d);
    return d;
}

template <class T, bool AMS, bool CWD, bool DEC>
inline void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                      T* __restrict vmax, std::size_t n, DecayedGrad<T, CWD, DEC> grad, Moments<T> mom,
                      T bc2_sqrt, T eps, T neg_step) {
    for (std::size_t i = 0; i < n; ++i) {
        T pi = p[i], mi = m[i], vi = v[i];
        step_moments(pi, g[i], mi, vi, grad, mom);
        m[i] = mi;
        v[i] = vi;
        if (AMS) {
            vi = max_nan(vmax[i], vi);
            vmax[i] = vi;
        }
        const T denom = sqrt_(vi) / bc2_sqrt + eps;
        p[i] = pi + (neg_step * mi) / denom;
    }
}

template <class T, bool AMS, bool CWD, bool DEC>
void adam_run(const SegmentList& l, const AdamScalars& s, const GradTransform& gt, const Exec& e) {
    const DecayedGrad<T, CWD, DEC> grad(gt, s.weight_decay, s.decay);
    const Moments<T> mom(s.beta1, s.beta2);
    const T bc2_sqrt = T(s.bc2_sqrt), eps = T(s.eps), neg_step = T(-s.step_size);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        adam_loop<T, AMS, CWD, DEC>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                                    operand<T>(seg, 3) + lo, AMS ? operand<T>(seg, 4) + lo : nullptr, hi - lo,
                                    grad, mom, bc2_sqrt, eps, neg_step);
    });
}

template <class T, bool AMS>
void adam_pick(const SegmentList& l, const AdamScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay == 0.0) return adam_run<T, AMS, false, false>(l, s, gt, e);
    if (s.decoupled) return adam_run<T, AMS, false, true>(l, s, gt, e);
    return adam_run<T, AMS, true, false>(l, s, gt, e);
}

template <class T>
void adam_kernel(const SegmentList& l, const AdamScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.amsgrad) return adam_pick<T, true>(l, s, gt, e);
    return adam_pick<T, false>(l, s, gt, e);
}

template <class T, bool CWD>
void adamax_run(const SegmentList& l, const AdamaxScalars& s, const GradTransform& gt, const Exec& e) {
    const DecayedGrad<T, CWD, false> grad(gt, s.weight_decay, 1.0);
    const T beta2 = T(s.beta2), eps = T(s.eps), neg_clr = T(-s.clr);
    const Lerp<T> m_lerp(1.0 - s.beta1);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* __restrict p = operand<T>(seg, 0) + lo;
        const T* __restrict g = operand<T>(seg, 1) + lo;
        T* __restrict m = operand<T>(seg, 2) + lo;
        T* __restrict u = operand<T>(seg, 3) + lo;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            T pi = p[i];
            const T d = grad(pi, g[i]);
            const T mi = m_lerp(m[i], d);
            m[i] = mi;
            const T ui = max_nan(u[i] * beta2, abs_(d) + eps);
            u[i] = ui;
            p[i] = pi + (neg_clr * mi) / ui;
        }
    });
}

template <class T>
void adamax_kernel(const SegmentList& l, const AdamaxScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay != 0.0) return adamax_run<T, true>(l, s, gt, e);
    return adamax_run<T, false>(l, s, gt, e);
}

template <class T, bool CWD, bool DEC>
void nadam_run(const SegmentList& l, const NadamScalars& s, const GradTransform& gt, const Exec& e) {
    const DecayedGrad<T, CWD, DEC> grad(gt, s.weight_decay, s.decay);
    const Moments<T> mom(s.beta1, s.beta2);
    const T bc2 = T(s.bc2), eps = T(s.eps), grad_coef = T(s.grad_coef), avg_coef = T(s.avg_coef);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* __restrict p = operand<T>(seg, 0) + lo;
        const T* __restrict g = operand<T>(seg, 1) + lo;
        T* __restrict m = operand<T>(seg, 2) + lo;
        T* __restrict v = operand<T>(seg, 3) + lo;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            const T d = step_moments(pi, g[i], mi, vi, grad, mom);
            m[i] = mi;
            v[i] = vi;
            const T denom = sqrt_(vi / bc2) + eps;
            pi = pi + (grad_coef * d) / denom;
            p[i] = pi + (avg_coef * mi) / denom;
        }
    });
}

template <class T>
void nadam_kernel(const SegmentList& l, const NadamScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay == 0.0) return nadam_run<T, false, false>(l, s, gt, e);
    if (s.decoupled) return nadam_run<T, false, true>(l, s, gt, e);
    return nadam_run<T, true, false>(l, s, gt, e);
}

template <class T, bool CWD, bool DEC, bool RECT>
void radam_run(const SegmentList& l, const RadamScalars& s, const GradTransform& gt, const Exec& e) {
    const DecayedGrad<T, CWD, DEC> grad(gt, s.weight_decay, s.decay);
    const Moments<T> mom(s.beta1, s.beta2);
    const T eps = T(s.eps), lr = T(s.lr), bc1 = T(s.bc1), bc2_sqrt = T(s.bc2_sqrt), rect = T(s.rect);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* __restrict p = operand<T>(seg, 0) + lo;
        const T* __restrict g = operand<T>(seg, 1) + lo;
        T* __restrict m = operand<T>(seg, 2) + lo;
        T* __restrict v = operand<T>(seg, 3) + lo;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            const T d = step_moments(pi, g[i], mi, vi, grad, mom);
            m[i] = mi;
            v[i] = vi;
            T x = (mi / bc1) * lr;
            if (RECT) x = (x * ((T(1) / (sqrt_(vi) + eps)) * bc2_sqrt)) * rect;
            p[i] = pi - x;
        }
    });
}

template <class T, bool RECT>
void radam_pick(const SegmentList& l, const RadamScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay == 0.0) return radam_run<T, false, false, RECT>(l, s, gt, e);
    if (s.decoupled) return radam_run<T, false, true, RECT>(l, s, gt, e);
    return radam_run<T, true, false, RECT>(l, s, gt, e);
}

template <class T>
void radam_kernel(const SegmentList& l, const RadamScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.rectified) return radam_pick<T, true>(l, s, gt, e);
    return radam_pick<T, false>(l, s, gt, e);
}

// Lion: c = lerp(m, g, 1-beta1); p = p*(1 - lr*wd) - lr*sign(c); m = lerp(m, g, 1-beta2).
template <class T>
void lion_kernel(const SegmentList& l, const LionScalars& s, const GradTransform& gt, const Exec& e) {
    const GradIn<T> gin(gt);
    const T decay = T(s.decay), nlr = T(-s.lr);
    const Lerp<T> c_lerp(1.0 - s.beta1), m_lerp(1.0 - s.beta2);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        T* __restrict p = operand<T>(seg, 0) + lo;
        const T* __restrict g = operand<T>(seg, 1) + lo;
        T* __restrict m = operand<T>(seg, 2) + lo;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            const T d = gin(g[i]);
            const T c = c_lerp(m[i], d);
            p[i] = fmadd(sign_(c), nlr, p[i] * decay);
            m[i] = m_lerp(m[i], d);
        }
    });
}
