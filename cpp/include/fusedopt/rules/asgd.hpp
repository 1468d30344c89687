// torch.optim.ASGD (Polyak & Juditsky 1992; the step-size schedule of Bottou 2012). Slot: ax.
// Counters: eta and mu, which torch keeps as float32 0-d tensors (its default scalar dtype,
// whatever the parameter's), each computed in float64 at the end of a step from that step's
// hyperparameters and rounded to float32; the first step uses eta = lr, mu = 1.
//   d = g + wd*p; p = p*(1 - lambd*eta) - eta*d;
//   ax = ax + (p - ax)*mu if mu != 1, else ax = p;
//   eta = lr / (1 + lambd*lr*t)^alpha; mu = 1 / max(1, t - t0)   (t: this step's count)

struct asgd_rule : RuleBase {
    static constexpr const char* name = "asgd";
    enum Value { lr, lambd, alpha, t0, weight_decay, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), number("lambd"), number("alpha"), number("t0"),
                                           number("weight_decay"), flag("maximize")};
    static constexpr SlotSpec slots[] = {{"ax"}};
    static constexpr const char* extra_counter = "eta";
    static constexpr const char* extra2_counter = "mu";
    static constexpr double extra2_initial = 1.0;
    static unsigned slots_used(const double*) { return 1u; }

    static double advance_extra(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        return double(float(v[lr] / python_pow(1 + v[lambd] * v[lr] * t, v[alpha])));
    }
    static double advance_extra2(const double* v, const Counters& c) {
        const double excess = double(c.step + 1) - v[t0];
        return double(float(1 / (excess > 1 ? excess : 1.0)));  // Python's max(1, t - t0)
    }

    struct Scalars {
        double weight_decay;
        double decay;    // 1 - lambd*eta
        double neg_eta;  // -eta
        double mu;
        bool average;    // mu != 1 (else ax = p)
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double eta = c.fresh ? double(float(v[lr])) : c.extra, mu = c.fresh ? 1.0 : c.extra2;
        return {v[weight_decay], 1 - v[lambd] * eta, -eta, mu, mu != 1.0};
    }

    // One element's update, T: an element, or a vector of them (vector_element); ax is read only
    // when AVERAGE.
    template <bool WD, bool AVERAGE, class T>
    static void element(T& p, T g, T& ax, const GradIn<T>& gin, T wd, T decay, T neg_eta, T mu) {
        T d = gin(g);
        if (WD) d = fmadd(p, wd, d);
        p = fmadd(d, neg_eta, p * decay);  // mul_(1 - lambd*eta).add_(d, alpha=-eta)
        ax = AVERAGE ? ax + (p - ax) * mu : p;
    }

    template <class T, bool WD, bool AVERAGE>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict ax, std::size_t n, GradIn<T> gin, T wd,
                     T decay, T neg_eta, T mu) {
        const auto one = [&](std::size_t i) {
            T pi = p[i], ai = ax[i];
            element<WD, AVERAGE>(pi, g[i], ai, gin, wd, decay, neg_eta, mu);
            p[i] = pi;
            ax[i] = ai;
        };
        if constexpr (AVERAGE) {
            for (std::size_t i = 0; i < n; ++i) one(i);
        } else {
            loop_writing_only(ax, n, one);  // ax = p
        }
    }

    // 16-bit parameters: the same element function on vectors (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<1>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const V wd = splat<V>(s.weight_decay), decay = splat<V>(s.decay), neg_eta = splat<V>(s.neg_eta),
                mu = splat<V>(s.mu);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.average, [&](auto average) {
                constexpr bool W = decltype(wd_on)::value, A = decltype(average)::value;
                run([&](V& p, V x, V& ax) { element<W, A>(p, x, ax, gin, wd, decay, neg_eta, mu); });
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.average, [&](auto average) {
                loop<T, decltype(wd_on)::value, decltype(average)::value>(
                    operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, hi - lo, GradIn<T>(gt),
                    T(s.weight_decay), T(s.decay), T(s.neg_eta), T(s.mu));
            });
        });
    }
};
