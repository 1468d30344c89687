// int8 optimizer state (state_dtype="int8"): block-wise dynamic quantization, as in Dettmers et
// al., "8-bit Optimizers via Block-wise Quantization" (2022). Every block of kQuantBlock elements
// keeps a float32 scale, its largest magnitude (absmax), and one byte per element: the code of
// the dynamic tree map's value nearest to x / absmax. The map is bitsandbytes' create_dynamic_map:
// decade i = 0..6 holds n_i values evenly spaced in [10^(i-7), 10^(i-6)) (the midpoints of
// n_i equal steps), n_i = 2^i for signed state (a sign bit and 128 magnitudes: zero, 1 and the
// decades, the last with 63 values) and 2^(i+1) for non-negative state (zero, 254 values, and 1).
// Both hold 1, so a block's largest value is stored exactly and a stored state quantizes to
// itself again (a conversion on load changes nothing). So entries 10^7 times smaller than
// their block's largest still keep a value (Adam's second moment: a zero there would turn the
// step into m / eps), with 1 to 2 significant digits; the largest keep 2 to 3.
// The same float32 arithmetic, without contractions, on every target; reference.py (quantize)
// computes the same bits. Included inside a per-target anonymous namespace.

constexpr int kDecades = 7;  // (kQuantBlock: kernel_table.hpp)

// One code book and the constants its quantizer compares with (all float32).
struct QuantMap {
    float value[256];          // code -> value in [-1, 1]
    float zero;                // below it: code 0
    float above[kDecades];     // above[i] (i >= 1): where decade i's values become nearer
    float first[kDecades];     // decade i's smallest value
    float inv_step[kDecades];  // 1 / its spacing
    std::int32_t base[kDecades], last[kDecades];  // its first code, its last index (n_i - 1)
    float one;                 // from here on, the top code (the value 1)
    std::int32_t top;          // 127 (signed: of the magnitude) or 255
};

inline QuantMap make_quant_map(bool is_signed) {
    constexpr double kPower[kDecades] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    QuantMap q{};
    std::int32_t code = 1;
    for (int i = 0; i < kDecades; ++i) {
        const std::int32_t n = is_signed ? (i + 1 < kDecades ? std::int32_t(1) << i : 63) : std::int32_t(2) << i;
        const double step = 0.9 / n;
        q.base[i] = code;
        q.last[i] = n - 1;
        q.first[i] = static_cast<float>(kPower[i] * (0.1 + 0.5 * step));
        q.inv_step[i] = static_cast<float>(1.0 / (kPower[i] * step));
        for (std::int32_t j = 0; j < n; ++j) q.value[code + j] = static_cast<float>(kPower[i] * (0.1 + (j + 0.5) * step));
        code += n;
    }
    q.value[0] = 0.0f;
    q.top = is_signed ? 127 : 255;
    q.value[q.top] = 1.0f;
    if (is_signed) {
        for (int c = 1; c < 128; ++c) q.value[128 + c] = -q.value[c];
        q.value[128] = 0.0f;  // never written (a zero magnitude has no sign)
    }
    q.zero = static_cast<float>(0.5 * double(q.value[1]));
    for (int i = 1; i < kDecades; ++i)
        q.above[i] = static_cast<float>(0.5 * (double(q.value[q.base[i] - 1]) + double(q.value[q.base[i]])));
    q.above[0] = 0.0f;
    q.one = static_cast<float>(0.5 * (double(q.value[q.top - 1]) + 1.0));
    return q;
}

inline const QuantMap& quant_map(bool is_signed) {
    static const QuantMap signed_map = make_quant_map(true), nonnegative_map = make_quant_map(false);
    return is_signed ? signed_map : nonnegative_map;
}

// x[0, n) -> codes, returning the block's scale: its largest magnitude (NaN if it holds a NaN;
// a block with a NaN or an infinity reads back as NaN: its codes are 0 and its scale is not finite).
template <bool Signed>
float quantize_block(const float* __restrict x, std::uint8_t* __restrict out, std::size_t n, const QuantMap& q) {
    float absmax = 0.0f;
    std::uint32_t nan = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const float a = __builtin_fabsf(x[i]);
        absmax = a > absmax ? a : absmax;
        nan |= a != a;
    }
    if (nan) absmax = __builtin_nanf("");
    const float inv = absmax > 0.0f && absmax <= __FLT_MAX__ ? 1.0f / absmax : 0.0f;
    const float zero = q.zero, one = q.one;
    const std::int32_t top = q.top;
    float above[kDecades], first[kDecades], inv_step[kDecades];
    std::int32_t base[kDecades], last[kDecades];
    for (int k = 0; k < kDecades; ++k) {
        above[k] = q.above[k];
        first[k] = q.first[k];
        inv_step[k] = q.inv_step[k];
        base[k] = q.base[k];
        last[k] = q.last[k];
    }
    for (std::size_t i = 0; i < n; ++i) {
        float a = __builtin_fabsf(x[i]) * inv;
        a = a == a ? a : 0.0f;  // (inv is 0 for a non-finite block: 0 * inf)
        float f = first[0], s = inv_step[0];
        std::int32_t b = base[0], l = last[0];
        for (int k = 1; k < kDecades; ++k) {  // the decade: how many thresholds a reaches
            const bool ge = a >= above[k];
            f = ge ? first[k] : f;
            s = ge ? inv_step[k] : s;
            b = ge ? base[k] : b;
            l = ge ? last[k] : l;
        }
        std::int32_t j = static_cast<std::int32_t>((a - f) * s + 0.5f);  // > 0 (see make_quant_map)
        j = j < l ? j : l;
        std::int32_t code = a < zero ? 0 : a >= one ? top : b + j;
        if (Signed) code = code != 0 && x[i] < 0.0f ? code | 128 : code;
        out[i] = static_cast<std::uint8_t>(code);
    }
    return absmax;
}

inline void dequantize_block(const std::uint8_t* __restrict codes, float* __restrict out, std::size_t n,
                             const float* __restrict value, float scale) {
    for (std::size_t i = 0; i < n; ++i) out[i] = value[codes[i]] * scale;
}
