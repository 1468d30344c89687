// Lion (Chen et al. 2023). Slot: exp_avg.
// c = lerp(m, g, 1-beta1); p = p*(1 - lr*wd) - lr*sign(c); m = lerp(m, g, 1-beta2).

struct lion_rule : RuleBase {
    static constexpr const char* name = "lion";
    enum Value { lr, beta1, beta2, weight_decay, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("weight_decay"), flag("maximize")};
    static constexpr SlotSpec slots[] = {signed_slot("exp_avg")};
    static unsigned slots_used(const double*) { return 1u; }

    struct Scalars {
        double lr, beta1, beta2;
        double decay;  // 1 - lr*weight_decay
    };
    static Scalars derive(const double* v, const Counters&) {
        return {v[lr], v[beta1], v[beta2], decoupled_decay(v[lr], v[weight_decay], true)};
    }

    // One element's update, T: an element, or a vector of them (vector_element).
    template <class T>
    static void element(T& p, T g, T& m, const GradIn<T>& gin, const Lerp<T>& c_lerp, const Lerp<T>& m_lerp, T decay,
                        T nlr) {
        const T d = gin(g);
        p = fmadd(sign_(c_lerp(m, d)), nlr, p * decay);
        m = m_lerp(m, d);
    }

    template <class T>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, std::size_t n, GradIn<T> gin,
                     Lerp<T> c_lerp, Lerp<T> m_lerp, T decay, T nlr) {
        for (std::size_t i = 0; i < n; ++i) element(p[i], g[i], m[i], gin, c_lerp, m_lerp, decay, nlr);
    }

    // 16-bit parameters or a bfloat16 exp_avg: the same element function on vectors, in one loop
    // over the stored values (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<1>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const Lerp<V> c_lerp(1.0 - s.beta1), m_lerp(1.0 - s.beta2);
        const V decay = splat<V>(s.decay), nlr = splat<V>(-s.lr);
        run([&](V& p, V x, V& m) { element(p, x, m, gin, c_lerp, m_lerp, decay, nlr); });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        loop<T>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, hi - lo, GradIn<T>(gt),
                Lerp<T>(1.0 - s.beta1), Lerp<T>(1.0 - s.beta2), T(s.decay), T(-s.lr));
    }
};
