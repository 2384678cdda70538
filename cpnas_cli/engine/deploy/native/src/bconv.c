/* The general 1-bit conv kernel: dense and grouped convs of any kernel size, stride, padding
 * and dilation (1x1 included), one output row per call.
 *
 * Design: vectorise over output channels, not over the channel words of the reduction. A block
 * of 8 output channels holds, per tap and per input word, the 8 channels' weight words side by
 * side; the input word is broadcast and XORed with all 8, popcounted and added to 8 per-channel
 * counters. So a 64-channel 1x1 conv (one word per pixel) still fills the vector, and the
 * counters leave the loop already laid out as NHWC output channels.
 * Grouped convs: a lane must count only its group's input bits, so each block carries a mask
 * per word ((x ^ w) & m, one vpternlog on AVX-512) and loops over the words its lanes' groups
 * touch. Dense convs need no mask: unused channel bits are 0 in input and weights alike.
 * Padded taps are skipped: tap_range gives each output pixel its in-bounds taps.
 *
 * AVX-512: VPOPCNTQ on 8 lanes; dense convs run 4 blocks (32 channels) per broadcast input word.
 * AVX2 has no vector popcount: the nibble-LUT method (Mula: two VPSHUFB lookups per byte) into
 * byte counters, summed into 64-bit lanes by VPSADBW every 31 words before a byte can overflow.
 * Portable: __builtin_popcountll per lane.
 */
#include "native.h"

#if CPNAS_X86
#include <immintrin.h>
#endif

/* What every pixel of an output row shares: its in-bounds kernel rows and first input row. */
struct row_geometry {
    int kh0, kh1, ih0;
};

static inline struct row_geometry row_geometry(const struct cpnas_conv *cv, int oh)
{
    struct row_geometry g;
    tap_range(oh, cv->stride_h, cv->pad_h, cv->dil_h, cv->kernel_h, cv->in_h, &g.kh0, &g.kh1);
    g.ih0 = oh * cv->stride_h - cv->pad_h;
    return g;
}

/* The output columns [*lo, *hi) whose taps are all in bounds (no padding along w). */
static inline void interior_columns(const struct cpnas_conv *cv, int *lo, int *hi)
{
    int s = cv->stride_w, reach = (cv->kernel_w - 1) * cv->dil_w;
    *lo = (cv->pad_w + s - 1) / s;
    int last = cv->in_w - 1 - reach + cv->pad_w;  /* ow*s <= last */
    *hi = last < 0 ? 0 : last / s + 1;
    if (*hi > cv->out_w) *hi = cv->out_w;
    if (*hi < *lo) *hi = *lo;
}

/* taps_valid[ow]: the in-bounds taps of each output pixel of the row. */
static inline void count_taps(const struct cpnas_conv *cv, struct row_geometry g, int32_t *taps_valid)
{
    for (int ow = 0; ow < cv->out_w; ow++) {
        int kw0, kw1;
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        taps_valid[ow] = (g.kh1 - g.kh0) * (kw1 - kw0);
    }
}

static inline const uint64_t *tap_input(const struct cpnas_conv *cv, const uint64_t *image,
                                        int ih0, int iw0, int kh, int kw)
{
    int ih = ih0 + kh * cv->dil_h, iw = iw0 + kw * cv->dil_w;
    return image + ((int64_t)ih * cv->in_w + iw) * cv->in_words;
}

void general_row_portable(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                          int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    struct row_geometry g = row_geometry(cv, oh);
    for (int ow = 0; ow < cv->out_w; ow++) {
        int kw0, kw1, iw0 = ow * cv->stride_w - cv->pad_w;
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        taps_valid[ow] = (g.kh1 - g.kh0) * (kw1 - kw0);
        for (int b = 0; b < cv->n_blocks; b++) {
            int wa = cv->block_word_begin[b], wn = cv->block_word_count[b];
            const uint64_t *weights = cv->weights + cv->block_weight_offset[b];
            const uint64_t *masks = cv->masked ? cv->masks + cv->block_mask_offset[b] : 0;
            int32_t d[CPNAS_BLOCK] = {0};
            for (int kh = g.kh0; kh < g.kh1; kh++)
                for (int kw = kw0; kw < kw1; kw++) {
                    const uint64_t *x = tap_input(cv, image, g.ih0, iw0, kh, kw) + wa;
                    const uint64_t *w = weights + (int64_t)(kh * cv->kernel_w + kw) * wn * CPNAS_BLOCK;
                    for (int i = 0; i < wn; i++)
                        for (int l = 0; l < CPNAS_BLOCK; l++) {
                            uint64_t v = x[i] ^ w[i * CPNAS_BLOCK + l];
                            if (masks) v &= masks[i * CPNAS_BLOCK + l];
                            d[l] += __builtin_popcountll(v);
                        }
                }
            for (int l = 0; l < CPNAS_BLOCK; l++) pop[ow * pop_stride + b * CPNAS_BLOCK + l] = d[l];
        }
    }
}

#if CPNAS_X86

