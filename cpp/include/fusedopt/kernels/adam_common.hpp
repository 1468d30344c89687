// Pieces the Adam family's loops share, on one element or one vector of them (T: float, double
// or simd.hpp's VecF). Included inside a per-target anonymous namespace.

// The gradient as the Adam family sees it, with weight decay: decoupled multiplies p by
// (1 - lr*wd) before anything else; coupled adds wd*p to the (negated, clipped) gradient.
template <class T, bool CWD, bool DEC>
struct DecayedGrad {
    GradIn<T> gin;
    T wd, decay;
    DecayedGrad(const GradTransform& gt, double weight_decay, double decay_)
        : gin(gt), wd(splat<T>(weight_decay)), decay(splat<T>(decay_)) {}
    T operator()(T& p, T g) const {
        T d = gin(g);
        if (DEC) p = p * decay;
        if (CWD) d = fmadd(p, wd, d);
        return d;
    }
};

// torch's moment updates: m = lerp(m, g, 1 - beta1); v = beta2*v + (1 - beta2)*g*g (mul_, addcmul_).
template <class T>
struct Moments {
    Lerp<T> m_lerp;
    T beta2, one_minus_beta2;
    Moments(double beta1, double beta2_)
        : m_lerp(1.0 - beta1), beta2(splat<T>(beta2_)), one_minus_beta2(splat<T>(1.0 - beta2_)) {}
    T first(T m, T d) const { return m_lerp(m, d); }
    T second(T v, T d) const { return fmadd(one_minus_beta2 * d, d, v * beta2); }
};

// The prologue the Adam family shares: the (decayed) gradient, then both moments.
// Returns the gradient the update uses; `m` and `v` hold the new moments.
template <class T, bool CWD, bool DEC>
inline T step_moments(T& p, T g, T& m, T& v, const DecayedGrad<T, CWD, DEC>& grad, const Moments<T>& mom) {
    const T d = grad(p, g);
    m = mom.first(m, d);
    v = mom.second(v, d);
    return d;
}

// Calls body(Bool<CWD>, Bool<DEC>) for the weight-decay variant the scalars select.
template <class Body>
inline void with_weight_decay(double weight_decay, bool decoupled, Body&& body) {
    if (weight_decay == 0.0) return body(Bool<false>{}, Bool<false>{});
    if (decoupled) return body(Bool<false>{}, Bool<true>{});
    return body(Bool<true>{}, Bool<false>{});
}
