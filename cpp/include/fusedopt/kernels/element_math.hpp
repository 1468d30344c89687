// Element-wise primitives that follow torch's CPU rounding model (docs/architecture.md, Numerics).
// Included inside a per-target anonymous namespace.

// (Only the x86 FMA targets: a "baseline" target, aarch64's too, is the NumPy reference's
// arithmetic, whatever instructions the CPU has.)
#if defined(__FMA__)
#define FUSEDOPT_USE_FMA 1
#endif

// a*b + c. One rounding where the target has FMA (as torch's vectorised add(alpha)/lerp/addcmul);
// two roundings on a baseline target, which is what makes it bitwise equal to the NumPy reference.
inline float fmadd(float a, float b, float c) {
#ifdef FUSEDOPT_USE_FMA
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}
inline double fmadd(double a, double b, double c) {
#ifdef FUSEDOPT_USE_FMA
    return __builtin_fma(a, b, c);
#else
    return a * b + c;
#endif
}

// x ** y as Python computes it, the C library's pow: torch's scalars (bias corrections and the
// like) and the NumPy reference's are. A compiler may rewrite pow(x, 0.5) as sqrt(x) (clang does,
// without -ffast-math), which differs where the library's pow is not correctly rounded: glibc's
// pow(1 - 0.75^127, 0.5) is 1.0, the square root 1 - 2^-53 (Adam at step 127, beta2 = 0.75). y
// passes through memory the optimizer cannot see into, so the call stays a call to pow.
inline double python_pow(double x, double y) {
    asm("" : "+m"(y));
    return __builtin_pow(x, y);
}

inline float sqrt_(float x) { return __builtin_sqrtf(x); }
inline double sqrt_(double x) { return __builtin_sqrt(x); }

inline float abs_(float x) { return __builtin_fabsf(x); }
inline double abs_(double x) { return __builtin_fabs(x); }

// torch.maximum: NaN in either argument propagates.
template <class T>
inline T max_nan(T a, T b) {
    return (a != a) ? a : (a > b ? a : b);
}

// torch.lerp(a, b, w) with the branch LerpKernel.cpp takes for a scalar weight.
template <class T>
struct Lerp {
    T weight;   // w when |w| < 0.5, else w - 1
    bool small;
    explicit Lerp(double w) : weight(splat<T>(w)), small(w < 0.5 && w > -0.5) {
        if (!small) weight = weight - splat<T>(1.0);
    }
    T operator()(T a, T b) const {
        // One fmadd with a selected addend (not a branch between two fmadds): GCC if-converts
        // this select and vectorizes the loop; the two-call form kept every loop that holds a
        // lerp scalar unless the compiler happened to unswitch it.
        return fmadd(weight, b - a, small ? a : b);
    }
};

// sign(x) with sign(0) = 0 and sign(NaN) = NaN, as numpy.sign (Lion: a NaN moment poisons its
// parameter). torch.sign on CPU gives 0 for NaN; Rprop, which follows torch, has its own sign0.
template <class T>
inline T sign_(T x) {
    const T zero = splat<T>(0.0);
    return x > zero ? splat<T>(1.0) : (x < zero ? splat<T>(-1.0) : x);
}

// GradTransform rounded to the buffer dtype once.
template <class T>
struct GradIn {
    T scale, lo, hi;
    explicit GradIn(const GradTransform& t) : scale(splat<T>(t.scale)), lo(splat<T>(t.lo)), hi(splat<T>(t.hi)) {}
    T operator()(T x) const {
        const T y = x < lo ? lo : x;
        return (y > hi ? hi : y) * scale;
    }
};

// A compile-time flag passed as a value, so one generic lambda can pick a loop variant
// (std::integral_constant would be a std:: template shared across targets).
template <bool B>
struct Bool {
    static constexpr bool value = B;
};

// Calls body(Bool<flag>) with the run-time flag as a compile-time one.
template <class Body>
inline void with_flag(bool flag, Body&& body) {
    if (flag) return body(Bool<true>{});
    return body(Bool<false>{});
}