/* ---- AVX-512 ---------------------------------------------------------------------------- */

/* `nb` consecutive blocks (dense: same words, weights one after another; masked: nb = 1) for
 * `np` output pixels ow, ow+1, ... sharing the kw range [kw0, kw1). Several pixels reuse each
 * weight load: a block's weights then stay in L1 for the whole row instead of streaming from
 * L2 once per pixel (a 256-channel 3x3 layer has 74 KB of weights). Inlined with constant
 * nb / np / masked, so each case compiles to its own loop with 4 x 4 accumulators at most. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
blocks_avx512(const struct cpnas_conv *cv, const uint64_t *image, struct row_geometry g, int ow,
              int np, int kw0, int kw1, int b, int nb, int masked, int32_t *pop, int pop_stride)
{
    int wa = cv->block_word_begin[b], wn = cv->block_word_count[b];
    int64_t block_size = (int64_t)cv->kernel_h * cv->kernel_w * wn * CPNAS_BLOCK;
    int64_t pixel_step = (int64_t)cv->stride_w * cv->in_words;
    const uint64_t *weights = cv->weights + cv->block_weight_offset[b];
    const uint64_t *masks = masked ? cv->masks + cv->block_mask_offset[b] : 0;
    int iw0 = ow * cv->stride_w - cv->pad_w;
    __m512i acc[4][4];
    for (int p = 0; p < np; p++)
        for (int j = 0; j < nb; j++) acc[p][j] = _mm512_setzero_si512();
    for (int kh = g.kh0; kh < g.kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            const uint64_t *x = tap_input(cv, image, g.ih0, iw0, kh, kw) + wa;
            const uint64_t *w = weights + (int64_t)(kh * cv->kernel_w + kw) * wn * CPNAS_BLOCK;
            for (int i = 0; i < wn; i++) {
                __m512i mask = masked ? _mm512_loadu_si512(masks + i * CPNAS_BLOCK) : _mm512_setzero_si512();
                for (int j = 0; j < nb; j++) {
                    __m512i wj = _mm512_loadu_si512(w + j * block_size + i * CPNAS_BLOCK);
                    for (int p = 0; p < np; p++) {
                        __m512i xp = _mm512_set1_epi64((long long)x[p * pixel_step + i]);
                        __m512i v = masked ? _mm512_ternarylogic_epi64(xp, wj, mask, 0x28) /* (a^b)&c */
                                           : _mm512_xor_si512(xp, wj);
                        acc[p][j] = _mm512_add_epi64(acc[p][j], _mm512_popcnt_epi64(v));
                    }
                }
            }
        }
    for (int p = 0; p < np; p++)
        for (int j = 0; j < nb; j++)
            _mm256_storeu_si256((__m256i *)(pop + (int64_t)(ow + p) * pop_stride + (b + j) * CPNAS_BLOCK),
                                _mm512_cvtepi64_epi32(acc[p][j]));
}

/* One row for blocks b .. b+nb-1: border columns one by one, interior columns four at a time. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
block_row_avx512(const struct cpnas_conv *cv, const uint64_t *image, struct row_geometry g,
                 int lo, int hi, int b, int nb, int masked, int32_t *pop, int pop_stride)
{
    int ow = 0, kw0, kw1;
    for (; ow < cv->out_w; ow++) {
        if (ow >= lo && ow + 4 <= hi) {
            blocks_avx512(cv, image, g, ow, 4, 0, cv->kernel_w, b, nb, masked, pop, pop_stride);
            ow += 3;
            continue;
        }
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        blocks_avx512(cv, image, g, ow, 1, kw0, kw1, b, nb, masked, pop, pop_stride);
    }
}

TARGET_AVX512 void general_row_avx512(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                                      int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    struct row_geometry g = row_geometry(cv, oh);
    int lo, hi, b = 0;
    count_taps(cv, g, taps_valid);
    interior_columns(cv, &lo, &hi);
    if (cv->masked) {
        for (; b < cv->n_blocks; b++) block_row_avx512(cv, image, g, lo, hi, b, 1, 1, pop, pop_stride);
    } else {
        for (; b + 4 <= cv->n_blocks; b += 4) block_row_avx512(cv, image, g, lo, hi, b, 4, 0, pop, pop_stride);
        for (; b < cv->n_blocks; b++) block_row_avx512(cv, image, g, lo, hi, b, 1, 0, pop, pop_stride);
    }
}

/* ---- AVX2 ------------------------------------------------------------------------------- */

/* Per-byte popcount of v by two 16-entry table lookups (one per nibble). */
TARGET_AVX2 static inline __m256i popcount_bytes_avx2(__m256i v)
{
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    __m256i low = _mm256_shuffle_epi8(table, _mm256_and_si256(v, nibble));
    __m256i high = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
    return _mm256_add_epi8(low, high);
}

/* Byte counters gain at most 8 per word: flush into 64-bit lanes before 32 words. */
#define AVX2_FLUSH_WORDS 31

