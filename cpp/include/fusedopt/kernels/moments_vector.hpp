// The vector loop of a rule with Adam's two moments (Adam, NAdam, RAdam: step_moments on the
// first two state operands, then the rule's own step), so each rule writes only its step.
// Included inside a per-target anonymous namespace, after adam_common.hpp and vector_storage.hpp.

// A rule's vector_element (vector_storage.hpp) on V with S state operands: the moments, then
// the rule's step; S = 3: amsgrad's maximum of the second moment as a third operand, the step
// taking it for v. with_step(run) makes the rule's constants as V and calls run(step) once,
// step(p, d, m, v) -> the new parameter, given the decayed gradient d and the new moments m and v.
template <class V, int S, class Scalars, class Run, class WithStep>
void moments_vector_element(const Scalars& s, const GradTransform& gt, Run&& run, WithStep&& with_step) {
    static_assert(S == 2 || S == 3, "the two moments, and amsgrad's maximum");
    const Moments<V> mom(s.beta1, s.beta2);
    with_weight_decay(s.weight_decay, s.decoupled, [&](auto cwd, auto dec) {
        const DecayedGrad<V, decltype(cwd)::value, decltype(dec)::value> grad(gt, s.weight_decay, s.decay);
        with_step([&](auto step) {
            if constexpr (S == 3) {
                run([&](V& p, V x, V& m, V& v, V& vmax) {
                    const V d = step_moments(p, x, m, v, grad, mom);
                    vmax = max_nan(vmax, v);
                    p = step(p, d, m, vmax);
                });
            } else {
                run([&](V& p, V x, V& m, V& v) {
                    const V d = step_moments(p, x, m, v, grad, mom);
                    p = step(p, d, m, v);
                });
            }
        });
    });
}