// The arithmetic type of T's elements: T, or float32 for a vector (simd.hpp's are float32).
template <class T>
using LaneOf = std::conditional_t<std::is_floating_point_v<T>, T, float>;

// Two divisions by a constant c of the step (a bias correction), each correctly rounded with no
// division where the target allows; OFF_DIVIDER false: the division, for vector loops whose
// storage keeps the vector ports busy (spare_ports, KeepsPortsBusy). Checked against the division
// for every float32 input by tools/check_quotient.cpp.

// Adam's sqrt(v) / sqrt(1 - beta2^t): by multiply-adds where the target fuses them (the divider,
// which bounds Adam in cache, is left to the other divisions), for c in [2^-27, 1] and x the
// square root of a float >= +0 (so 0, infinity, NaN, or at least 2^-75 in float32, 2^-538 in
// float64). q = x * r (r: 1 / c rounded to nearest) is within 2 ulp of x / c; one correction (the
// residual x - q * c, exact in one fused multiply-add, times r) brings it within 1 ulp, and a
// second one makes it correctly rounded (Markstein's theorem: a faithful quotient and the nearest
// reciprocal). Infinity and NaN divide to themselves. The baseline target divides.
template <class T, bool OFF_DIVIDER = true>
struct QuotientByConstant {
    T c, r;
    explicit QuotientByConstant(double x)
        : c(splat<T>(x)), r(splat<T>(double(LaneOf<T>(1) / static_cast<LaneOf<T>>(x)))) {}
    T operator()(T x) const {
#ifdef FUSEDOPT_USE_FMA
        if constexpr (OFF_DIVIDER) {
            T q = x * r;
            q = fmadd(fmadd(-q, c, x), r, q);
            q = fmadd(fmadd(-q, c, x), r, q);
            return x - x == splat<T>(0.0) ? q : x;  // (x finite)
        }
#endif
        return x / c;
    }
};

// NAdam's and Schedule-Free AdamW's v / (1 - beta2^t), RAdam's m / (1 - beta1^t): x is any
// float. float32 (and its vectors: vscale_f64): x times 1/c in float64, rounded to float32. The
// product is within 2^-52 of x / c, relatively, and a quotient of two float32 numbers is never
// closer than 2^-49 to a float32 rounding boundary (a midpoint between neighbours, subnormal ones
// and the overflow threshold included: its distance is a nonzero multiple of the operands'
// spacing), so the one rounding to float32 is the division's for every x: 0, subnormal,
// infinity, NaN, and with denormals flushed (the conversions flush as the division does).
// float64 divides.
template <class T, bool OFF_DIVIDER = true>
struct DivideByConstant {
    T c;
    double inverse;  // 1 / c in float64, c rounded to T's lanes first
    explicit DivideByConstant(double x)
        : c(splat<T>(x)), inverse(1.0 / static_cast<double>(static_cast<LaneOf<T>>(x))) {}
    T operator()(T x) const {
        if constexpr (!OFF_DIVIDER || std::is_same_v<T, double>)
            return x / c;
        else if constexpr (std::is_same_v<T, float>)
            return static_cast<float>(static_cast<double>(x) * inverse);
#if FUSEDOPT_SIMD_LANES
        else
            return vscale_f64(x, inverse);
#endif
    }
};

// Whether a rule must divide by the scalar x (a bias correction 1 - beta^t, or its square root)
// in the element type T (a vector: float32 lanes): not once x is exactly 1 there, after enough
// steps (float32: Adam's sqrt(1 - 0.999^t) from step 16,628 on, 0.95's from 325; RAdam's
// 1 - 0.9^t from 165), since y / 1 == y for every y. The same bits, one division fewer per
// element: the divider bounds Adam in cache (docs/performance.md).
template <class T>
inline bool divides_by(double x) {
    return static_cast<LaneOf<T>>(x) != LaneOf<T>(1);
}
