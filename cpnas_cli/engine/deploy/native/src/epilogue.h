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

#if CPNAS_X86
#include <immintrin.h>
#endif

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

#if CPNAS_X86
/* ---- AVX-512: the epilogue on counters in registers (lanes.c, depthwise.c) ----------------- */

/* What the epilogue reads, copied out of the conv struct once per segment: the compiler cannot
 * keep struct fields in registers across the vector stores (intrinsic stores may alias them). */
struct epilogue {
    const float *beta, *scale, *shift;
    int out_c, out_words, group_out_c;
};

/* The epilogue of 16 counters d (int32 lanes) of output channels o0.. (lanes `live`) of one
 * pixel: y = fma(float(k - 2d) * beta, scale, shift) [+ residual], rounded as epilogue.h does
 * (the same IEEE operations in the same order), stored as floats and/or as 16 sign bits (o0 is
 * a multiple of 16, so they fill one little-endian uint16 of the pixel's packed words). */
TARGET_AVX512 static inline __attribute__((always_inline)) void
epilogue16_avx512(const struct epilogue *e, __m512i d, int32_t k, int o0, __mmask16 live, const float *res,
                  float *out, uint16_t *bits)
{
    /* acc = K - 2d as one FMA on floats: exact, every value is an integer below 2^24 */
    __m512 acc = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), _mm512_cvtepi32_ps(d), _mm512_set1_ps((float)k));
    __m512 v = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(live, e->beta + o0));
    if (e->scale)
        v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(live, e->scale + o0), _mm512_maskz_loadu_ps(live, e->shift + o0));
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, res + o0));
    if (out) _mm512_mask_storeu_ps(out + o0, live, v);
    if (bits) bits[o0 / 16] = (uint16_t)_mm512_mask_cmp_ps_mask(live, v, _mm512_setzero_ps(), _CMP_GE_OQ);
}

/* The epilogue's pointers and sizes of a layer. */
static inline struct epilogue epilogue_of(const struct cpnas_conv *cv)
{
    struct epilogue e = {cv->beta, cv->bn_scale, cv->bn_shift, cv->out_c, cv->out_words, cv->group_out_c};
    return e;
}

/* Bits of a pixel's last packed word past out_c: the epilogue wrote whole uint16s up to out_c. */
static inline void clear_bits_tail(const struct epilogue *e, uint64_t *pixel_bits)
{
    uint16_t *bits = (uint16_t *)pixel_bits;
    for (int q = (e->out_c + 15) / 16; q < e->out_words * 4; q++) bits[q] = 0;
}
#endif

#endif
