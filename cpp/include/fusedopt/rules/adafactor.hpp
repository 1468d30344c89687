// torch.optim.Adafactor (torch/optim/_adafactor.py), in its order of operations. Slots: row_var,
// col_var (>= 2-D parameters: factored per matrix of the last two dimensions), variance (fewer
// dimensions). At step t: rho = min(lr, 1/sqrt(t)); alpha = max(eps2, RMS(p)) * rho; p *= 1 - lr*wd;
// factored: row_var = lerp(row_var, mean(g^2 over a row), t^beta2_decay), col_var likewise over a
// column; var = row_var * col_var / max(mean(row_var), eps1); else var = lerp(var, g^2, ...);
// u = g / sqrt(max(var, eps1^2)); p += -alpha / max(1, RMS(u)/d) * u. eps1 None: the machine epsilon
// of the dtype of the group's first parameter that steps (filled in by the engine, as torch does).
// Two reduction passes: (1) |p|, row and column sums of g^2 (finish: alpha, the new factors and
// their means); (2) |u| (finish: the step's coefficient of u).

struct adafactor_rule : RuleBase {
    static constexpr const char* name = "adafactor";
    enum Value { lr, beta2_decay, eps1, eps2, d, weight_decay, maximize, value_count };
    static constexpr const char* kEpsNames[] = {"eps1", "eps2", nullptr};
    static constexpr HyperSpec hypers[] = {learning_rate(),
                                           {"beta2_decay", HyperKind::number},
                                           {"eps", HyperKind::pair, HyperCheck::optional_nonnegative, kEpsNames},
                                           {"d", HyperKind::number},
                                           number("weight_decay"),
                                           flag("maximize")};
    static constexpr SlotSpec slots[] = {
        {"row_var", SlotShape::rows}, {"col_var", SlotShape::cols}, {"variance", SlotShape::unfactored}};
    static unsigned slots_used(const double*) { return 7u; }  // those the parameter's shape keeps
    static HyperError check(const double* v) {
        if (!(v[beta2_decay] <= 0.0)) return {"beta2_decay", "must be <= 0"};
        if (v[eps2] != v[eps2]) return {"eps[1]", "must be a number >= 0 (None, the dtype's epsilon, is for eps[0] only)"};
        if (!(v[d] >= 1.0)) return {"d", "must be >= 1 (the clipping threshold)"};
        return {};
    }

    struct Scalars {
        double beta2t;  // t^beta2_decay: the lerp weight
        double rho;     // min(lr, 1/sqrt(t))
        double eps1;    // None was filled in by the engine (the group's first stepping dtype's epsilon)
        double eps2, d;
        double decay;   // 1 - lr*weight_decay
        bool decay_on;
    };
    static Scalars derive(const double* v, const Counters& c) {
        const double t = double(c.step + 1);
        const double inv = 1.0 / python_pow(t, 0.5);
        return {python_pow(t, v[beta2_decay]), inv < v[lr] ? inv : v[lr], v[eps1], v[eps2], v[d],  // min(lr, inv)
                1.0 - v[lr] * v[weight_decay], v[weight_decay] != 0.0};
    }

    // The scalars of one array in the dtype.
    template <class T>
    struct Consts {
        T eps1, eps1_sq;
        Lerp<T> var_lerp;
        explicit Consts(const Scalars& s) : eps1(T(s.eps1)), eps1_sq(T(s.eps1 * s.eps1)), var_lerp(s.beta2t) {}
        // torch: var.clamp_(min=eps1*eps1).rsqrt_(), times the gradient (NaN stays NaN)
        T update(T var, T g) const { return (T(1) / sqrt_(var < eps1_sq ? eps1_sq : var)) * g; }
    };

    static bool factored(const Segment& seg) { return seg.ndim >= 2; }

