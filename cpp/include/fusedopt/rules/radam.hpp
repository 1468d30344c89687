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
        const double bc1 = 1 - python_pow(v[beta1], t), bc2 = 1 - python_pow(v[beta2], t);
        const double rho_inf = 2 / (1 - v[beta2]) - 1;
        const double rho_t = rho_inf - 2 * t * python_pow(v[beta2], t) / bc2;
        const bool rectified = rho_t > 5.0;
        const double rect =
            rectified ? python_pow((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.5)
                      : __builtin_nan("");
        const bool dec = v[decoupled] != 0.0;
        return {v[beta1], v[beta2], v[eps], v[weight_decay], v[lr], bc1, python_pow(bc2, 0.5), rect,
                decoupled_decay(v[lr], v[weight_decay], dec), rectified, dec};
    }

    // The parameter after the moments, T: an element, or a vector of them (vector_element);
    // SCALED: m / bc1 (DivideByConstant), until bc1 is 1 in T (divides_by).
    template <bool RECT, bool SCALED, class T, class Div>
    static T stepped(T p, T m, T v, T eps, T lr, const Div& bc1, T bc2_sqrt, T rect) {
        T x = (SCALED ? bc1(m) : m) * lr;
        if (RECT) x = (x * ((splat<T>(1.0) / (sqrt_(v) + eps)) * bc2_sqrt)) * rect;
        return p - x;
    }

    template <class T, bool RECT, bool SCALED, bool CWD, bool DEC>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, std::size_t n,
                     DecayedGrad<T, CWD, DEC> grad, Moments<T> mom, T eps, T lr, DivideByConstant<T> bc1,
                     T bc2_sqrt, T rect) {
        for (std::size_t i = 0; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            step_moments(pi, g[i], mi, vi, grad, mom);
            m[i] = mi;
            v[i] = vi;
            p[i] = stepped<RECT, SCALED>(pi, mi, vi, eps, lr, bc1, bc2_sqrt, rect);
        }
    }

    // 16-bit parameters or bfloat16 moments: the same functions on vectors, in one loop over the
    // stored values (kernels/moments_vector.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        moments_vector_element<V, S>(s, gt, run, [&](auto&& run_step) {
            const V eps = splat<V>(s.eps), lr = splat<V>(s.lr), bc2_sqrt = splat<V>(s.bc2_sqrt),
                    rect = splat<V>(s.rect);
            const DivideByConstant<V, spare_ports<Run>()> bc1(s.bc1);
            with_flag(s.rectified, [&](auto rectified) {
                with_flag(divides_by<V>(s.bc1), [&](auto sc) {
                    run_step([&](V p, V, V m, V v) {
                        return stepped<decltype(rectified)::value, decltype(sc)::value>(p, m, v, eps, lr, bc1, bc2_sqrt,
                                                                                        rect);
                    });
                });
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.rectified, [&](auto rectified) {
            with_weight_decay(s.weight_decay, s.decoupled, [&](auto cwd, auto dec) {
                constexpr bool R = decltype(rectified)::value, C = decltype(cwd)::value, D = decltype(dec)::value;
                const auto run = divides_by<T>(s.bc1) ? &loop<T, R, true, C, D> : &loop<T, R, false, C, D>;
                run(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, operand<T>(seg, 3) + lo,
                    hi - lo, DecayedGrad<T, C, D>(gt, s.weight_decay, s.decay), Moments<T>(s.beta1, s.beta2), T(s.eps),
                    T(s.lr), DivideByConstant<T>(s.bc1), T(s.bc2_sqrt), T(s.rect));
            });
        });
    }
};
