// x . y in T's own arithmetic (float32 or float64), in one fixed order: the same bits on every
// SIMD target and every machine. (A BLAS dot's order is the CPU's: OpenBLAS's float64 dot of two
// elements is a fused multiply-add on AVX-512 Intel CPUs and two roundings on Zen 3, so LBFGS
// runs through NumPy's dot parted from torch's by CPU.) The order is Lanes' (lane_sum.hpp):
// product k goes to lane k % 32, each lane a sequential sum from +0, and the 32 lanes added as
// Lanes::total adds them. Products are rounded before they are added (no fused multiply-add:
// -ffp-contract=off), so two elements give x0*y0 + x1*y1 as torch's (MKL's) dot does.
// reference.py's lane_dot computes the same bits. Included inside a per-target namespace.
template <class T>
T lane_dot(const T* __restrict x, const T* __restrict y, std::size_t n) {
    typedef T V __attribute__((vector_size(32)));
    constexpr int kPer = 32 / sizeof(T);  // lanes per vector
    constexpr int kVectors = 32 / kPer;   // vector v holds lanes [v * kPer, (v + 1) * kPer)
    V s[kVectors] = {};
    auto load = [](const T* p) {
        V v;
        __builtin_memcpy(&v, p, sizeof v);
        return v;
    };
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int v = 0; v < kVectors; ++v) s[v] += load(x + i + v * kPer) * load(y + i + v * kPer);
    if (i < n) {  // the last < 32 products, zero padded (adding +0 changes no lane: none is -0)
        T tail[32] = {};
        for (std::size_t k = 0; i + k < n; ++k) tail[k] = x[i + k] * y[i + k];
        for (int v = 0; v < kVectors; ++v) s[v] += load(tail + v * kPer);
    }
    T lane[32];
    __builtin_memcpy(lane, s, sizeof lane);
    T a[8];
    for (int j = 0; j < 8; ++j) a[j] = (lane[j] + lane[8 + j]) + (lane[16 + j] + lane[24 + j]);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
