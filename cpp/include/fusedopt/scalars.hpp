// Per-step scalars of each update rule, as the Python layer derives them in float64.
// A kernel rounds each to the buffer dtype once. Pure data, shared by every SIMD target.
#pragma once

namespace fusedopt {

// What every rule does to a gradient element before using it: clamp to [lo, hi] (value
// clipping; +-inf when off, which changes no bits), then multiply by scale (-1 for maximize,
// times the global-norm clipping coefficient; exact when it is +-1). The caller's gradient
// array is only read.
struct GradTransform {
    double scale = 1.0;
    double lo = -__builtin_inf();
    double hi = __builtin_inf();
};

// torch.optim.SGD. Operands: p, g, [momentum_buffer].
struct SgdScalars {
    double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
    bool nesterov = false;
    bool first_step = false;  // buffer starts as a copy of the gradient (no dampening)
    bool classic = false;     // v = mu*v - lr*g; p += v  (lr inside the velocity, buffer starts at 0)
};

// torch.optim.Adagrad. Operands: p, g, sum.
struct AdagradScalars {
    double clr = 0, weight_decay = 0, eps = 0;
};

// torch.optim.RMSprop. Operands: p, g, square_avg, [momentum_buffer], [grad_avg].
struct RmspropScalars {
    double lr = 0, alpha = 0, eps = 0, weight_decay = 0, momentum = 0;
    bool centered = false;
};

// torch.optim.Adam / AdamW. Operands: p, g, exp_avg, exp_avg_sq, [max_exp_avg_sq].
struct AdamScalars {
    double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
    double step_size = 0;   // lr / (1 - beta1^t)
    double bc2_sqrt = 1;    // sqrt(1 - beta2^t)
    double decay = 1;       // 1 - lr*weight_decay when decoupled, else 1
    bool amsgrad = false, decoupled = false;
};

// torch.optim.Adamax. Operands: p, g, exp_avg, exp_inf.
struct AdamaxScalars {
    double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
    double clr = 0;         // lr / (1 - beta1^t)
};

// torch.optim.NAdam. Operands: p, g, exp_avg, exp_avg_sq.
struct NadamScalars {
    double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
    double bc2 = 1;         // 1 - beta2^t
    double grad_coef = 0;   // -lr*(1-mu_t)/(1-mu_product)
    double avg_coef = 0;    // -lr*mu_{t+1}/(1-mu_product*mu_{t+1})
    double decay = 1;
    bool decoupled = false;
};

// torch.optim.RAdam. Operands: p, g, exp_avg, exp_avg_sq.
struct RadamScalars {
    double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
    double lr = 0, bc1 = 1, bc2_sqrt = 1;
    double rect = 0;        // the variance rectification term r_t
    double decay = 1;
    bool rectified = false; // rho_t > 5
    bool decoupled = false;
};

// Lion (Chen et al. 2023). Operands: p, g, exp_avg.
struct LionScalars {
    double lr = 0, beta1 = 0, beta2 = 0;
    double decay = 1;       // 1 - lr*weight_decay
};

// One pass over the gradients (operand 1): what global-norm clipping and the
// non-finite check need, accumulated in float64 over fixed chunks.
struct NormPartials {
    double sum = 0;         // sum of |g|^p (p = 2 unless a kernel says otherwise)
    double max_abs = 0;
    double min_abs = 0;     // +inf for an empty range
    bool nan = false;
};

}  // namespace fusedopt
