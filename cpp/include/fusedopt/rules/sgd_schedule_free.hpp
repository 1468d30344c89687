// Schedule-Free SGD (Defazio et al. 2024), as schedulefree's SGDScheduleFree. Slot: z.
// Counters: 'step' (k), 'lr_max', 'weight_sum' (kernels/schedule_free.hpp). Per element:
//   d = g + wd*y;  y = lerp(y, z, ckp1);  y += d*lr*(momentum*(1 - ckp1) - 1);  z -= lr*d

struct sgd_schedule_free_rule : RuleBase {
    static constexpr const char* name = "sgd_schedule_free";
    enum Value { lr, momentum, weight_decay, warmup_steps, r, weight_lr_power, value_count };
    static constexpr int maximize = -1;
    static constexpr HyperSpec hypers[] = {number("lr"), number("momentum"), number("weight_decay"),
                                           number("warmup_steps"), {"r", HyperKind::number},
                                           {"weight_lr_power", HyperKind::number}};
    static constexpr SlotSpec slots[] = {{"z"}};
    static constexpr const char* extra_counter = "lr_max";
    static constexpr double extra_initial = -1.0;
    static constexpr const char* extra2_counter = "weight_sum";
    static constexpr double extra2_initial = 0.0;
    static unsigned slots_used(const double*) { return 1u; }
    static HyperError check(const double* v) {
        if (!(v[momentum] > 0.0 && v[momentum] < 1.0)) return {"momentum", "must be in (0, 1)"};
        return {};
    }

    struct Scalars {
        double ckp1, y_coef, lr, weight_decay;
        bool fresh;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const ScheduleFreeWeights w = schedule_free_weights(v[lr], v[warmup_steps], v[r], v[weight_lr_power], c);
        return {w.ckp1, w.lr * (v[momentum] * (1 - w.ckp1) - 1), w.lr, v[weight_decay], c.fresh};
    }
    static double advance_extra(const double* v, const Counters& c) {
        return schedule_free_weights(v[lr], v[warmup_steps], v[r], v[weight_lr_power], c).lr_max;
    }
    static double advance_extra2(const double* v, const Counters& c) {
        return c.extra2 + schedule_free_weights(v[lr], v[warmup_steps], v[r], v[weight_lr_power], c).weight;
    }

    // One element's update, T: an element, or a vector of them (vector_element); FRESH: z is not
    // read, it starts as y.
    template <bool WD, bool FRESH, class T>
    static void element(T& y, T g, T& z, const GradIn<T>& gin, T wd, const ScheduleFreeStep<T>& sf) {
        if (FRESH) z = y;
        T d = gin(g);
        if (WD) d = fmadd(y, wd, d);
        sf(y, z, d);
    }

    template <class T, bool WD, bool FRESH>
    static void loop(T* __restrict y, const T* __restrict g, T* __restrict z, std::size_t n, GradIn<T> gin, T wd,
                     ScheduleFreeStep<T> sf) {
        for (std::size_t i = 0; i < n; ++i) {
            T yi = y[i], zi = z[i];
            element<WD, FRESH>(yi, g[i], zi, gin, wd, sf);
            y[i] = yi;
            z[i] = zi;
        }
    }

    // 16-bit parameters: the same element function on vectors (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<1>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const ScheduleFreeStep<V> sf(s.ckp1, s.y_coef, s.lr);
        const V wd = splat<V>(s.weight_decay);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.fresh, [&](auto fresh) {
                constexpr bool W = decltype(wd_on)::value, F = decltype(fresh)::value;
                run([&](V& y, V x, V& z) { element<W, F>(y, x, z, gin, wd, sf); });
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        const ScheduleFreeStep<T> sf(s.ckp1, s.y_coef, s.lr);
        with_flag(s.weight_decay != 0.0, [&](auto wd) {
            with_flag(s.fresh, [&](auto fresh) {
                loop<T, decltype(wd)::value, decltype(fresh)::value>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo,
                                                                     operand<T>(seg, 2) + lo, hi - lo, GradIn<T>(gt),
                                                                     T(s.weight_decay), sf);
            });
        });
    }
};