    // ---- reductions ----
    static constexpr int reduce_passes = 2;
    // [alpha, the coefficient of u, then per matrix: max(mean(row_var), eps1)]
    static std::size_t array_values(const Segment& seg) { return 2 + (factored(seg) ? seg.matrices : 0); }
    static bool whole_rows(int, const Segment& seg) { return factored(seg); }
    // pass 0: [sum p^2, column sums (cols), row sums (the chunk's rows)]; pass 1: [sum u^2]
    static std::size_t partial_width(int pass, const Segment& seg, std::size_t len) {
        if (pass == 1 || !factored(seg)) return 1;
        return 1 + seg.cols + len / seg.cols;
    }

    template <class T>
    static void reduce(int pass, const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s,
                       const double* values, const GradTransform& gt, double* out) {
        const GradIn<T> gin(gt);
        const T* p = operand<T>(seg, 0);
        const T* g = operand<T>(seg, 1);
        if (pass == 0) {
            Lanes lp;
            lp.add_squares(p + lo, hi - lo);
            out[0] = lp.total();
            if (!factored(seg)) return;
            const std::size_t C = seg.cols;
            double* col = out + 1;
            double* row = out + 1 + C;
            T buf[kLaneBlock];
            for (std::size_t at = lo, j = 0; at < hi; at += C, ++j) {
                Lanes lr_;
                for (std::size_t c0 = 0; c0 < C; c0 += kLaneBlock) {
                    const std::size_t n = C - c0 < kLaneBlock ? C - c0 : kLaneBlock;
                    for (std::size_t k = 0; k < n; ++k) {
                        buf[k] = gin(g[at + c0 + k]);
                        const double y = double(buf[k]);
                        col[c0 + k] += y * y;
                    }
                    lr_.add_squares(buf, n);
                }
                row[j] = lr_.total();
            }
            return;
        }
        const Consts<T> k(s);
        if (!factored(seg)) {
            const T* v = operand<T>(seg, 4);
            out[0] = sum_squares_of<T>(hi - lo, [&](std::size_t i, T* o, std::size_t n) {
                for (std::size_t j = 0; j < n; ++j) {
                    const T gj = gin(g[lo + i + j]);
                    o[j] = k.update(k.var_lerp(v[lo + i + j], gj * gj), gj);
                }
            });
            return;
        }
        out[0] = sum_squares_of<T>(hi - lo, [&](std::size_t i, T* o, std::size_t n) {
            factored_updates<T>(seg, lo + i, n, values, k, gin, o);
        });
    }

    // u for elements [at, at + n) of a factored array, into o.
    template <class T>
    static void factored_updates(const Segment& seg, std::size_t at, std::size_t n, const double* values,
                                 const Consts<T>& k, const GradIn<T>& gin, T* o) {
        const T* g = operand<T>(seg, 1);
        const T* rv = operand<T>(seg, 2);
        const T* cv = operand<T>(seg, 3);
        const std::size_t C = seg.cols, RC = seg.rows * seg.cols;
        for (std::size_t j = 0; j < n;) {
            const std::size_t x = seg.offset + at + j, b = x / RC, r = (x % RC) / C, c = x % C;  // (the factors')
            const std::size_t run = C - c < n - j ? C - c : n - j;
            const T row = rv[b * seg.rows + r], mean = T(values[2 + b]);
            const T* col = cv + b * C + c;
            for (std::size_t q = 0; q < run; ++q) o[j + q] = k.update((row * col[q]) / mean, gin(g[at + j + q]));
            j += run;
        }
    }

    // torch's numel() ** 0.5: pow, as the reference's `size ** 0.5` (sqrt may round otherwise),
    // kept for the last count this thread saw: a model's arrays repeat their sizes, and pow costs
    // ~200 instructions, twice per array and step.
    static double root_of_count(std::size_t n) {
        thread_local std::size_t last_n = 0;
        thread_local double last = 0.0;  // (pow(0, 0.5))
        if (n != last_n) {
            last = python_pow(double(n), 0.5);
            last_n = n;
        }
        return last;
    }

