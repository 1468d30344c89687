// Float64 sums of squares in one fixed order that vectorizes without reassociation (so no
// -ffast-math, and the same bits on every SIMD target): element k of each piece added goes to
// lane k % 32, each lane a plain sequential sum, and total() adds the four vectors of 8 lanes as
// (0 + 1) + (2 + 3), then their 8 lanes as ((0+1)+(2+3))+((4+5)+(6+7)). A run fed in pieces keeps
// every piece but the last a multiple of 32 long, so element i of the run goes to lane i % 32;
// reference.py's _row_sums computes the same bits. Four vectors, not one: a single accumulator
// waits on the add latency each 8 elements (LARS' two norms took most of its step). The lanes are
// added up once per run: a horizontal sum per piece cost as much as a 1K piece (a gradient norm
// over 1000 x 1K took 2x the time of one 1M array). Included inside a per-target namespace.

// 32 lanes added in Lanes' order (lane_dot.hpp's too): lane j with 8 + j, 16 + j and 24 + j as
// (j + (8+j)) + ((16+j) + (24+j)), then those 8 as ((0+1)+(2+3))+((4+5)+(6+7)).
template <class T>
inline T lane_tree(const T* lane) {
    T a[8];
    for (int j = 0; j < 8; ++j) a[j] = (lane[j] + lane[8 + j]) + (lane[16 + j] + lane[24 + j]);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

struct Lanes {
    typedef double F64x8 __attribute__((vector_size(64)));
    typedef float F32x8 __attribute__((vector_size(32)));
    F64x8 acc[4]{};  // lanes 0-7, 8-15, 16-23, 24-31

    // (Out by reference: a vector returned by value warns of an ABI change on the baseline target.)
    template <class T>
    static void load8(const T* __restrict x, F64x8& y) {
        for (int j = 0; j < 8; ++j) y[j] = static_cast<double>(x[j]);
    }
    static void load8(const float* __restrict x, F64x8& y) {
#if defined(__AVX512F__)  // (GCC 12 splits __builtin_convertvector into halves and inserts)
        y = reinterpret_cast<F64x8>(_mm512_cvtps_pd(_mm256_loadu_ps(x)));
#else
        F32x8 f;
        __builtin_memcpy(&f, x, sizeof f);
        y = __builtin_convertvector(f, F64x8);
#endif
    }
    static void load8(const double* __restrict x, F64x8& y) { __builtin_memcpy(&y, x, sizeof y); }
    // 16-bit storage: widened to float32 (exact) 8 at a time, in vector code (read one element
    // at a time, a norm of float16 gradients took 6.3 ns per element).
    static void load8(const Bf16* __restrict x, F64x8& y) {
        float f[8];
        widen_bf16(reinterpret_cast<const std::uint16_t*>(x), f, 8);
        load8(f, y);
    }
    static void load8(const F16* __restrict x, F64x8& y) {
        float f[8];
        widen_f16(reinterpret_cast<const std::uint16_t*>(x), f, 8);
        load8(f, y);
    }

    // Widened from float32 or narrower, a value's square is exact in float64 (at most 48
    // significant bits), so one fused multiply-add rounds where the sum does: the same bits in
    // one instruction instead of two (a float32 norm pass took 1.8x its memory time on Zen 5).
    template <class T>
    static constexpr bool kExactSquare = sizeof(T) < sizeof(double);

    // s + y * y (one rounding where kExactSquare<T> and the target has FMA).
    template <class T>
    static void add_square(F64x8& s, const F64x8& y) {
#if defined(__AVX512F__)
        if constexpr (kExactSquare<T>) {
            s = reinterpret_cast<F64x8>(_mm512_fmadd_pd(reinterpret_cast<__m512d>(y), reinterpret_cast<__m512d>(y),
                                                        reinterpret_cast<__m512d>(s)));
            return;
        }
#endif
        s += y * y;
    }

    // Adds x[k]^2 for k < the largest multiple of 32 <= n; returns it.
    template <class T>
    std::size_t add_whole_blocks(const T* __restrict x, std::size_t n) {
        F64x8 s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], y0, y1, y2, y3;
        std::size_t i = 0;
        for (; i + 32 <= n; i += 32) {
            load8(x + i, y0);
            load8(x + i + 8, y1);
            load8(x + i + 16, y2);
            load8(x + i + 24, y3);
            add_square<T>(s0, y0);
            add_square<T>(s1, y1);
            add_square<T>(s2, y2);
            add_square<T>(s3, y3);
        }
        acc[0] = s0;
        acc[1] = s1;
        acc[2] = s2;
        acc[3] = s3;
        return i;
    }
#if defined(__AVX2__) && !defined(__AVX512F__)
    // AVX2: the same lanes, as eight vectors of 4 in registers (GCC 12 keeps the 8-double
    // vectors above in memory on AVX2: a float32 norm took 0.59 ns per element at one core, 3x
    // the time its bytes take from memory).
    static __m256d quad(const float* x) { return _mm256_cvtps_pd(_mm_loadu_ps(x)); }
    static __m256d quad(const double* x) { return _mm256_loadu_pd(x); }
    static __m256d quad(const Bf16* x) {  // (each value's bits the top half of a float32's)
        const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x));
        return _mm256_cvtps_pd(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)));
    }
    static __m256d quad(const F16* x) {  // (x86-64-v3 has F16C)
        return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x))));
    }
    template <class T>
    std::size_t add_whole_blocks_by_quads(const T* __restrict x, std::size_t n) {
        __m256d s[8];  // s[2q], s[2q + 1]: acc[q]'s lanes 0-3 and 4-7
        static_assert(sizeof s == sizeof acc, "the same 32 lanes");
        __builtin_memcpy(s, acc, sizeof s);
        std::size_t i = 0;
        for (; i + 32 <= n; i += 32) {
            for (int k = 0; k < 8; ++k) {
                const __m256d y = quad(x + i + 4 * k);  // (x86-64-v3 has FMA)
                s[k] = kExactSquare<T> ? _mm256_fmadd_pd(y, y, s[k]) : _mm256_add_pd(s[k], _mm256_mul_pd(y, y));
            }
        }
        __builtin_memcpy(acc, s, sizeof s);
        return i;
    }
    std::size_t add_whole_blocks(const float* __restrict x, std::size_t n) { return add_whole_blocks_by_quads(x, n); }
    std::size_t add_whole_blocks(const double* __restrict x, std::size_t n) { return add_whole_blocks_by_quads(x, n); }
    std::size_t add_whole_blocks(const Bf16* __restrict x, std::size_t n) { return add_whole_blocks_by_quads(x, n); }
    std::size_t add_whole_blocks(const F16* __restrict x, std::size_t n) { return add_whole_blocks_by_quads(x, n); }
