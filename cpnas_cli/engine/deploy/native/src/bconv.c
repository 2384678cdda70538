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

/* Where one tap's input words start, or the geometry shared by the row kernels. */
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

/* `nb` consecutive blocks of a dense conv (same words, weights one after another), or one
 * masked block; inlined with constant nb/masked so each case compiles to its own loop. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
blocks_avx512(const struct cpnas_conv *cv, const uint64_t *image, struct row_geometry g,
              int iw0, int kw0, int kw1, int b, int nb, int masked, int32_t *pop)
{
    int wa = cv->block_word_begin[b], wn = cv->block_word_count[b];
    int64_t block_size = (int64_t)cv->kernel_h * cv->kernel_w * wn * CPNAS_BLOCK;
    const uint64_t *weights = cv->weights + cv->block_weight_offset[b];
    const uint64_t *masks = masked ? cv->masks + cv->block_mask_offset[b] : 0;
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                      _mm512_setzero_si512()};
    for (int kh = g.kh0; kh < g.kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            const uint64_t *x = tap_input(cv, image, g.ih0, iw0, kh, kw) + wa;
            const uint64_t *w = weights + (int64_t)(kh * cv->kernel_w + kw) * wn * CPNAS_BLOCK;
            for (int i = 0; i < wn; i++) {
                __m512i xi = _mm512_set1_epi64((long long)x[i]);
                for (int j = 0; j < nb; j++) {
                    __m512i wi = _mm512_loadu_si512(w + j * block_size + i * CPNAS_BLOCK);
                    __m512i v = masked
                        ? _mm512_ternarylogic_epi64(xi, wi, _mm512_loadu_si512(masks + i * CPNAS_BLOCK), 0x28)
                        : _mm512_xor_si512(xi, wi);  /* 0x28 = (a ^ b) & c */
                    acc[j] = _mm512_add_epi64(acc[j], _mm512_popcnt_epi64(v));
                }
            }
        }
    for (int j = 0; j < nb; j++)
        _mm256_storeu_si256((__m256i *)(pop + (b + j) * CPNAS_BLOCK), _mm512_cvtepi64_epi32(acc[j]));
}

TARGET_AVX512 void general_row_avx512(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                                      int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    struct row_geometry g = row_geometry(cv, oh);
    for (int ow = 0; ow < cv->out_w; ow++) {
        int kw0, kw1, iw0 = ow * cv->stride_w - cv->pad_w;
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        taps_valid[ow] = (g.kh1 - g.kh0) * (kw1 - kw0);
        int32_t *p = pop + (int64_t)ow * pop_stride;
        int b = 0;
        if (cv->masked) {
            for (; b < cv->n_blocks; b++) blocks_avx512(cv, image, g, iw0, kw0, kw1, b, 1, 1, p);
        } else {
            for (; b + 4 <= cv->n_blocks; b += 4) blocks_avx512(cv, image, g, iw0, kw0, kw1, b, 4, 0, p);
            for (; b < cv->n_blocks; b++) blocks_avx512(cv, image, g, iw0, kw0, kw1, b, 1, 0, p);
        }
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

TARGET_AVX2 static inline __attribute__((always_inline)) void
blocks_avx2(const struct cpnas_conv *cv, const uint64_t *image, struct row_geometry g,
            int iw0, int kw0, int kw1, int b, int nb, int masked, int32_t *pop)
{
    int wa = cv->block_word_begin[b], wn = cv->block_word_count[b];
    int64_t block_size = (int64_t)cv->kernel_h * cv->kernel_w * wn * CPNAS_BLOCK;
    const uint64_t *weights = cv->weights + cv->block_weight_offset[b];
    const uint64_t *masks = masked ? cv->masks + cv->block_mask_offset[b] : 0;
    const __m256i zero = _mm256_setzero_si256();
    __m256i bytes[4], sums[4];  /* two ymm (lanes 0-3, 4-7) per block, up to 2 blocks */
    for (int j = 0; j < 2 * nb; j++) bytes[j] = sums[j] = zero;
    int pending = 0;
    for (int kh = g.kh0; kh < g.kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            const uint64_t *x = tap_input(cv, image, g.ih0, iw0, kh, kw) + wa;
            const uint64_t *w = weights + (int64_t)(kh * cv->kernel_w + kw) * wn * CPNAS_BLOCK;
            for (int i = 0; i < wn; i++) {
                __m256i xi = _mm256_set1_epi64x((long long)x[i]);
                for (int j = 0; j < 2 * nb; j++) {
                    const uint64_t *wj = w + (j / 2) * block_size + i * CPNAS_BLOCK + (j % 2) * 4;
                    __m256i v = _mm256_xor_si256(xi, _mm256_loadu_si256((const __m256i *)wj));
                    if (masked)
                        v = _mm256_and_si256(v, _mm256_loadu_si256(
                                                    (const __m256i *)(masks + i * CPNAS_BLOCK + (j % 2) * 4)));
                    bytes[j] = _mm256_add_epi8(bytes[j], popcount_bytes_avx2(v));
                }
                if (++pending == AVX2_FLUSH_WORDS) {
                    for (int j = 0; j < 2 * nb; j++) {
                        sums[j] = _mm256_add_epi64(sums[j], _mm256_sad_epu8(bytes[j], zero));
                        bytes[j] = zero;
                    }
                    pending = 0;
                }
            }
        }
    for (int j = 0; j < 2 * nb; j++) {
        uint64_t lanes[4];
        _mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(sums[j], _mm256_sad_epu8(bytes[j], zero)));
        for (int l = 0; l < 4; l++) pop[b * CPNAS_BLOCK + j * 4 + l] = (int32_t)lanes[l];
    }
}

TARGET_AVX2 void general_row_avx2(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                                  int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    struct row_geometry g = row_geometry(cv, oh);
    for (int ow = 0; ow < cv->out_w; ow++) {
        int kw0, kw1, iw0 = ow * cv->stride_w - cv->pad_w;
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        taps_valid[ow] = (g.kh1 - g.kh0) * (kw1 - kw0);
        int32_t *p = pop + (int64_t)ow * pop_stride;
        int b = 0;
        if (cv->masked) {
            for (; b < cv->n_blocks; b++) blocks_avx2(cv, image, g, iw0, kw0, kw1, b, 1, 1, p);
        } else {
            for (; b + 2 <= cv->n_blocks; b += 2) blocks_avx2(cv, image, g, iw0, kw0, kw1, b, 2, 0, p);
            for (; b < cv->n_blocks; b++) blocks_avx2(cv, image, g, iw0, kw0, kw1, b, 1, 0, p);
        }
    }
}
#endif
