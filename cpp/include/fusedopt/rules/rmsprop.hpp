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

    // One element's update, T: an element, or a vector of them (vector_element). buf is read and
    // written with momentum, gavg when centered.
    template <bool WD, bool MOM, bool CENTERED, class T>
    static void element(T& p, T g, T& sq, T& buf, T& gavg, const GradIn<T>& gin, T wd, T alpha, T one_minus_alpha,
                        const Lerp<T>& avg_lerp, T eps, T mom, T nlr) {
        T d = gin(g);
        if (WD) d = fmadd(p, wd, d);
        sq = fmadd(one_minus_alpha * d, d, sq * alpha);
        T avg;
        if (CENTERED) {
            gavg = avg_lerp(gavg, d);
            avg = sqrt_(fmadd(-gavg, gavg, sq)) + eps;
        } else {
            avg = sqrt_(sq) + eps;
        }
        if (MOM) {
            buf = buf * mom + d / avg;
            p = fmadd(buf, nlr, p);
        } else {
            p = p + (nlr * d) / avg;
        }
    }

    template <class T, bool WD, bool MOM, bool CENTERED>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict buf, T* __restrict gavg,
                     std::size_t n, GradIn<T> gin, T wd, T alpha, T one_minus_alpha, Lerp<T> avg_lerp, T eps, T mom,
                     T nlr) {
        for (std::size_t i = 0; i < n; ++i) {
            T b = MOM ? buf[i] : T(0), ga = CENTERED ? gavg[i] : T(0);
            element<WD, MOM, CENTERED>(p[i], g[i], sq[i], b, ga, gin, wd, alpha, one_minus_alpha, avg_lerp, eps, mom,
                                       nlr);
            if (MOM) buf[i] = b;
            if (CENTERED) gavg[i] = ga;
        }
    }

    // 16-bit parameters or bfloat16 state: the same element function on vectors, in one loop
    // over the stored values (kernels/vector_storage.hpp), its state operands those in use:
    // square_avg, then momentum_buffer (momentum > 0), then grad_avg (centered).
    using vector_slots = SlotCounts<1, 2, 3>;
    static int vector_slot_count(const Scalars& s) { return 1 + (s.momentum > 0.0) + s.centered; }
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const Lerp<V> avg_lerp(1.0 - s.alpha);
        const V wd = splat<V>(s.weight_decay), alpha = splat<V>(s.alpha), one_minus_alpha = splat<V>(1.0 - s.alpha),
                eps = splat<V>(s.eps), mom = splat<V>(s.momentum), nlr = splat<V>(-s.lr);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.centered, [&](auto centered_on) {
                constexpr bool W = decltype(wd_on)::value, C = decltype(centered_on)::value, M = S - 1 - C > 0;
                const auto el = [&](V& p, V x, V& sq, V& buf, V& gavg) {
                    element<W, M, C>(p, x, sq, buf, gavg, gin, wd, alpha, one_minus_alpha, avg_lerp, eps, mom, nlr);
                };
                V unused{};
                if constexpr (S == 3)
                    run(el);
                else if constexpr (S == 1)
                    run([&](V& p, V x, V& sq) { el(p, x, sq, unused, unused); });
                else if constexpr (C)
                    run([&](V& p, V x, V& sq, V& gavg) { el(p, x, sq, unused, gavg); });
                else
                    run([&](V& p, V x, V& sq, V& buf) { el(p, x, sq, buf, unused); });
            });
        });
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