    template <class T>
    static void finish(int pass, const Segment& seg, const Scalars& s, double* partials, std::size_t width,
                       const std::size_t* starts, std::size_t chunks, double* values) {
        const double rms_scale = root_of_count(seg.size);
        if (pass == 1) {
            double su = 0.0;
            for (std::size_t q = 0; q < chunks; ++q) su += partials[q * width];
            const double rms = double(T(__builtin_sqrt(su))) / (rms_scale * s.d);
            values[1] = -values[0] / (rms > 1.0 ? rms : 1.0);  // torch: max(1.0, rms / d)
            return;
        }
        double sp = 0.0;
        for (std::size_t q = 0; q < chunks; ++q) sp += partials[q * width];
        const double rms_p = double(T(__builtin_sqrt(sp))) / rms_scale;
        values[0] = (rms_p > s.eps2 ? rms_p : s.eps2) * s.rho;  // torch: max(eps2, rms) * rho
        if (!factored(seg)) return;
        // The new factors: row_var from each row's sum, col_var from each column's (chunks in order).
        const Consts<T> k(s);
        const std::size_t C = seg.cols, R = seg.rows, RC = R * C;
        T* rv = operand<T>(seg, 2);
        T* cv = operand<T>(seg, 3);
        const T Ct = T(double(C)), Rt = T(double(R));
        for (std::size_t b = 0, q = 0; b < seg.matrices; ++b) {
            double* col = partials + q * width + 1;  // the matrix's first chunk sums the columns
            for (std::size_t first = q; q < chunks && starts[q] < (b + 1) * RC; ++q) {
                const double* part = partials + q * width;
                if (q != first)
                    for (std::size_t c = 0; c < C; ++c) col[c] += part[1 + c];
                const std::size_t r0 = (starts[q] % RC) / C, rows = (starts[q + 1] - starts[q]) / C;
                for (std::size_t j = 0; j < rows; ++j) {
                    const T n = T(__builtin_sqrt(part[1 + C + j]));  // torch: norm(g, dim=-1).square_().div_(C)
                    rv[b * R + r0 + j] = k.var_lerp(rv[b * R + r0 + j], (n * n) / Ct);
                }
            }
            for (std::size_t c = 0; c < C; ++c) {
                const T n = T(__builtin_sqrt(col[c]));
                cv[b * C + c] = k.var_lerp(cv[b * C + c], (n * n) / Rt);
            }
            double sum = 0.0;  // row_var.mean(dim=-2).clamp_(min=eps1)
            for (std::size_t r = 0; r < R; ++r) sum += double(rv[b * R + r]);
            const T mean = T(sum / double(R));
            values[2 + b] = double(mean < k.eps1 ? k.eps1 : mean);
        }
    }

    template <class T>
    static void kernel(const Segment& seg, std::size_t lo, std::size_t hi, const Scalars& s, const double* values,
                       const GradTransform& gt) {
        const GradIn<T> gin(gt);
        const Consts<T> k(s);
        const T coef = T(values[1]), decay = T(s.decay);
        T* __restrict p = operand<T>(seg, 0);
        const T* __restrict g = operand<T>(seg, 1);
        if (!factored(seg)) {
            T* __restrict v = operand<T>(seg, 4);
            for (std::size_t i = lo; i < hi; ++i) {
                const T gi = gin(g[i]);
                const T vi = k.var_lerp(v[i], gi * gi);
                v[i] = vi;
                const T pi = s.decay_on ? p[i] * decay : p[i];
                p[i] = fmadd(k.update(vi, gi), coef, pi);
            }
            return;
        }
        T u[kLaneBlock];
        for (std::size_t at = lo; at < hi; at += kLaneBlock) {
            const std::size_t n = hi - at < kLaneBlock ? hi - at : kLaneBlock;
            factored_updates<T>(seg, at, n, values, k, gin, u);
            for (std::size_t j = 0; j < n; ++j) {
                const T pi = s.decay_on ? p[at + j] * decay : p[at + j];
                p[at + j] = fmadd(u[j], coef, pi);
            }
        }
    }
};