#endif

    // Adds x[k]^2 (in float64) for k < n.
    template <class T>
    void add_squares(const T* __restrict x, std::size_t n) {
        const std::size_t i = add_whole_blocks(x, n);
        F64x8 s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], y0, y1, y2, y3;
        // The last r < 32: whole eights to their vectors, then the rest zero-padded (adding +0
        // changes no lane: each is a sum of squares, never -0).
        const std::size_t r = n - i;
        if (r >= 8) load8(x + i, y0), s0 += y0 * y0;
        if (r >= 16) load8(x + i + 8, y1), s1 += y1 * y1;
        if (r >= 24) load8(x + i + 16, y2), s2 += y2 * y2;
        if (r % 8 != 0) {
            double b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            const T* __restrict t = x + i + (r - r % 8);
            for (std::size_t k = 0; k < r % 8; ++k) b[k] = static_cast<double>(t[k]);
            __builtin_memcpy(&y3, b, sizeof y3);
            y3 *= y3;
            switch (r / 8) {
                case 0: s0 += y3; break;
                case 1: s1 += y3; break;
                case 2: s2 += y3; break;
                default: s3 += y3; break;
            }
        }
        acc[0] = s0;
        acc[1] = s1;
        acc[2] = s2;
        acc[3] = s3;
    }

    double total() const {
        double lane[32];
        __builtin_memcpy(lane, acc, sizeof lane);
        return lane_tree(lane);
    }
};

// Squares summed over values a loop computes: f(i, out, n) fills out[0, n) with the values of
// elements [i, i + n) of [0, count); they are summed as one Lanes run.
constexpr std::size_t kLaneBlock = 256;

template <class T, class Fill>
inline double sum_squares_of(std::size_t count, Fill&& fill) {
    Lanes lanes;
    T buf[kLaneBlock];
    for (std::size_t i = 0; i < count; i += kLaneBlock) {
        const std::size_t n = count - i < kLaneBlock ? count - i : kLaneBlock;
        fill(i, buf, n);
        lanes.add_squares(buf, n);
    }
    return lanes.total();
}
