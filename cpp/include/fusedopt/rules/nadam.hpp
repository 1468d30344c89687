// torch.optim.NAdam, with its momentum schedule. Slots: exp_avg, exp_avg_sq.
// Counter: mu_product, kept rounded to float32 as torch's float32 tensor is.

struct nadam_rule : RuleBase {
    static constexpr const char* name = "nadam";
    enum Value { lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("eps"), number("weight_decay"),
                                           number("momentum_decay"), flag("decoupled_weight_decay"),
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {signed_slot("exp_avg"), nonnegative_slot("exp_avg_sq")};
    static constexpr const char* extra_counter = "mu_product";
    static constexpr double extra_initial = 1.0;
    static unsigned slots_used(const double*) { return 3u; }
    // mu_t tends to beta1 as t grows; a beta1 that rounds to 1 in float32 makes the float32
    // mu_product reach 1 and the step divide by 1 - mu_product = 0.
    static HyperError check(const double* v) {
        if (v[momentum_decay] > 0.0 && float(v[beta1]) >= 1.0f)
            return {"betas[0]", "rounds to 1 in float32, where NAdam keeps mu_product: 1 - mu_product "
                                "would reach 0 (use beta1 <= 1 - 2**-24, or momentum_decay=0)"};
        return {};
    }

    // mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
    static double mu(const double* v, double t) {
        return v[beta1] * (1.0 - 0.5 * python_pow(0.96, t * v[momentum_decay]));
    }
    static double next_mu_product(const double* v, const Counters& c) {
        return double(float(c.extra) * float(mu(v, double(c.step + 1))));
    }
    static double advance_extra(const double* v, const Counters& c) { return next_mu_product(v, c); }

    struct Scalars {
        double beta1, beta2, eps, weight_decay;
        double bc2;        // 1 - beta2^t
        double grad_coef;  // -lr*(1-mu_t)/(1-mu_product)
        double avg_coef;   // -lr*mu_{t+1}/(1-mu_product*mu_{t+1})
        double decay;
        bool decoupled;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        const double mu_t = mu(v, t), mu_next = mu(v, t + 1), mu_product = next_mu_product(v, c);
        const bool dec = v[decoupled] != 0.0;
        return {v[beta1], v[beta2], v[eps], v[weight_decay], 1 - python_pow(v[beta2], t),
                -v[lr] * (1.0 - mu_t) / (1.0 - mu_product), (-v[lr] * mu_next) / (1.0 - mu_product * mu_next),
                decoupled_decay(v[lr], v[weight_decay], dec), dec};
    }

    // The parameter after the moments, T: an element, or a vector of them (vector_element);
    // SCALED: v / bc2 (DivideByConstant), until bc2 is 1 in T (divides_by).
    template <bool SCALED, class T, class Div>
    static T stepped(T p, T d, T m, T v, const Div& bc2, T eps, T grad_coef, T avg_coef) {
        const T denom = sqrt_(SCALED ? bc2(v) : v) + eps;
        p = p + (grad_coef * d) / denom;
        return p + (avg_coef * m) / denom;
    }

    template <class T, bool CWD, bool DEC, bool SCALED>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, std::size_t n,
                     DecayedGrad<T, CWD, DEC> grad, Moments<T> mom, DivideByConstant<T> bc2, T eps, T grad_coef,
                     T avg_coef) {
        for (std::size_t i = 0; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            const T d = step_moments(pi, g[i], mi, vi, grad, mom);
            m[i] = mi;
            v[i] = vi;
            p[i] = stepped<SCALED>(pi, d, mi, vi, bc2, eps, grad_coef, avg_coef);
        }
    }

    // 16-bit parameters or bfloat16 moments: the same functions on vectors, in one loop over the
    // stored values (kernels/moments_vector.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        moments_vector_element<V, S>(s, gt, run, [&](auto&& run_step) {
            const DivideByConstant<V, spare_ports<Run>()> bc2(s.bc2);
            const V eps = splat<V>(s.eps), grad_coef = splat<V>(s.grad_coef), avg_coef = splat<V>(s.avg_coef);
            with_flag(divides_by<V>(s.bc2), [&](auto sc) {
                run_step([&](V p, V d, V m, V v) {
                    return stepped<decltype(sc)::value>(p, d, m, v, bc2, eps, grad_coef, avg_coef);
                });
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_weight_decay(s.weight_decay, s.decoupled, [&](auto cwd, auto dec) {
            constexpr bool C = decltype(cwd)::value, D = decltype(dec)::value;
            const auto run = divides_by<T>(s.bc2) ? &loop<T, C, D, true> : &loop<T, C, D, false>;
            run(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, operand<T>(seg, 3) + lo,
                hi - lo, DecayedGrad<T, C, D>(gt, s.weight_decay, s.decay), Moments<T>(s.beta1, s.beta2),
                DivideByConstant<T>(s.bc2), T(s.eps), T(s.grad_coef), T(s.avg_coef));
        });
    }
};
