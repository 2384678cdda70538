/* The depth-wise 1-bit conv kernel (groups = in_c = out_c): each channel sees only its own
 * bit, so a popcount across channels is useless. Instead the per-tap XOR of a 64-channel input
 * word with the weight word is spread into 64 byte counters, one per channel, and the counters
 * are summed over the taps (at most 255, checked by the caller).
 *   AVX-512BW: VPMOVM2B turns the 64-bit XOR (as a mask register) into 64 bytes of 0/-1, so a
 *              tap costs XOR, KMOV, VPMOVM2B, VPSUBB for 64 channels; up to 4 words' counters
 *              stay in registers while the taps run (measured 1.3x over words outer), and the
 *              epilogue runs on them there (16 channels per step, widened from bytes).
 *   AVX2:      the same bytes from a broadcast, a byte shuffle and a compare per 32 channels.
 *   Portable:  one bit at a time.
 * Weights: [tap][in_words] words, packed along channels like the input.
 */
#include "epilogue.h"
#include "pack.h"

#if CPNAS_X86
#include <immintrin.h>
#endif

static void depthwise_row_portable(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                            int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    int kh0, kh1, ih0 = oh * cv->stride_h - cv->pad_h;
    tap_range(oh, cv->stride_h, cv->pad_h, cv->dil_h, cv->kernel_h, cv->in_h, &kh0, &kh1);
    for (int ow = 0; ow < cv->out_w; ow++) {
        int kw0, kw1, iw0 = ow * cv->stride_w - cv->pad_w;
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        taps_valid[ow] = (kh1 - kh0) * (kw1 - kw0);
        int32_t *p = pop + (int64_t)ow * pop_stride;
        for (int c = 0; c < cv->in_words * 64; c++) p[c] = 0;
        for (int kh = kh0; kh < kh1; kh++)
            for (int kw = kw0; kw < kw1; kw++) {
                const uint64_t *x = image + ((int64_t)(ih0 + kh * cv->dil_h) * cv->in_w + iw0 + kw * cv->dil_w) * cv->in_words;
                const uint64_t *w = (const uint64_t *)cv->weights + (int64_t)(kh * cv->kernel_w + kw) * cv->in_words;
                for (int i = 0; i < cv->in_words; i++) {
                    uint64_t d = x[i] ^ w[i];
                    for (int j = 0; j < 64; j++) p[64 * i + j] += (int32_t)((d >> j) & 1);
                }
            }
    }
}

/* A depth-wise segment is a whole output row: counts, then the epilogue for this ISA. */
void depthwise_segment_portable(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws)
{
    depthwise_row_portable(cv, s->image, s->oh, ws->pop, ws->pop_stride, ws->taps);
    epilogue_pixels(cv, s, ws, pack_pixel_portable_inline);
}

#if CPNAS_X86
/* 32 bytes, byte j = -1 where bit j of `bits` is set, else 0. */
TARGET_AVX2 static inline __m256i bits_to_bytes_avx2(uint32_t bits)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i select = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, select), select);
}

TARGET_AVX2 static void depthwise_row_avx2(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                                    int32_t *pop, int pop_stride, int32_t *taps_valid)
{
    int kh0, kh1, ih0 = oh * cv->stride_h - cv->pad_h;
    tap_range(oh, cv->stride_h, cv->pad_h, cv->dil_h, cv->kernel_h, cv->in_h, &kh0, &kh1);
    for (int ow = 0; ow < cv->out_w; ow++) {
        int kw0, kw1, iw0 = ow * cv->stride_w - cv->pad_w;
        tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        taps_valid[ow] = (kh1 - kh0) * (kw1 - kw0);
        int32_t *p = pop + (int64_t)ow * pop_stride;
        for (int i = 0; i < cv->in_words; i++) {
            __m256i low = _mm256_setzero_si256(), high = _mm256_setzero_si256();
            for (int kh = kh0; kh < kh1; kh++)
                for (int kw = kw0; kw < kw1; kw++) {
                    int64_t pixel = (int64_t)(ih0 + kh * cv->dil_h) * cv->in_w + iw0 + kw * cv->dil_w;
                    uint64_t d = image[pixel * cv->in_words + i] ^ ((const uint64_t *)cv->weights)[(int64_t)(kh * cv->kernel_w + kw) * cv->in_words + i];
                    low = _mm256_sub_epi8(low, bits_to_bytes_avx2((uint32_t)d));
                    high = _mm256_sub_epi8(high, bits_to_bytes_avx2((uint32_t)(d >> 32)));
                }
            uint8_t counts[64];
            _mm256_storeu_si256((__m256i *)counts, low);
            _mm256_storeu_si256((__m256i *)(counts + 32), high);
            for (int q = 0; q < 8; q++)
                _mm256_storeu_si256((__m256i *)(p + 64 * i + 8 * q),
                                    _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(counts + 8 * q))));
        }
    }
}

