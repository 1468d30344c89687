// What Schedule-Free SGD and AdamW share (Defazio et al. 2024, the schedulefree package's
// SGDScheduleFree / AdamWScheduleFree). Included inside a per-target anonymous namespace.
//
// Per parameter the engine keeps k ('step'), lr_max (extra counter, from -1) and weight_sum
// (extra2, from 0), which schedulefree keeps per param group; with every parameter stepped
// every time they are the same numbers (docs/wrappers.md).

struct ScheduleFreeWeights {
    double lr;       // lr * warmup factor: the step's learning rate
    double lr_max;   // max(lr, lr_max so far)
    double weight;   // (k+1)^r * lr_max^weight_lr_power
    double ckp1;     // weight / weight_sum (0 while weight_sum is 0)
};

// schedulefree's float64 arithmetic, in its order. v[lr], v[warmup_steps], v[r], v[wlp].
inline ScheduleFreeWeights schedule_free_weights(double lr_, double warmup_steps, double r, double weight_lr_power,
                                                 const Counters& c) {
    const double k = double(c.step);
    const double sched = k < warmup_steps ? (k + 1) / warmup_steps : 1.0;
    ScheduleFreeWeights w{};
    w.lr = lr_ * sched;
    w.lr_max = w.lr >= c.extra ? w.lr : c.extra;  // Python's max(lr, lr_max)
    w.weight = python_pow(k + 1, r) * python_pow(w.lr_max, weight_lr_power);
    const double weight_sum = c.extra2 + w.weight;
    w.ckp1 = weight_sum != 0.0 ? w.weight / weight_sum : 0.0;
    return w;
}

// The y/z update on the normalized gradient d (weight decay at y already added):
// y = lerp(y, z, ckp1); y += d*lr*(beta1*(1 - ckp1) - 1); z -= d*lr. A new z starts as y.
template <class T>
struct ScheduleFreeStep {
    Lerp<T> to_z;
    T y_coef, neg_lr;
    ScheduleFreeStep(double ckp1, double y_coef_, double lr)
        : to_z(ckp1), y_coef(splat<T>(y_coef_)), neg_lr(splat<T>(-lr)) {}
    void operator()(T& y, T& z, T d) const {
        y = fmadd(d, y_coef, to_z(y, z));
        z = fmadd(d, neg_lr, z);
    }
};
