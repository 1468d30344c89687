// torch.optim.Adam / AdamW. Slots: exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad).
// eps_mode "hat": the epsilon-hat form of Keras, TensorFlow and scikit-learn (Kingma & Ba, end of
// section 2): p -= lr*sqrt(1-beta2^t)/(1-beta1^t) * m / (sqrt(v) + eps), eps not bias-corrected.

struct adam_rule : RuleBase {
    static constexpr const char* name = "adam";
    enum Value { lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled, eps_mode, value_count };
    static constexpr const char* eps_modes[] = {"torch", "hat", nullptr};
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("eps"), number("weight_decay"),
                                           flag("amsgrad"), flag("maximize"), flag("decoupled_weight_decay"),
                                           {"eps_mode", HyperKind::choice, HyperCheck::none, eps_modes}};
    static constexpr SlotSpec slots[] = {signed_slot("exp_avg"), nonnegative_slot("exp_avg_sq"),
                                         nonnegative_slot("max_exp_avg_sq")};
    static unsigned slots_used(const double* v) { return v[amsgrad] != 0.0 ? 7u : 3u; }
    // Row-sparse gradients: lazy Adam (the same update on the touched rows only; docs/sparse.md).
    static constexpr SparseGrads sparse_grads = SparseGrads::accepted;

    struct Scalars {
        double beta1, beta2, eps, weight_decay;
        double step_size;  // lr / (1 - beta1^t); hat: lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        double bc2_sqrt;   // sqrt(1 - beta2^t)
        double decay;      // 1 - lr*weight_decay when decoupled, else 1
        bool amsgrad, decoupled, hat;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        const bool dec = v[decoupled] != 0.0, hat = v[eps_mode] == 1.0;
        const double bc1 = 1 - python_pow(v[beta1], t), bc2_sqrt = python_pow(1 - python_pow(v[beta2], t), 0.5);
        return {v[beta1], v[beta2], v[eps], v[weight_decay], hat ? v[lr] * bc2_sqrt / bc1 : v[lr] / bc1, bc2_sqrt,
                decoupled_decay(v[lr], v[weight_decay], dec), v[amsgrad] != 0.0, dec, hat};
    }

    // The parameter after its step, from the new moments (v: amsgrad's maximum where it applies);
    // T: one element, or a vector of them (vector_element). SCALED: the torch form's sqrt(v) /
    // bc2_sqrt (QuotientByConstant: its x a square root, as it asks), until scaled<T> is false.
    template <bool SCALED, class T, class Div>
    static T stepped(T p, T m, T v, const Div& bc2_sqrt, T eps, T neg_step) {
        const T root = SCALED ? bc2_sqrt(sqrt_(v)) : sqrt_(v);
        return p + (neg_step * m) / (root + eps);
    }
    // Whether the denominator divides by bc2_sqrt: the torch form, until bc2_sqrt is 1 in T.
    template <class T>
    static bool scaled(const Scalars& s) {
        return !s.hat && divides_by<T>(s.bc2_sqrt);
    }

    template <class T, bool AMS, bool CWD, bool DEC, bool SCALED>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                     std::size_t n, DecayedGrad<T, CWD, DEC> grad, Moments<T> mom, QuotientByConstant<T> bc2_sqrt,
                     T eps, T neg_step) {
        for (std::size_t i = 0; i < n; ++i) {
            T pi = p[i], mi = m[i], vi = v[i];
            step_moments(pi, g[i], mi, vi, grad, mom);
            m[i] = mi;
            v[i] = vi;
            if (AMS) {
                vi = max_nan(vmax[i], vi);
                vmax[i] = vi;
            }
            p[i] = stepped<SCALED>(pi, mi, vi, bc2_sqrt, eps, neg_step);
        }
    }

    // 16-bit parameters or bfloat16 moments (and amsgrad's maximum): the same functions on
    // vectors, in one loop over the stored values (kernels/moments_vector.hpp).
    using vector_slots = SlotCounts<2, 3>;
    static int vector_slot_count(const Scalars& s) { return s.amsgrad ? 3 : 2; }
    template <class V, int S, class Run>
    static void vector_element(const Scalars& s, const GradTransform& gt, Run&& run) {
        moments_vector_element<V, S>(s, gt, run, [&](auto&& run_step) {
            const QuotientByConstant<V, spare_ports<Run>()> bc2_sqrt(s.bc2_sqrt);
            const V eps = splat<V>(s.eps), neg_step = splat<V>(-s.step_size);
            with_flag(scaled<V>(s), [&](auto sc) {
                run_step([&](V p, V, V m, V v) {
                    return stepped<decltype(sc)::value>(p, m, v, bc2_sqrt, eps, neg_step);
                });
            });
        });
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        const Moments<T> mom(s.beta1, s.beta2);
        const QuotientByConstant<T> bc2_sqrt(s.bc2_sqrt);
        const T eps = T(s.eps), neg_step = T(-s.step_size);
        with_flag(s.amsgrad, [&](auto ams) {
            with_weight_decay(s.weight_decay, s.decoupled, [&](auto cwd, auto dec) {
                constexpr bool A = decltype(ams)::value, C = decltype(cwd)::value, D = decltype(dec)::value;
                const auto run = scaled<T>(s) ? &loop<T, A, C, D, true> : &loop<T, A, C, D, false>;
                run(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, operand<T>(seg, 3) + lo,
                    A ? operand<T>(seg, 4) + lo : nullptr, hi - lo, DecayedGrad<T, C, D>(gt, s.weight_decay, s.decay),
                    mom, bc2_sqrt, eps, neg_step);
            });
        });
    }
};