/* `nb` blocks x `np` output pixels, as blocks_avx512; each block is two ymm (lanes 0-3, 4-7)
 * of byte counters, summed into 64-bit lanes by VPSADBW every AVX2_FLUSH_WORDS words. */
TARGET_AVX2 static inline __attribute__((always_inline)) void
blocks_avx2(const struct cpnas_conv *cv, const uint64_t *image, struct row_geometry g, int ow,
            int np, int kw0, int kw1, int b, int nb, int masked, int32_t *pop, int pop_stride)
{
    int wa = cv->block_word_begin[b], wn = cv->block_word_count[b];
    int64_t block_size = (int64_t)cv->kernel_h * cv->kernel_w * wn * CPNAS_BLOCK;
    int64_t pixel_step = (int64_t)cv->stride_w * cv->in_words;
    const uint64_t *weights = cv->weights + cv->block_weight_offset[b];
    const uint64_t *masks = masked ? cv->masks + cv->block_mask_offset[b] : 0;
    int iw0 = ow * cv->stride_w - cv->pad_w;
    const __m256i zero = _mm256_setzero_si256();
    __m256i bytes[2][4], sums[2][4];  /* [pixel][block * 2 + half] */
    for (int p = 0; p < np; p++)
        for (int j = 0; j < 2 * nb; j++) bytes[p][j] = sums[p][j] = zero;
    int pending = 0;
    for (int kh = g.kh0; kh < g.kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            const uint64_t *x = tap_input(cv, image, g.ih0, iw0, kh, kw) + wa;
            const uint64_t *w = weights + (int64_t)(kh * cv->kernel_w + kw) * wn * CPNAS_BLOCK;
            for (int i = 0; i < wn; i++) {
                for (int j = 0; j < 2 * nb; j++) {
                    const uint64_t *wj = w + (j / 2) * block_size + i * CPNAS_BLOCK + (j % 2) * 4;
                    __m256i weight = _mm256_loadu_si256((const __m256i *)wj);
                    __m256i mask = masked ? _mm256_loadu_si256((const __m256i *)(masks + i * CPNAS_BLOCK + (j % 2) * 4))
                                          : zero;
                    for (int p = 0; p < np; p++) {
                        __m256i v = _mm256_xor_si256(_mm256_set1_epi64x((long long)x[p * pixel_step + i]), weight);
                        if (masked) v = _mm256_and_si256(v, mask);
                        bytes[p][j] = _mm256_add_epi8(bytes[p][j], popcount_bytes_avx2(v));
                    }
                }
                if (++pending == AVX2_FLUSH_WORDS) {
                    for (int p = 0; p < np; p++)
                        for (int j = 0; j < 2 * nb; j++) {
                            sums[p][j] = _mm256_add_epi64(sums[p][j], _mm256_sad_epu8(bytes[p][j], zero));
                            bytes[p][j] = zero;
                        }
                    pending = 0;
                }
            }
        }
    for (int p = 0; p < np; p++)
        for (int j = 0; j < 2 * nb; j++) {
            uint64_t lanes[4];
            _mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(sums[p][j], _mm256_sad_epu8(bytes[p][j], zero)));
            for (int l = 0; l < 4; l++) pop[(int64_t)(ow + p) * pop_stride + b * CPNAS_BLOCK + j * 4 + l] = (int32_t)lanes[l];
        }
}

/* One row for blocks b .. b+nb-1. A masked block runs interior columns two at a time (its mask
 * load is shared too); dense pairs of blocks do not: 16 ymm counters would spill (measured). */
TARGET_AVX2 static inline __attribute__((always_inline)) void
block_row_avx2(const struct cpnas_conv *cv, const uint64_t *image, struct row_geometry g,
               int lo, int hi, int b, int nb, int masked, int32_t *pop, int pop_stride)
{
    int kw0, kw1;
    for (int ow = 0; ow < cv->out_w; ow++) {
        if (masked && ow >= lo && ow + 2 <= hi) {
            blocks_avx2(cv, image, g, ow, 2, 0, cv->kernel_w, b, nb, masked, pop, pop_stride);
            ow += 1;
            continue;
        }
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        blocks_avx2(cv, image, g, ow, 1, kw0, kw1, b, nb, masked, pop, pop_stride);
    }
}

TARGET_AVX2 void general_row_avx2(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                                  int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    struct row_geometry g = row_geometry(cv, oh);
    int lo, hi, b = 0;
    count_taps(cv, g, taps_valid);
    interior_columns(cv, &lo, &hi);
    if (cv->masked) {
        for (; b < cv->n_blocks; b++) block_row_avx2(cv, image, g, lo, hi, b, 1, 1, pop, pop_stride);
    } else {
        for (; b + 2 <= cv->n_blocks; b += 2) block_row_avx2(cv, image, g, lo, hi, b, 2, 0, pop, pop_stride);
        for (; b < cv->n_blocks; b++) block_row_avx2(cv, image, g, lo, hi, b, 1, 0, pop, pop_stride);
    }
}
#endif
