// LAMB (You et al. 2020), as pytorch_optimizer's Lamb computes it. Slots: exp_avg, exp_avg_sq.
// m = beta1*m + beta3*g; v = beta2*v + (1-beta2)*g*g; p *= 1 - wd*lr (decoupled);
// u = m / (sqrt(v) + eps) (+ wd*p, coupled); trust = min(|p|, max_weight_norm) / (|u| + eps)
// (1 where either norm is 0, or with adam=True); p += -step_size*trust * u, step_size =
// lr / (1 - beta1^t) (lr with adam_debias). The norms are one reduction pass.

struct lamb_rule : RuleBase {
    static constexpr const char* name = "lamb";
    enum Value {
        lr, beta1, beta2, eps, weight_decay, weight_decouple, fixed_decay, grad_averaging, adam_debias, adam,
        max_weight_norm, maximize, value_count
    };
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("eps"), number("weight_decay"),
                                           flag("weight_decouple"), flag("fixed_decay"), flag("grad_averaging"),
                                           flag("adam_debias"), flag("adam"), number("max_weight_norm"),
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {{"exp_avg"}, {"exp_avg_sq"}};
    static unsigned slots_used(const double*) { return 3u; }

    struct Scalars {
        double beta1, beta2, beta3, eps, weight_decay, decay, neg_step, max_weight_norm;
        bool coupled, decoupled, adam;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const bool dec = v[weight_decouple] != 0.0 && v[weight_decay] != 0.0;
        const double step_size =
            v[adam_debias] != 0.0 ? v[lr] : v[lr] / (1.0 - python_pow(v[beta1], double(c.step + 1)));
        return {v[beta1],
                v[beta2],
                v[grad_averaging] != 0.0 ? 1.0 - v[beta1] : 1.0,
                v[eps],
                v[weight_decay],
                dec ? 1.0 - v[weight_decay] * (v[fixed_decay] != 0.0 ? 1.0 : v[lr]) : 1.0,
                -step_size,
                v[max_weight_norm],
                v[weight_decouple] == 0.0 && v[weight_decay] > 0.0,
                dec,
                v[adam] != 0.0};
    }

    // One element: the new moments and decayed parameter in place, the update direction returned.
    // T: an element, or a vector of them (vector_element).
    template <class T>
    struct Elem {
        GradIn<T> gin;
        T beta1, beta2, one_minus_beta2, beta3, eps, wd, decay;
        bool coupled, decoupled;
        Elem(const Scalars& s, const GradTransform& gt)
            : gin(gt), beta1(splat<T>(s.beta1)), beta2(splat<T>(s.beta2)), one_minus_beta2(splat<T>(1.0 - s.beta2)),
              beta3(splat<T>(s.beta3)), eps(splat<T>(s.eps)), wd(splat<T>(s.weight_decay)), decay(splat<T>(s.decay)),
              coupled(s.coupled), decoupled(s.decoupled) {}
        T operator()(T& p, T g, T& m, T& v) const {
            const T d = gin(g);
            m = fmadd(d, beta3, m * beta1);
            v = fmadd(one_minus_beta2 * d, d, v * beta2);
            if (decoupled) p = p * decay;
            T u = m / (sqrt_(v) + eps);
            if (coupled) u = fmadd(p, wd, u);
            return u;
        }
    };

    // ---- the reduction: |p| (after decoupled decay) and |u| per array ----
    static constexpr int reduce_passes = 1;
    static std::size_t array_values(const Segment&) { return 1; }  // the step's coefficient of u
    static bool whole_rows(int, const Segment&) { return false; }
    static std::size_t partial_width(int, const Segment&, std::size_t) { return 2; }

    template <class T>
    static void reduce(int, const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const double*,
                       const GradTransform& gt, double* out) {
        const Elem<T> e(s, gt);
        const T* p = operand<T>(seg, 0) + lo;
        const T* g = operand<T>(seg, 1) + lo;
        const T* m = operand<T>(seg, 2) + lo;
        const T* v = operand<T>(seg, 3) + lo;
        Lanes wp, wu;
        T pb[kLaneBlock], ub[kLaneBlock];
        for (std::size_t i = 0, n = hi - lo; i < n; i += kLaneBlock) {
            const std::size_t k = n - i < kLaneBlock ? n - i : kLaneBlock;
            for (std::size_t j = 0; j < k; ++j) {
                T pj = p[i + j], mj = m[i + j], vj = v[i + j];
                ub[j] = e(pj, g[i + j], mj, vj);
                pb[j] = pj;
            }
            wp.add_squares(pb, k);
            wu.add_squares(ub, k);
        }
        out[0] = wp.total();
        out[1] = wu.total();
    }

    template <class T>
    static void finish(int, const Segment&, const Scalars& s, double* partials, std::size_t width,
                       const std::size_t*, std::size_t chunks, double* values) {
        double sp = 0.0, su = 0.0;
        for (std::size_t k = 0; k < chunks; ++k) {
            sp += partials[k * width];
            su += partials[k * width + 1];
        }
        // In the dtype, as pytorch_optimizer's tensors: norm, clamp, pn + eps, the division.
        T wn = T(__builtin_sqrt(sp));
        const T top = T(s.max_weight_norm);
        wn = wn > top ? top : wn;  // NaN stays NaN (torch.clamp)
        const T pn = T(__builtin_sqrt(su));
        T trust = (wn == T(0) || pn == T(0)) ? T(1) : wn / (pn + T(s.eps));
        if (s.adam) trust = T(1);
        values[0] = double(T(s.neg_step) * trust);
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const double* values,
                       const GradTransform& gt) {
        const Elem<T> e(s, gt);
        const T alpha = T(values[0]);
        T* __restrict p = operand<T>(seg, 0) + lo;
        const T* __restrict g = operand<T>(seg, 1) + lo;
        T* __restrict m = operand<T>(seg, 2) + lo;
        T* __restrict v = operand<T>(seg, 3) + lo;
        for (std::size_t i = 0, n = hi - lo; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            const T u = e(pi, g[i], mi, vi);
            m[i] = mi;
            v[i] = vi;
            p[i] = fmadd(u, alpha, pi);
        }
    }

    // 16-bit parameters: the same element function on vectors (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const Segment&, const double* values, const GradTransform& gt,
                               Run&& run) {
        const Elem<V> e(s, gt);
        const V alpha = splat<V>(values[0]);
        run([&](V& p, V x, V& m, V& v) {
            const V u = e(p, x, m, v);  // (p decayed first)
            p = fmadd(u, alpha, p);
        });
    }
};
