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

    template <class T, bool WD>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict acc, std::size_t n,
                     GradIn<T> gin, T wd, T rho, T one_minus_rho, T eps, T nlr) {
        for (std::size_t i = 0; i < n; ++i) {
            T d = gin(g[i]);
            if (WD) d = fmadd(p[i], wd, d);
            const T s = fmadd(one_minus_rho * d, d, sq[i] * rho);  // mul_(rho).addcmul_(d, d, value=1-rho)
            sq[i] = s;
            const T delta = (sqrt_(acc[i] + eps) / sqrt_(s + eps)) * d;
            acc[i] = fmadd(one_minus_rho * delta, delta, acc[i] * rho);
            p[i] = fmadd(delta, nlr, p[i]);
        }
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