/* The counters of `nw` consecutive channel words (up to 4 zmm of byte counters) of output pixel
 * ow, taps outer so the tap's addresses are computed once for all words, then the epilogue on
 * them in registers (16 channels per step). Inlined with constant nw. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
depthwise_words_avx512(const struct cpnas_conv *cv, const struct epilogue *e, const struct segment *s, int ow,
                       int ih0, int iw0, int kh0, int kh1, int kw0, int kw1, int i0, int nw)
{
    const uint64_t *image = s->image;
    __m512i counts[4];
    for (int j = 0; j < nw; j++) counts[j] = _mm512_setzero_si512();
    for (int kh = kh0; kh < kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            int64_t pixel = (int64_t)(ih0 + kh * cv->dil_h) * cv->in_w + iw0 + kw * cv->dil_w;
            const uint64_t *x = image + pixel * cv->in_words + i0;
            const uint64_t *w = (const uint64_t *)cv->weights + (int64_t)(kh * cv->kernel_w + kw) * cv->in_words + i0;
            for (int j = 0; j < nw; j++)
                counts[j] = _mm512_sub_epi8(counts[j], _mm512_movm_epi8((__mmask64)(x[j] ^ w[j])));
        }
    int32_t k = (kh1 - kh0) * (kw1 - kw0);  /* one input channel per group */
    const float *res = s->residual ? s->residual + (int64_t)ow * e->out_c : 0;
    float *out = s->out ? s->out + (int64_t)ow * e->out_c : 0;
    uint16_t *bits = s->out_bits ? (uint16_t *)(s->out_bits + (int64_t)ow * e->out_words) : 0;
    for (int j = 0; j < nw; j++)
        for (int q = 0; q < 4; q++) {
            int c0 = 64 * (i0 + j) + 16 * q, left = e->out_c - c0;
            if (left <= 0) break;
            __mmask16 live = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            __m512i d = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(counts[j], q));
            epilogue16_avx512(e, d, k, c0, live, res, out, bits);
        }
}

TARGET_AVX512 void depthwise_segment_avx512(const struct cpnas_conv *cv, const struct segment *s,
                                            const struct scratch *ws)
{
    (void)ws;  /* the counters never leave the registers */
    struct epilogue e = epilogue_of(cv);
    int kh0, kh1, ih0 = s->oh * cv->stride_h - cv->pad_h, lo, hi;
    tap_range(s->oh, cv->stride_h, cv->pad_h, cv->dil_h, cv->kernel_h, cv->in_h, &kh0, &kh1);
    interior_columns(cv, &lo, &hi);
    for (int ow = s->ow0; ow < s->ow1; ow++) {
        int kw0 = 0, kw1 = cv->kernel_w, iw0 = ow * cv->stride_w - cv->pad_w;
        if (ow < lo || ow >= hi)  /* tap_range divides: only the border pixels need it */
            tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        int i = 0;
        for (; i + 4 <= cv->in_words; i += 4) depthwise_words_avx512(cv, &e, s, ow, ih0, iw0, kh0, kh1, kw0, kw1, i, 4);
        switch (cv->in_words - i) {  /* the last 1-3 words, still with constant counts */
        case 3: depthwise_words_avx512(cv, &e, s, ow, ih0, iw0, kh0, kh1, kw0, kw1, i, 3); break;
        case 2: depthwise_words_avx512(cv, &e, s, ow, ih0, iw0, kh0, kh1, kw0, kw1, i, 2); break;
        case 1: depthwise_words_avx512(cv, &e, s, ow, ih0, iw0, kh0, kh1, kw0, kw1, i, 1); break;
        }
        if (s->out_bits && cv->out_c % 64) clear_bits_tail(&e, s->out_bits + (int64_t)ow * cv->out_words);
    }
}

TARGET_AVX2 void depthwise_segment_avx2(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws)
{
    depthwise_row_avx2(cv, s->image, s->oh, ws->pop, ws->pop_stride, ws->taps);
    epilogue_pixels(cv, s, ws, pack_pixel_avx2_inline);
}

#endif
