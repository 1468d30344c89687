// LARS (You et al. 2017), as pytorch_optimizer's LARS computes it. Slot: momentum_buffer (when
// momentum > 0; starts at zero). For >= 2-D parameters: trust = tc*|p| / (|g| + wd*|p|) (1 where
// |p| or the denominator is not > 0), d = (g + wd*p) * trust; 0-d and 1-D ones (biases, norms)
// take plain SGD steps: d = g. Then buf = momentum*buf + (1 - dampening)*d; d = d + momentum*buf
// (nesterov) or buf; p += -lr*d. The norms are one reduction pass.

struct lars_rule : RuleBase {
    static constexpr const char* name = "lars";
    enum Value { lr, weight_decay, momentum, dampening, trust_coefficient, nesterov, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), number("weight_decay"), number("momentum"),
                                           number("dampening"), number("trust_coefficient"), flag("nesterov"),
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {{"momentum_buffer"}};
    static constexpr bool has_step = false;
    static unsigned slots_used(const double* v) { return v[momentum] > 0.0 ? 1u : 0u; }

    struct Scalars {
        double lr, weight_decay, momentum, dampening, trust_coefficient;
        bool nesterov;
    };
    static Scalars derive(const double* v, const Counters&) {
        return {v[lr], v[weight_decay], v[momentum], v[dampening], v[trust_coefficient], v[nesterov] != 0.0};
    }

    static bool scaled(const Segment& seg) { return seg.ndim > 1; }

    // ---- the reduction: |p| and |g| of >= 2-D arrays ----
    static constexpr int reduce_passes = 1;
    static std::size_t array_values(const Segment&) { return 1; }  // the trust ratio
    static bool whole_rows(int, const Segment&) { return false; }
    static std::size_t partial_width(int, const Segment& seg, std::size_t) { return scaled(seg) ? 2 : 0; }

    template <class T>
    static void reduce(int, const Segment& seg, std::size_t lo, std::size_t hi, const Scalars&, const double*,
                       const GradTransform& gt, double* out) {
        const GradIn<T> gin(gt);
        const T* g = operand<T>(seg, 1) + lo;
        Lanes wp;
        wp.add_squares(operand<T>(seg, 0) + lo, hi - lo);
        out[0] = wp.total();
        out[1] = sum_squares_of<T>(hi - lo, [&](std::size_t i, T* o, std::size_t n) {
            for (std::size_t j = 0; j < n; ++j) o[j] = gin(g[i + j]);
        });
    }

    template <class T>
    static void finish(int, const Segment&, const Scalars& s, double* partials, std::size_t width,
                       const std::size_t*, std::size_t chunks, double* values) {
        double sp = 0.0, sg = 0.0;
        for (std::size_t k = 0; k < chunks; ++k) {
            sp += partials[k * width];
            sg += partials[k * width + 1];
        }
        // In the dtype, as pytorch_optimizer's tensors.
        const T pn = T(__builtin_sqrt(sp)), gn = T(__builtin_sqrt(sg));
        const T den = gn + T(s.weight_decay) * pn;
        values[0] = double(pn > T(0) && den > T(0) ? (T(s.trust_coefficient) * pn) / den : T(1));
    }

    // One element's update, T: an element, or a vector of them (vector_element); buf is read
    // and written only with MOM.
    template <bool SCALED, bool MOM, bool NESTEROV, class T>
    static void element(T& p, T g, T& buf, const GradIn<T>& gin, T wd, T trust, T mom, T keep, T nlr) {
        T d = gin(g);
        if (SCALED) d = fmadd(p, wd, d) * trust;
        if (MOM) {
            buf = fmadd(d, keep, buf * mom);
            d = NESTEROV ? fmadd(buf, mom, d) : buf;
        }
        p = fmadd(d, nlr, p);
    }

    template <class T, bool SCALED, bool MOM, bool NESTEROV>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict buf, std::size_t n, GradIn<T> gin, T wd,
                     T trust, T mom, T keep, T nlr) {
        for (std::size_t i = 0; i < n; ++i) {
            T b = MOM ? buf[i] : T(0);
            element<SCALED, MOM, NESTEROV>(p[i], g[i], b, gin, wd, trust, mom, keep, nlr);
            if (MOM) buf[i] = b;
        }
    }

    // 16-bit parameters: the same element function on vectors (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<0, 1>;
    static int vector_slot_count(const Scalars& s) { return s.momentum > 0.0; }
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const Segment& seg, const double* values, const GradTransform& gt,
                               Run&& run) {
        const GradIn<V> gin(gt);
        const V wd = splat<V>(s.weight_decay), trust = splat<V>(values[0]), mom = splat<V>(s.momentum),
                keep = splat<V>(1.0 - s.dampening), nlr = splat<V>(-s.lr);
        with_flag(scaled(seg), [&](auto sc) {
            constexpr bool SC = decltype(sc)::value;
            if constexpr (S == 0) {
                run([&](V& p, V x) {
                    V unused{};
                    element<SC, false, false>(p, x, unused, gin, wd, trust, mom, keep, nlr);
                });
            } else {
                with_flag(s.nesterov, [&](auto nv) {
                    run([&](V& p, V x, V& b) {
                        element<SC, true, decltype(nv)::value>(p, x, b, gin, wd, trust, mom, keep, nlr);
                    });
                });
            }
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const double* values,
                       const GradTransform& gt) {
        const GradIn<T> gin(gt);
        const T wd = T(s.weight_decay), trust = T(values[0]), mom = T(s.momentum), keep = T(1.0 - s.dampening);
        const T nlr = T(-s.lr);
        T* p = operand<T>(seg, 0) + lo;
        const T* g = operand<T>(seg, 1) + lo;
        T* buf = s.momentum > 0.0 ? operand<T>(seg, 2) + lo : nullptr;
        with_flag(scaled(seg), [&](auto sc) {
            with_flag(s.momentum > 0.0, [&](auto m) {
                with_flag(s.nesterov, [&](auto nv) {
                    constexpr bool S = decltype(sc)::value, M = decltype(m)::value, N = decltype(nv)::value;
                    loop<T, S, M, N>(p, g, buf, hi - lo, gin, wd, trust, mom, keep, nlr);
                });
            });
        });
    }
};
