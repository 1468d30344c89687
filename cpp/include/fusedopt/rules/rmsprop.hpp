// torch.optim.RMSprop. Slots: square_avg, momentum_buffer (momentum > 0), grad_avg (centered).

struct rmsprop_rule : RuleBase {
    static constexpr const char* name = "rmsprop";
    enum Value { lr, alpha, eps, weight_decay, momentum, centered, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), number("alpha"), number("eps"), number("weight_decay"),
                                           number("momentum"), flag("centered"), flag("maximize")};
    static constexpr SlotSpec slots[] = {nonnegative_slot("square_avg"), signed_slot("momentum_buffer"),
                                         signed_slot("grad_avg")};
    static unsigned slots_used(const double* v) {
        return 1u | (v[momentum] > 0.0 ? 2u : 0u) | (v[centered] != 0.0 ? 4u : 0u);
    }

    struct Scalars {
        double lr, alpha, eps, weight_decay, momentum;
        bool centered;
    };
    static Scalars derive(const double* v, const Counters&) {
        return {v[lr], v[alpha], v[eps], v[weight_decay], v[momentum], v[centered] != 0.0};
    }

    template <class T, bool WD, bool MOM, bool CENTERED>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict buf, T* __restrict gavg,
                     std::size_t n, GradIn<T> gin, T wd, T alpha, T one_minus_alpha, Lerp<T> avg_lerp, T eps, T mom,
                     T nlr) {
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

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.momentum > 0.0, [&](auto mom_on) {
                with_flag(s.centered, [&](auto centered_on) {
                    constexpr bool W = decltype(wd_on)::value, M = decltype(mom_on)::value,
                                   C = decltype(centered_on)::value;
                    loop<T, W, M, C>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                                     M ? operand<T>(seg, 3) + lo : nullptr, C ? operand<T>(seg, 4) + lo : nullptr,
                                     hi - lo, GradIn<T>(gt), T(s.weight_decay), T(s.alpha), T(1.0 - s.alpha),
                                     Lerp<T>(1.0 - s.alpha), T(s.eps), T(s.momentum), T(-s.lr));
                });
            });
        });
    }
};
