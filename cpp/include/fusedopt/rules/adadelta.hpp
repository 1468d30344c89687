// torch.optim.Adadelta (Zeiler 2012). Slots: square_avg, acc_delta.
// d = g + wd*p; sq = rho*sq + (1-rho)*d*d; delta = sqrt(acc + eps) / sqrt(sq + eps) * d;
// acc = rho*acc + (1-rho)*delta*delta; p -= lr*delta. eps inside both sqrts, as torch.

struct adadelta_rule : RuleBase {
    static constexpr const char* name = "adadelta";
    enum Value { lr, rho, eps, weight_decay, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), number("rho"), number("eps"), number("weight_decay"),
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {nonnegative_slot("square_avg"), nonnegative_slot("acc_delta")};
    static unsigned slots_used(const double*) { return 3u; }
    // torch allows rho = 1 (the averages then never move): [0, 1], not unit_interval's [0, 1).
    static HyperError check(const double* v) {
        if (!(v[rho] <= 1.0)) return {"rho", "must be in [0, 1]"};
        return {};
    }

    struct Scalars {
        double lr, rho, eps, weight_decay;
    };
    static Scalars derive(const double* v, const Counters&) { return {v[lr], v[rho], v[eps], v[weight_decay]}; }

    // One element's update, T: an element, or a vector of them (vector_element).
    template <bool WD, class T>
    static void element(T& p, T g, T& sq, T& acc, const GradIn<T>& gin, T wd, T rho, T one_minus_rho, T eps, T nlr) {
        T d = gin(g);
        if (WD) d = fmadd(p, wd, d);
        sq = fmadd(one_minus_rho * d, d, sq * rho);  // mul_(rho).addcmul_(d, d, value=1-rho)
        const T delta = (sqrt_(acc + eps) / sqrt_(sq + eps)) * d;
        acc = fmadd(one_minus_rho * delta, delta, acc * rho);
        p = fmadd(delta, nlr, p);
    }

    template <class T, bool WD>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict acc, std::size_t n,
                     GradIn<T> gin, T wd, T rho, T one_minus_rho, T eps, T nlr) {
        for (std::size_t i = 0; i < n; ++i)
            element<WD>(p[i], g[i], sq[i], acc[i], gin, wd, rho, one_minus_rho, eps, nlr);
    }

    // 16-bit parameters or bfloat16 state: the same element function on vectors, in one loop
    // over the stored values (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const V wd = splat<V>(s.weight_decay), rho = splat<V>(s.rho), one_minus_rho = splat<V>(1.0 - s.rho),
                eps = splat<V>(s.eps), nlr = splat<V>(-s.lr);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            run([&](V& p, V x, V& sq, V& acc) {
                element<decltype(wd_on)::value>(p, x, sq, acc, gin, wd, rho, one_minus_rho, eps, nlr);
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            loop<T, decltype(wd_on)::value>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                                            operand<T>(seg, 3) + lo, hi - lo, GradIn<T>(gt), T(s.weight_decay),
                                            T(s.rho), T(1.0 - s.rho), T(s.eps), T(-s.lr));
        });
    }
};
