// torch.optim.SGD, and the classic "lr inside the velocity" formulation. Slot: momentum_buffer
// (when momentum != 0, or classic). No step counter, as in torch.

struct sgd_rule : RuleBase {
    static constexpr const char* name = "sgd";
    enum Value { lr, momentum, dampening, weight_decay, nesterov, maximize, formulation, value_count };
    static constexpr const char* formulations[] = {"torch", "classic", nullptr};
    static constexpr HyperSpec hypers[] = {learning_rate(), number("momentum"), number("dampening"),
                                           number("weight_decay"), flag("nesterov"), flag("maximize"),
                                           {"formulation", HyperKind::choice, HyperCheck::none, formulations}};
    static constexpr SlotSpec slots[] = {signed_slot("momentum_buffer")};
    static constexpr bool has_step = false;
    static bool classic(const double* v) { return v[formulation] == 1.0; }
    static unsigned slots_used(const double* v) { return (v[momentum] != 0.0 || classic(v)) ? 1u : 0u; }
    static HyperError check(const double* v) {
        if (v[nesterov] != 0.0 && (v[momentum] <= 0.0 || v[dampening] != 0.0))
            return {"nesterov", "requires momentum > 0 and dampening == 0"};
        if (classic(v) && v[dampening] != 0.0) return {"dampening", "the classic formulation has no dampening"};
        return {};
    }
    // Row-sparse gradients as torch takes them: plain SGD only. torch refuses weight decay
    // (add(sparse, dense)); with momentum it keeps a sparse buffer that moves every row it has
    // ever touched, which is not a row-sparse step.
    static constexpr SparseGrads sparse_grads = SparseGrads::accepted;
    static HyperError sparse_refusal(const double* v) {
        if (v[weight_decay] != 0.0) return {"weight_decay", "must be 0 with row-sparse gradients (as in torch)"};
        if (v[momentum] != 0.0 || classic(v))
            return {"momentum", "must be 0 with row-sparse gradients (torch's sparse momentum buffer moves every row "
                                "it has touched); pass dense gradients for momentum"};
        return {};
    }

    struct Scalars {
        double lr, momentum, dampening, weight_decay;
        bool nesterov;
        bool first_step;  // torch: the buffer starts as a copy of the gradient (no dampening)
        bool classic;     // v = mu*v - lr*g; p += v  (lr inside the velocity, buffer starts at 0)
    };
    static Scalars derive(const double* v, const Counters& c) {
        return {v[lr], v[momentum], v[dampening], v[weight_decay], v[nesterov] != 0.0, c.fresh && !classic(v),
                classic(v)};
    }

    // One element's update, T: an element, or a vector of them (vector_element). torch: d = g (+
    // wd * p); buf = d on the first step, else mom * buf + (1 - dampening) * d; p -= lr * (buf,
    // or nesterov's d + mom * buf). Without momentum, buf is not read or written.
    template <bool WD, bool MOM, bool FIRST, bool NESTEROV, class T>
    static void torch_element(T& p, T g, T& buf, const GradIn<T>& gin, T wd, T mom, T keep, T nlr) {
        T d = gin(g);
        if (WD) d = fmadd(p, wd, d);
        if (MOM) {
            buf = FIRST ? d : fmadd(d, keep, buf * mom);
            d = NESTEROV ? fmadd(buf, mom, d) : buf;
        }
        p = fmadd(d, nlr, p);
    }
    // classic: v = mu*v - lr*g; p += v. Nesterov form: p += -mu*v_prev + (1+mu)*v.
    template <bool WD, bool NESTEROV, class T>
    static void classic_element(T& p, T g, T& v, const GradIn<T>& gin, T wd, T mom, T nlr) {
        T d = gin(g);
        if (WD) d = fmadd(p, wd, d);
        const T prev = v;
        v = fmadd(d, nlr, prev * mom);
        p = p + (NESTEROV ? fmadd(v, splat<T>(1.0) + mom, -mom * prev) : v);
    }

    template <class T, bool WD, bool MOM, bool FIRST, bool NESTEROV>
    static void torch_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, std::size_t n, GradIn<T> gin,
                           T wd, T mom, T keep, T nlr) {
        for (std::size_t i = 0; i < n; ++i) {
            T b = MOM && !FIRST ? buf[i] : T(0);
            torch_element<WD, MOM, FIRST, NESTEROV>(p[i], g[i], b, gin, wd, mom, keep, nlr);
            if (MOM) buf[i] = b;
        }
    }
    template <class T, bool WD, bool NESTEROV>
    static void classic_loop(T* __restrict p, const T* __restrict g, T* __restrict v, std::size_t n, GradIn<T> gin,
                             T wd, T mom, T nlr) {
        for (std::size_t i = 0; i < n; ++i) classic_element<WD, NESTEROV>(p[i], g[i], v[i], gin, wd, mom, nlr);
    }

    // 16-bit parameters or a bfloat16 buffer: the same element functions on vectors, in one loop
    // over the stored values (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<0, 1>;
    static int vector_slot_count(const Scalars& s) { return s.classic || s.momentum != 0.0; }
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const V wd = splat<V>(s.weight_decay), mom = splat<V>(s.momentum), keep = splat<V>(1.0 - s.dampening),
                nlr = splat<V>(-s.lr);
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            with_flag(s.nesterov, [&](auto nesterov_on) {
                constexpr bool W = decltype(wd_on)::value, N = decltype(nesterov_on)::value;
                if constexpr (S == 0) {
                    V unused{};
                    run([&](V& p, V x) { torch_element<W, false, false, false>(p, x, unused, gin, wd, mom, keep, nlr); });
                } else if (s.classic) {
                    run([&](V& p, V x, V& b) { classic_element<W, N>(p, x, b, gin, wd, mom, nlr); });
                } else {
                    with_flag(s.first_step, [&](auto first) {
                        run([&](V& p, V x, V& b) {
                            torch_element<W, true, decltype(first)::value, N>(p, x, b, gin, wd, mom, keep, nlr);
                        });
                    });
                }
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        const GradIn<T> gin(gt);
        const T wd = T(s.weight_decay), mom = T(s.momentum), keep = T(1.0 - s.dampening), nlr = T(-s.lr);
        T* p = operand<T>(seg, 0) + lo;
        const T* g = operand<T>(seg, 1) + lo;
        const std::size_t n = hi - lo;
        with_flag(s.weight_decay != 0.0, [&](auto wd_on) {
            constexpr bool W = decltype(wd_on)::value;
            with_flag(s.nesterov, [&](auto nesterov_on) {
                constexpr bool N = decltype(nesterov_on)::value;
                if (s.classic) return classic_loop<T, W, N>(p, g, operand<T>(seg, 2) + lo, n, gin, wd, mom, nlr);
                if (s.momentum == 0.0) return torch_loop<T, W, false, false, false>(p, g, nullptr, n, gin, wd, mom, keep, nlr);
                if (s.first_step) return torch_loop<T, W, true, true, N>(p, g, operand<T>(seg, 2) + lo, n, gin, wd, mom, keep, nlr);
                torch_loop<T, W, true, false, N>(p, g, operand<T>(seg, 2) + lo, n, gin, wd, mom, keep, nlr);
            });
        });
    }
};
