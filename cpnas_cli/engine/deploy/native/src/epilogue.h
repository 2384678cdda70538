/* The epilogue of the kernels that count first (AVX2, portable, depth-wise): for each pixel of
 * a segment, y = fma(float(K - 2d) * beta, bn_scale, bn_shift) [+ residual] from the counts d in
 * the scratch, written as NHWC float32 or packed into output bits. Inlined into each ISA's
 * kernel, so it is auto-vectorised for that ISA: fmaf becomes vfmadd where the target has FMA
 * (one rounding, as torch's addcmul and eval BatchNorm), libm's correctly rounded fmaf on the
 * portable path. -ffp-contract=off keeps acc * beta and + residual rounded separately. */
#ifndef CPNAS_EPILOGUE_H
#define CPNAS_EPILOGUE_H

#include <math.h>
#include "native.h"

/* One pixel's floats; each case a branch-free loop the compiler vectorises (restrict: the
 * buffers never overlap; a scalar int -> float conversion per element would also carry a false
 * dependency from one element to the next). */
static inline __attribute__((always_inline)) void
epilogue_floats(int n, int32_t k, const int32_t *restrict d, const float *restrict beta, const float *restrict scale,
                const float *restrict shift, const float *restrict r, float *restrict y)
{
    if (scale && r) {
        for (int o = 0; o < n; o++) y[o] = fmaf((float)(k - 2 * d[o]) * beta[o], scale[o], shift[o]) + r[o];
    } else if (scale) {
        for (int o = 0; o < n; o++) y[o] = fmaf((float)(k - 2 * d[o]) * beta[o], scale[o], shift[o]);
    } else if (r) {
        for (int o = 0; o < n; o++) y[o] = (float)(k - 2 * d[o]) * beta[o] + r[o];
    } else {
        for (int o = 0; o < n; o++) y[o] = (float)(k - 2 * d[o]) * beta[o];
    }
}

static inline __attribute__((always_inline)) void
epilogue_pixels(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws, pack_fn pack)
{
    for (int ow = s->ow0; ow < s->ow1; ow++) {
        int i = ow - s->ow0;
        const float *r = s->residual ? s->residual + (int64_t)ow * cv->out_c : 0;
        float *y = s->out ? s->out + (int64_t)ow * cv->out_c : ws->pixel;
        epilogue_floats(cv->out_c, ws->taps[i] * cv->group_in_c, ws->pop + (int64_t)i * ws->pop_stride, cv->beta,
                        cv->bn_scale, cv->bn_shift, r, y);
        if (s->out_bits) pack(y, cv->out_c, s->out_bits + (int64_t)ow * cv->out_words);
    }
}

#endif
