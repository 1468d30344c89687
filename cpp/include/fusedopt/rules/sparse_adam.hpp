// torch.optim.SparseAdam: lazy Adam for row-sparse gradients (docs/sparse.md). Only the touched
// rows of the parameter and its moments are read and written (one segment per row); the step
// counter is the parameter's. Slots: exp_avg, exp_avg_sq. Dense gradients are refused, as in torch.

struct sparse_adam_rule : RuleBase {
    static constexpr const char* name = "sparse_adam";
    enum Value { lr, beta1, beta2, eps, maximize, value_count };
    static constexpr HyperSpec hypers[] = {learning_rate(), betas_pair(), number("eps"), flag("maximize")};
    static constexpr SlotSpec slots[] = {{"exp_avg"}, {"exp_avg_sq"}};
    static unsigned slots_used(const double*) { return 3u; }
    static constexpr SparseGrads sparse_grads = SparseGrads::required;

    struct Scalars {
        double one_minus_beta1, one_minus_beta2, eps;
        double step_size;  // lr * sqrt(1 - beta2^t) / (1 - beta1^t), as torch's sparse_adam
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        return {1 - v[beta1], 1 - v[beta2], v[eps],
                v[lr] * __builtin_sqrt(1 - python_pow(v[beta2], t)) / (1 - python_pow(v[beta1], t))};
    }

    // torch/optim/_functional.py sparse_adam, operation for operation (its sparse adds have
    // alpha 1, so they round as plain additions on every target):
    //   du = (g - m)*(1-beta1); m += du; dv = (g*g - v)*(1-beta2); v += dv;
    //   p += -step_size * (m / (sqrt(v) + eps))
    template <class T>
    static void loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, std::size_t n,
                     GradIn<T> gin, T omb1, T omb2, T eps, T neg_step) {
        for (std::size_t i = 0; i < n; ++i) {
            const T d = gin(g[i]);
            const T mi = m[i] + (d - m[i]) * omb1;
            const T vi = v[i] + (d * d - v[i]) * omb2;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] + neg_step * (mi / (sqrt_(vi) + eps));
        }
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const GradTransform& gt) {
        loop<T>(operand<T>(seg, 0) + lo, operand<T>(seg, 1) + lo, operand<T>(seg, 2) + lo, operand<T>(seg, 3) + lo,
                hi - lo, GradIn<T>(gt), T(s.one_minus_beta1), T(s.one_minus_beta2), T(s.eps), T(-s.step_size));
    }
};
