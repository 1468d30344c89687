// x . y in T's own arithmetic (float32 or float64), in one fixed order: the same bits on every
// SIMD target, every machine and any thread count. (A BLAS dot's order is the CPU's: OpenBLAS's
// float64 dot of two elements is a fused multiply-add on AVX-512 Intel CPUs and two roundings on
// Zen 3, so LBFGS runs through NumPy's dot parted from torch's by CPU.) The run is cut into
// chunks of kDotChunk elements (a grid that depends on n only). In each chunk, product k goes to
// lane k % 32, each lane a sequential sum from +0; the chunks' lanes are added in chunk order,
// then the 32 lanes by lane_tree (lane_sum.hpp), as Lanes::total adds them. Products are rounded before they
// are added (no fused multiply-add: -ffp-contract=off), so two elements give x0*y0 + x1*y1 as
// torch's (MKL's) dot does. reference.py's lane_dot computes the same bits. Included inside a
// per-target namespace.
constexpr std::size_t kDotChunk = 65536;  // (a multiple of 32)

// The 32 lanes of x . y over n elements, each from +0.
template <class T>
void dot_lanes(const T* __restrict x, const T* __restrict y, std::size_t n, T* lane) {
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
    __builtin_memcpy(lane, s, sizeof s);
}

template <class T>
T lane_dot(const T* x, const T* y, std::size_t n, const Exec& e) {
    T lane[32];
    const std::size_t chunks = n > kDotChunk ? (n + kDotChunk - 1) / kDotChunk : 1;
    if (chunks == 1) {
        dot_lanes(x, y, n, lane);
    } else {  // each chunk's lanes (on the team for a long run), then added in chunk order
        std::vector<T> parts(chunks * 32);
        auto piece = [&](std::size_t c) {
            const std::size_t lo = c * kDotChunk, len = n - lo < kDotChunk ? n - lo : kDotChunk;
            dot_lanes(x + lo, y + lo, len, &parts[c * 32]);
        };
        if (splits_work(n, e))
            run_on_team(chunks, e.threads, piece);
        else
            for (std::size_t c = 0; c < chunks; ++c) piece(c);
        __builtin_memcpy(lane, parts.data(), sizeof lane);
        for (std::size_t c = 1; c < chunks; ++c)
            for (int j = 0; j < 32; ++j) lane[j] += parts[c * 32 + j];
    }
    return lane_tree(lane);
}
