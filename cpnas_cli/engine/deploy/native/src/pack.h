/* Binarize and bit-pack one NHWC pixel, inlined into the kernels that pack as they go: channel c
 * becomes bit c%64 of word c/64, 1 where x >= 0 (so -0.0 gives +1, as hard_sign does; NaN gives
 * 0), unused bits of the last word 0. The vector variants compare 16 (AVX-512) or 8 (AVX2)
 * floats at once and keep the mask bits. */
#ifndef CPNAS_PACK_H
#define CPNAS_PACK_H

#include "native.h"

#if CPNAS_X86
#include <immintrin.h>
#endif

static inline __attribute__((always_inline)) void pack_pixel_portable_inline(const float *x, int channels, uint64_t *bits)
{
    int words = (channels + 63) / 64;
    for (int w = 0; w < words; w++) {
        uint64_t word = 0;
        int end = channels - 64 * w < 64 ? channels - 64 * w : 64;
        for (int j = 0; j < end; j++)
            word |= (uint64_t)(x[64 * w + j] >= 0.0f) << j;
        bits[w] = word;
    }
}

#if CPNAS_X86
TARGET_AVX2 static inline __attribute__((always_inline)) void pack_pixel_avx2_inline(const float *x, int channels,
                                                                                      uint64_t *bits)
{
    const __m256 zero = _mm256_setzero_ps();
    int words = (channels + 63) / 64;
    for (int w = 0; w < words; w++) {
        uint64_t word = 0;
        int base = 64 * w, end = channels - base < 64 ? channels - base : 64, j = 0;
        for (; j + 8 <= end; j += 8) {
            __m256 ge = _mm256_cmp_ps(_mm256_loadu_ps(x + base + j), zero, _CMP_GE_OQ);
            word |= (uint64_t)(uint32_t)_mm256_movemask_ps(ge) << j;
        }
        for (; j < end; j++)
            word |= (uint64_t)(x[base + j] >= 0.0f) << j;
        bits[w] = word;
    }
}

TARGET_AVX512 static inline __attribute__((always_inline)) void pack_pixel_avx512_inline(const float *x, int channels,
                                                                                          uint64_t *bits)
{
    const __m512 zero = _mm512_setzero_ps();
    int words = (channels + 63) / 64;
    for (int w = 0; w < words; w++) {
        int base = 64 * w, end = channels - base < 64 ? channels - base : 64;
        if (end == 64) {  /* a whole word: four compares, no masks */
            uint64_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + base), zero, _CMP_GE_OQ);
            uint64_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + base + 16), zero, _CMP_GE_OQ);
            uint64_t m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + base + 32), zero, _CMP_GE_OQ);
            uint64_t m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + base + 48), zero, _CMP_GE_OQ);
            bits[w] = m0 | m1 << 16 | m2 << 32 | m3 << 48;
            continue;
        }
        uint64_t word = 0;
        for (int j = 0; j < end; j += 16) {
            /* The masked load reads nothing past the tensor; lanes past `end` are masked off
             * again because 0.0 >= 0 would set them. */
            __mmask16 live = end - j >= 16 ? 0xFFFF : (__mmask16)((1u << (end - j)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(live, x + base + j);
            word |= (uint64_t)_mm512_mask_cmp_ps_mask(live, v, zero, _CMP_GE_OQ) << j;
        }
        bits[w] = word;
    }
}
#endif

#endif
