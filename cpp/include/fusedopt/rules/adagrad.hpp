// torch.optim.Adagrad. Slot: sum (created with the parameter group, filled with
// initial_accumulator_value, by the Python class, as torch does).

struct adagrad_rule : RuleBase {
    static constexpr const char* name = "adagrad";
    enum Value { lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), number("lr_decay"), number("weight_decay"),
                                           number("initial_accumulator_value"), number("eps"), flag("maximize")};
    static constexpr SlotSpec slots[] = {nonnegative_slot("sum")};
    static unsigned slots_used(const double*) { return 1u; }
    static constexpr SparseGrads sparse_grads = SparseGrads::accepted;
    static HyperError sparse_refusal(const double* v) {
        if (v[weight_decay] != 0.0) return {"weight_decay", "must be 0 with row-sparse gradients (as in torch)"};
        return {};
    }

    struct Scalars {
        double clr;  // lr / (1 + (t - 1) * lr_decay)
        double weight_decay, eps;
        bool sparse;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        return {v[lr] / (1 + (t - 1) * v[lr_decay]), v[weight_decay], v[eps], c.sparse};
    }

    // torch's sparse path (_single_tensor_adagrad): sum += g^2 (the square rounded first), then
    // p += -clr * (g / (sqrt(sum) + eps)) as one fused add.
    template <class T>
    static void sparse_loop(T* __restrict p, const T* __restrict g, T* __restrict sum, std::size_t n, GradIn<T> gin,
                            T eps, T nclr) {
        for (std::size_t i = 0; i < n; ++i) {
            const T d = gin(g[i]);
            const T acc = sum[i] + d * d;
            sum[i] = acc;
            p[i] = fmadd(d / (sqrt_(acc) + eps), nclr, p[i]);
        }
    }

    // One element of the dense step, T: an element, or a vector of them (vector_element).
    template <bool WD, class T>
    static void element(T& p, T g, T& sum, const GradIn<T>& gin, T wd, T eps, T nclr) {
        T d = gin(g);
        if (WD) d = fmadd(p, wd, d);
        sum = fmadd(d, d, sum);
        p = p + (nclr * d) / (sqrt_(sum) + eps);
    }

    template <class T, bool WD>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict sum, std::size_t n, GradIn<T> gin, T wd,
                     T eps, T nclr) {
        for (std::size_t i = 0; i < n; ++i) element<WD>(p[i], g[i], sum[i], gin, wd, eps, nclr);
    }

    // 16-bit parameters or a bfloat16 sum, dense gradients: the same element function on
    // vectors, in one loop over the stored values (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<1>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        if (s.sparse) return;
        const GradIn<V> gin(gt);
        const V wd = splat<V>(s.weight_decay), eps = splat<V>(s.eps), nclr = splat<V>(-s.clr);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            run([&](V& p, V x, V& sum) { element<decltype(wd_on)::value>(p, x, sum, gin, wd, eps, nclr); });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        if (s.sparse)
            return sparse_loop<T>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, hi - lo,
                                  GradIn<T>(gt), T(s.eps), T(-s.clr));
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            loop<T, decltype(wd_on)::value>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                                            hi - lo, GradIn<T>(gt), T(s.weight_decay), T(s.eps), T(-s.clr));
        });
    }
};
