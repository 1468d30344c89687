// torch.optim.Adagrad and torch.optim.RMSprop.
// Adagrad slots: 0 p, 1 g, 2 sum.
// RMSprop slots: 0 p, 1 g, 2 square_avg, 3 momentum_buffer (momentum > 0), 4 grad_avg (centered).

template <class T, bool WD>
inline void adagrad_loop(T* __restrict p, const T* __restrict g, T* __restrict sum, std::size_t n,
                         GradIn<T> gin, T wd, T eps, T nclr) {
    for (std::size_t i = 0; i < n; ++i) {
        T d = gin(g[i]);
        if (WD) d = fmadd(p[i], wd, d);
        const T acc = fmadd(d, d, sum[i]);
        sum[i] = acc;
        p[i] = p[i] + (nclr * d) / (sqrt_(acc) + eps);
    }
}

template <class T, bool WD>
void adagrad_run(const SegmentList& l, const AdagradScalars& s, const GradTransform& gt, const Exec& e) {
    const GradIn<T> gin(gt);
    const T wd = T(s.weight_decay), eps = T(s.eps), nclr = T(-s.clr);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        adagrad_loop<T, WD>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                            hi - lo, gin, wd, eps, nclr);
    });
}

template <class T>
void adagrad_kernel(const SegmentList& l, const AdagradScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay != 0.0) return adagrad_run<T, true>(l, s, gt, e);
    return adagrad_run<T, false>(l, s, gt, e);
}

template <class T, bool WD, bool MOM, bool CENTERED>
inline void rmsprop_loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict buf,
                         T* __restrict gavg, std::size_t n, GradIn<T> gin, T wd, T alpha, T one_minus_alpha,
                         Lerp<T> avg_lerp, T eps, T mom, T nlr) {
    for (std::size_t i = 0; i < n; ++i) {
        T d = gin(g[i]);
        if (WD) d = fmadd(p[i], wd, d);
        const T v = fmadd(one_minus_alpha * d, d, sq[i] * alpha);
        sq[i] = v;
        T avg;
        if (CENTERED) {
            const T ga = avg_lerp(gavg[i], d);
            gavg[i] = ga;
            avg = sqrt_(fmadd(-ga, ga, v)) + eps;
        } else {
            avg = sqrt_(v) + eps;
        }
        if (MOM) {
            const T b = buf[i] * mom + d / avg;
            buf[i] = b;
            p[i] = fmadd(b, nlr, p[i]);
        } else {
            p[i] = p[i] + (nlr * d) / avg;
        }
    }
}

template <class T, bool WD, bool MOM, bool CENTERED>
void rmsprop_run(const SegmentList& l, const RmspropScalars& s, const GradTransform& gt, const Exec& e) {
    const GradIn<T> gin(gt);
    const T wd = T(s.weight_decay), alpha = T(s.alpha);
    const T one_minus_alpha = T(1.0 - s.alpha), eps = T(s.eps), mom = T(s.momentum), nlr = T(-s.lr);
    const Lerp<T> avg_lerp(1.0 - s.alpha);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        rmsprop_loop<T, WD, MOM, CENTERED>(
            operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
            MOM ? operand<T>(seg, 3) + lo : nullptr, CENTERED ? operand<T>(seg, 4) + lo : nullptr,
            hi - lo, gin, wd, alpha, one_minus_alpha, avg_lerp, eps, mom, nlr);
    });
}

template <class T, bool WD>
void rmsprop_pick(const SegmentList& l, const RmspropScalars& s, const GradTransform& gt, const Exec& e) {
    const bool mom = s.momentum > 0.0;
    if (mom && s.centered) return rmsprop_run<T, WD, true, true>(l, s, gt, e);
    if (mom) return rmsprop_run<T, WD, true, false>(l, s, gt, e);
    if (s.centered) return rmsprop_run<T, WD, false, true>(l, s, gt, e);
    return rmsprop_run<T, WD, false, false>(l, s, gt, e);
}

template <class T>
void rmsprop_kernel(const SegmentList& l, const RmspropScalars& s, const GradTransform& gt, const Exec& e) {
    if (s.weight_decay != 0.0) return rmsprop_pick<T, true>(l, s, gt, e);
    return rmsprop_pick<T, false>(l, s, gt, e);
}
