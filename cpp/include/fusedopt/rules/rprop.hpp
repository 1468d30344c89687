// torch.optim.Rprop (Riedmiller & Braun 1993, without weight backtracking). Slots: prev, step_size.
// s = sign(g*prev) mapped > 0 -> etaplus, < 0 -> etaminus, 0 -> 1; step_size = clamp(step_size*s,
// min, max); g = 0 where s == etaminus (a sign flip: no move, and prev = 0 so the next step
// neither grows nor shrinks); p -= sign(g)*step_size; prev = g. step_size starts at lr.

struct rprop_rule : RuleBase {
    static constexpr const char* name = "rprop";
    enum Value { lr, etaminus, etaplus, step_size_min, step_size_max, maximize, value_count };
    static constexpr const char* kEtaNames[] = {"etaminus", "etaplus", nullptr};
    static constexpr const char* kStepSizeNames[] = {"step_size_min", "step_size_max", nullptr};
    static constexpr HyperSpec hypers[] = {learning_rate(),
                                           {"etas", HyperKind::pair, HyperCheck::none, kEtaNames},
                                           {"step_sizes", HyperKind::pair, HyperCheck::none, kStepSizeNames},
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {{"prev"}, {"step_size"}};
    static unsigned slots_used(const double*) { return 3u; }
    // torch checks the etas (at construction); the step sizes must bound a range.
    static HyperError check(const double* v) {
        if (!(0.0 < v[etaminus] && v[etaminus] < 1.0 && 1.0 < v[etaplus]))
            return {"etas", "must satisfy 0 < etas[0] < 1 < etas[1]"};
        if (!(0.0 <= v[step_size_min] && v[step_size_min] <= v[step_size_max]))
            return {"step_sizes", "must satisfy 0 <= step_sizes[0] <= step_sizes[1]"};
        return {};
    }

    struct Scalars {
        double lr, etaminus, etaplus, lo, hi;
        bool first;  // the state was just created: step_size starts at lr (torch: full_like(p, lr))
    };
    static Scalars derive(const double* v, const Counters& c) {
        return {v[lr], v[etaminus], v[etaplus], v[step_size_min], v[step_size_max], c.fresh};
    }

    // -1 where d > 0, +1 where d < 0: one with d's sign bit flipped.
    static float against(float d) { return __builtin_copysignf(1.0f, -d); }
    static double against(double d) { return __builtin_copysign(1.0, -d); }
#if FUSEDOPT_SIMD_LANES
    static VecF against(VecF d) { return vfloat(vxor_i(vset_i(0xbf800000u), vand_i(vbits(d), vset_i(0x80000000u)))); }
#endif

    // torch's three masked assignments on sign(g * prev) (torch.sign on CPU: (x > 0) - (x < 0),
    // so sign(NaN) = 0 and sign(-0) = +0) give etaplus where g * prev > 0, etaminus where < 0,
    // else 1; and since etaminus < 1 < etaplus, "s == etaminus" is "g * prev < 0". The same
    // values chosen by two comparisons (torch's form took 1.8x the time). Then -sign(d) (d = 0
    // after a flip) is -1, +1, or -0 where d is 0 or NaN: one comparison, |d| > 0, and d's sign.
    // (Comparisons are what this loop's time goes to: eight, as GCC compiled the nested selects
    // of an earlier form, took 1.4x Adam's step in cache (64K, 1 thread); four, this form, 0.95x.)
    // One element, T: an element, or a vector of them (vector_element); FIRST: step_size not read.
    template <bool FIRST, class T>
    static void element(T& p, T g, T& prev, T& step_size, const GradIn<T>& gin, T lr, T em, T ep, T lo, T hi) {
        const T zero = splat<T>(0.0), one = splat<T>(1.0);
        const T d = gin(g);
        const T x = d * prev;
        const auto flip = x < zero;
        T s = x > zero ? ep : one;
        s = flip ? em : s;
        T ss = (FIRST ? lr : step_size) * s;
        ss = ss < lo ? lo : ss;  // clamp_(lo, hi): NaN stays NaN
        ss = ss > hi ? hi : ss;
        step_size = ss;
        const T dn = flip ? zero : d;
        // addcmul_(sign(dn), step_size, value=-1)
        p = fmadd(abs_(dn) > zero ? against(dn) : splat<T>(-0.0), ss, p);
        prev = dn;
    }

    template <class T, bool FIRST>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict prev, T* __restrict step_size,
                     std::size_t n, GradIn<T> gin, T lr, T em, T ep, T lo, T hi) {
        for (std::size_t i = 0; i < n; ++i) {
            T pi = p[i], pr = prev[i], ss = step_size[i];
            element<FIRST>(pi, g[i], pr, ss, gin, lr, em, ep, lo, hi);
            p[i] = pi;
            prev[i] = pr;
            step_size[i] = ss;
        }
    }

    // 16-bit parameters: the same element function on vectors (kernels/vector_storage.hpp).
    using vector_slots = SlotCounts<2>;
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        const GradIn<V> gin(gt);
        const V lr = splat<V>(s.lr), em = splat<V>(s.etaminus), ep = splat<V>(s.etaplus), low = splat<V>(s.lo),
                high = splat<V>(s.hi);
        with_flag(s.first, [&](auto first) {
            run([&](V& p, V x, V& prev, V& step_size) {
                element<decltype(first)::value>(p, x, prev, step_size, gin, lr, em, ep, low, high);
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        with_flag(s.first, [&](auto first) {
            loop<T, decltype(first)::value>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo,
                                            operand<T>(seg, 3) + lo, hi - lo, GradIn<T>(gt), T(s.lr), T(s.etaminus),
                                            T(s.etaplus), T(s.lo), T(s.hi));
        });
    }
};
