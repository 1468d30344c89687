// Schedule-Free AdamW (Defazio et al. 2024), as schedulefree's AdamWScheduleFree. Slots: z,
// exp_avg_sq. Counters: 'step' (k), 'lr_max', 'weight_sum' (kernels/schedule_free.hpp). Per element:
//   v = beta2*v + (1 - beta2)*g*g;  d = g / (sqrt(v / (1 - beta2^(k+1))) + eps) + wd*y;
//   y = lerp(y, z, ckp1);  y += d*lr*(beta1*(1 - ckp1) - 1);  z -= lr*d

struct adamw_schedule_free_rule : RuleBase {
    static constexpr const char* name = "adamw_schedule_free";
    enum Value { lr, beta1, beta2, eps, weight_decay, warmup_steps, r, weight_lr_power, value_count };
    static constexpr int maximize = -1;
    static constexpr HyperSpec hypers[] = {number("lr"), betas_pair(), number("eps"), number("weight_decay"),
                                           number("warmup_steps"), {"r", HyperKind::number},
                                           {"weight_lr_power", HyperKind::number}};
    static constexpr SlotSpec slots[] = {{"z"}, {"exp_avg_sq"}};
    static constexpr const char* extra_counter = "lr_max";
    static constexpr double extra_initial = -1.0;
    static constexpr const char* extra2_counter = "weight_sum";
    static constexpr double extra2_initial = 0.0;
    static unsigned slots_used(const double*) { return 3u; }
    static HyperError check(const double* v) {
        if (!(v[beta1] > 0.0)) return {"betas", "beta1 must be in (0, 1): eval() divides by it"};
        return {};
    }

    struct Scalars {
        double ckp1, y_coef, lr, weight_decay, beta2, bc2, eps;
        bool fresh;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const ScheduleFreeWeights w = schedule_free_weights(v[lr], v[warmup_steps], v[r], v[weight_lr_power], c);
        const double bc2 = 1 - python_pow(v[beta2], double(c.step + 1));
        return {w.ckp1, w.lr * (v[beta1] * (1 - w.ckp1) - 1), w.lr, v[weight_decay], v[beta2], bc2, v[eps], c.fresh};
    }
    static double advance_extra(const double* v, const Counters& c) {
        return schedule_free_weights(v[lr], v[warmup_steps], v[r], v[weight_lr_power], c).lr_max;
    }
    static double advance_extra2(const double* v, const Counters& c) {
        return c.extra2 + schedule_free_weights(v[lr], v[warmup_steps], v[r], v[weight_lr_power], c).weight;
    }

    // One element's update, T: an element, or a vector of them (vector_element); FRESH: z is not
    // read, it starts as y; SCALED: v / bc2 (DivideByConstant), until bc2 is 1 in T (divides_by).
    template <bool WD, bool FRESH, bool SCALED, class T, class Div>
    static void element(T& y, T g, T& z, T& v, const GradIn<T>& gin, const Moments<T>& mom, const Div& bc2, T eps,
                        T wd, const ScheduleFreeStep<T>& sf) {
        if (FRESH) z = y;
        const T gi = gin(g);
        v = mom.second(v, gi);
        T d = gi / (sqrt_(SCALED ? bc2(v) : v) + eps);
        if (WD) d = fmadd(y, wd, d);
        sf(y, z, d);
    }

    template <class T, bool WD, bool FRESH, bool SCALED>
    static void loop(T* __restrict y, const T* __restrict g, T* __restrict z, T* __restrict v, std::size_t n,
                     GradIn<T> gin, Moments<T> mom, DivideByConstant<T> bc2, T eps, T wd, ScheduleFreeStep<T> sf) {
        for (std::size_t i = 0; i < n; ++i) {
            T yi = y[i], zi = z[i], vi = v[i];
            element<WD, FRESH, SCALED>(yi, g[i], zi, vi, gin, mom, bc2, eps, wd, sf);
            y[i] = yi;
            z[i] = zi;
            v[i] = vi;
        }
    }

    // 16-bit parameters: the same element function on vectors (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const ScheduleFreeStep<V> sf(s.ckp1, s.y_coef, s.lr);
        const Moments<V> mom(0.0, s.beta2);
        const DivideByConstant<V, spare_ports<Run>()> bc2(s.bc2);
        const V eps = splat<V>(s.eps), wd = splat<V>(s.weight_decay);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.fresh, [&](auto fresh) {
                with_flag(divides_by<V>(s.bc2), [&](auto sc) {
                    constexpr bool W = decltype(wd_on)::value, F = decltype(fresh)::value, D = decltype(sc)::value;
                    run([&](V& y, V x, V& z, V& v) { element<W, F, D>(y, x, z, v, gin, mom, bc2, eps, wd, sf); });
                });
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        const ScheduleFreeStep<T> sf(s.ckp1, s.y_coef, s.lr);
        const Moments<T> mom(0.0, s.beta2);
        with_flag(s.weight_decay != 0.0, [&](auto wd) {
            with_flag(s.fresh, [&](auto fresh) {
                constexpr bool W = decltype(wd)::value, F = decltype(fresh)::value;
                const auto run = divides_by<T>(s.bc2) ? &loop<T, W, F, true> : &loop<T, W, F, false>;
                run(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, operand<T>(seg, 3) + lo,
                    hi - lo, GradIn<T>(gt), mom, DivideByConstant<T>(s.bc2), T(s.eps), T(s.weight_decay), sf);
            });
        });
    }
};
