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

static inline __attribute__((always_inline)) void
epilogue_pixels(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws, pack_fn pack)
{
    const float *beta = cv->beta, *scale = cv->bn_scale, *shift = cv->bn_shift;
    for (int ow = s->ow0; ow < s->ow1; ow++) {
        int i = ow - s->ow0;
        int32_t k = ws->taps[i] * cv->group_in_c;
        const int32_t *d = ws->pop + (int64_t)i * ws->pop_stride;
        const float *r = s->residual ? s->residual + (int64_t)ow * cv->out_c : 0;
        float *y = s->out ? s->out + (int64_t)ow * cv->out_c : ws->pixel;
        for (int o = 0; o < cv->out_c; o++) {
            float v = (float)(k - 2 * d[o]) * beta[o];
            if (scale) v = fmaf(v, scale[o], shift[o]);
            if (r) v = v + r[o];
            y[o] = v;
        }
        if (s->out_bits) pack(y, cv->out_c, s->out_bits + (int64_t)ow * cv->out_words);
    }
}

#endif
