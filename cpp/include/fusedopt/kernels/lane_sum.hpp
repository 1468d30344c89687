// Float64 sums in one fixed order that vectorizes without reassociation (so no -ffast-math and
// the same bits on every SIMD target): element i of a run goes to lane i % 8, each lane a plain
// sequential sum, and the lanes combine as ((0+1)+(2+3))+((4+5)+(6+7)). A run fed in pieces
// keeps every piece but the last a multiple of 8 long. reference.py's _lane_sum computes the
// same bits. Included inside a per-target anonymous namespace.

struct Lanes {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};

    // Adds x[i]^2 (in float64) for i < n.
    template <class T>
    void add_squares(const T* __restrict x, std::size_t n) {
        double a[8];
        for (int j = 0; j < 8; ++j) a[j] = acc[j];
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; ++j) {
                const double y = static_cast<double>(x[i + j]);
                a[j] += y * y;
            }
        for (int j = 0; i + static_cast<std::size_t>(j) < n; ++j) {
            const double y = static_cast<double>(x[i + static_cast<std::size_t>(j)]);
            a[j] += y * y;
        }
        for (int j = 0; j < 8; ++j) acc[j] = a[j];
    }
    double total() const { return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); }
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
