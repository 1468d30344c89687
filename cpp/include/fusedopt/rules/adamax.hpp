// torch.optim.Adamax. Slots: exp_avg, exp_inf.

struct adamax_rule : RuleBase {
    static constexpr const char* name = "adamax";
    enum Value { lr, beta1, beta2, eps, weight_decay, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("eps"), number("weight_decay"),
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {signed_slot("exp_avg"), nonnegative_slot("exp_inf")};
    static unsigned slots_used(const double*) { return 3u; }

    struct Scalars {
        double beta1, beta2, eps, weight_decay;
        double clr;  // lr / (1 - beta1^t)
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        return {v[beta1], v[beta2], v[eps], v[weight_decay], v[lr] / (1 - python_pow(v[beta1], t))};
    }

    // One element's update, T: an element, or a vector of them (vector_element).
    template <bool CWD, class T>
    static void element(T& p, T g, T& m, T& u, const DecayedGrad<T, CWD, false>& grad, const Lerp<T>& m_lerp, T beta2,
                        T eps, T neg_clr) {
        const T d = grad(p, g);
        m = m_lerp(m, d);
        u = max_nan(u * beta2, abs_(d) + eps);
        p = p + (neg_clr * m) / u;
    }

    template <class T, bool CWD>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict u, std::size_t n,
                     DecayedGrad<T, CWD, false> grad, Lerp<T> m_lerp, T beta2, T eps, T neg_clr) {
        for (std::size_t i = 0; i < n; ++i) element(p[i], g[i], m[i], u[i], grad, m_lerp, beta2, eps, neg_clr);
    }

    // 16-bit parameters or bfloat16 state: the same element function on vectors, in one loop
    // over the stored values (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const Lerp<V> m_lerp(1.0 - s.beta1);
        const V beta2 = splat<V>(s.beta2), eps = splat<V>(s.eps), neg_clr = splat<V>(-s.clr);
        with_flag(s.weight_decay != 0.0, [&](auto cwd) {
            const DecayedGrad<V, decltype(cwd)::value, false> grad(gt, s.weight_decay, 1.0);
            run([&](V& p, V x, V& m, V& u) { element(p, x, m, u, grad, m_lerp, beta2, eps, neg_clr); });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.weight_decay != 0.0, [&](auto cwd) {
            constexpr bool C = decltype(cwd)::value;
            loop<T, C>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, operand<T>(seg, 3) + lo,
                       hi - lo, DecayedGrad<T, C, false>(gt, s.weight_decay, 1.0), Lerp<T>(1.0 - s.beta1), T(s.beta2),
                       T(s.eps), T(-s.clr));
        });
    }
};
