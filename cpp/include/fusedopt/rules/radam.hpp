// torch.optim.RAdam. Slots: exp_avg, exp_avg_sq.

struct radam_rule : RuleBase {
    static constexpr const char* name = "radam";
    enum Value { lr, beta1, beta2, eps, weight_decay, decoupled, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("eps"), number("weight_decay"),
                                           flag("decoupled_weight_decay"), flag("maximize")};
    static constexpr SlotSpec slots[] = {signed_slot("exp_avg"), nonnegative_slot("exp_avg_sq")};
    static unsigned slots_used(const double*) { return 3u; }

    struct Scalars {
        double beta1, beta2, eps, weight_decay, lr, bc1, bc2_sqrt;
        double rect;  // the variance rectification term r_t
        double decay;
        bool rectified;  // rho_t > 5
        bool decoupled;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        const double bc1 = 1 - __builtin_pow(v[beta1], t), bc2 = 1 - __builtin_pow(v[beta2], t);
        const double rho_inf = 2 / (1 - v[beta2]) - 1;
        const double rho_t = rho_inf - 2 * t * __builtin_pow(v[beta2], t) / bc2;
        const bool rectified = rho_t > 5.0;
        const double rect =
            rectified ? __builtin_pow((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.5)
                      : __builtin_nan("");
        const bool dec = v[decoupled] != 0.0;
        return {v[beta1], v[beta2], v[eps], v[weight_decay], v[lr], bc1, __builtin_pow(bc2, 0.5), rect,
                decoupled_decay(v[lr], v[weight_decay], dec), rectified, dec};
    }

    template <class T, bool RECT, bool CWD, bool DEC>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, std::size_t n,
                     DecayedGrad<T, CWD, DEC> grad, Moments<T> mom, T eps, T lr, T bc1, T bc2_sqrt, T rect) {
        for (std::size_t i = 0; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            step_moments(pi, g[i], mi, vi, grad, mom);
            m[i] = mi;
            v[i] = vi;
            T x = (mi / bc1) * lr;
            if (RECT) x = (x * ((T(1) / (sqrt_(vi) + eps)) * bc2_sqrt)) * rect;
            p[i] = pi - x;
        }
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.rectified, [&](auto rectified) {
            with_weight_decay(s.weight_decay, s.decoupled, [&](auto cwd, auto dec) {
                constexpr bool R = decltype(rectified)::value, C = decltype(cwd)::value, D = decltype(dec)::value;
                loop<T, R, C, D>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                                 operand<T>(seg, 3) + lo, hi - lo, DecayedGrad<T, C, D>(gt, s.weight_decay, s.decay),
                                 Moments<T>(s.beta1, s.beta2), T(s.eps), T(s.lr), T(s.bc1), T(s.bc2_sqrt), T(s.rect));
            });
        });
    }
};
