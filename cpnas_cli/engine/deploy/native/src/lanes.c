/* The general 1-bit conv kernel: dense and grouped convs of any kernel size, stride, padding
 * and dilation (1x1 included), one segment of an output row per call.
 *
 * Design: vectorise over output channels, not over the channel words of the reduction. A block
 * of 16 output channels holds, per tap and per input halfword (32 channels), the 16 channels'
 * weight halfwords side by side in 32-bit lanes; the input halfword is broadcast, XORed with all
 * 16, popcounted and added to 16 per-channel counters. So a 64-channel 1x1 conv (two halfwords
 * per pixel) still fills the vector, and the counters leave the loop as int32 in NHWC output
 * channel order, ready for the float epilogue. The last block of a dense conv may hold fewer
 * lanes (masked loads), so the weights take no more bits than the model file has.
 * Grouped convs:
 *   PAIRS  16 channels per group and a multiple of 16 outputs per group (the CPU presets): a
 *          lane holds two output channels of the two groups of one input halfword, 16 bits
 *          each, and a 16-bit popcount (AVX-512 BITALG) counts both at once. Dense in memory,
 *          32 output channels per vector.
 *   masked any other grouping: each lane keeps its group's bits at their positions in the
 *          halfwords its block touches, and a per-block [halfword][lane] mask drops the rest
 *          ((x ^ w) & m, one vpternlog on AVX-512).
 * Padded taps are skipped: tap_range gives each output pixel its in-bounds taps.
 *
 * AVX-512: up to 4 blocks x 4 pixels of counters in registers; each weight vector serves 4
 *          interior pixels; the epilogue runs on the counters in registers (no round trip
 *          through memory) and writes floats or the packed sign bits directly.
 * AVX2:    no vector popcount: the nibble-LUT method (Mula: two VPSHUFB lookups per byte) into
 *          byte counters, widened every 31 halfwords before a byte can overflow; 1 block x 2
 *          pixels; counts to the scratch, then the shared epilogue.
 * Portable: __builtin_popcount per lane, then the shared epilogue.
 */
#include "epilogue.h"
#include "pack.h"

#if CPNAS_X86
#include <immintrin.h>
#endif

/* What the pixels of a segment share: their input, its addressing in halfwords, and their
 * in-bounds kernel rows. A pixel's halfword index at tap (kh, kw) is
 * base(ow) + kh * row_step + kw * col_step; interior pixels [lo, hi) have every kw in bounds. */
struct geometry {
    const uint32_t *input;
    int64_t row_step, col_step, first_input_row, hw_per_pixel;
    int kh0, kh1, lo, hi, local;
};

static inline __attribute__((always_inline)) struct geometry segment_geometry(const struct cpnas_conv *cv,
                                                                                const struct segment *s, pack_fn pack)
{
    struct geometry g;
    g.hw_per_pixel = 2 * (int64_t)cv->in_words;
    g.local = s->x_image != 0;
    if (g.local) {  /* a 1x1 conv without padding: pack the segment's own input pixels, stride included */
        for (int ow = s->ow0; ow < s->ow1; ow++) {
            int64_t pixel = (int64_t)s->oh * cv->stride_h * cv->in_w + (int64_t)ow * cv->stride_w;
            pack(s->x_image + pixel * cv->in_c, cv->in_c, s->local + (int64_t)(ow - s->ow0) * cv->in_words);
        }
        g.input = (const uint32_t *)s->local;
        g.row_step = g.col_step = 0;
        g.kh0 = 0, g.kh1 = 1, g.lo = s->ow0, g.hi = s->ow1;
        g.first_input_row = 0;
        return g;
    }
    g.input = (const uint32_t *)s->image;
    g.row_step = (int64_t)cv->dil_h * cv->in_w * g.hw_per_pixel;
    g.col_step = (int64_t)cv->dil_w * g.hw_per_pixel;
    tap_range(s->oh, cv->stride_h, cv->pad_h, cv->dil_h, cv->kernel_h, cv->in_h, &g.kh0, &g.kh1);
    g.first_input_row = (int64_t)s->oh * cv->stride_h - cv->pad_h;
    interior_columns(cv, &g.lo, &g.hi);
    if (g.hi > s->ow1) g.hi = s->ow1;
    return g;
}

/* Halfword index of output pixel ow's input at tap (0, 0) (may lie outside the image when
 * that tap is padding; only in-bounds taps are read). */
static inline int64_t pixel_base(const struct cpnas_conv *cv, const struct segment *s, const struct geometry *g,
                                 int ow)
{
    if (g->local) return (int64_t)(ow - s->ow0) * g->hw_per_pixel;
    return (g->first_input_row * cv->in_w + (int64_t)ow * cv->stride_w - cv->pad_w) * g->hw_per_pixel;
}

static inline const uint32_t *block_weights(const struct cpnas_conv *cv, int b)
{
    return (const uint32_t *)cv->weights + cv->block_weight_offset[b];
}

/* ---- portable --------------------------------------------------------------------------- */

void lanes_segment_portable(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws)
{
    struct geometry g = segment_geometry(cv, s, pack_pixel_portable_inline);
    int pairs = cv->kernel == CPNAS_PAIRS;
    for (int ow = s->ow0; ow < s->ow1; ow++) {
        int i = ow - s->ow0, kw0 = 0, kw1 = 1;
        if (!g.local) tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        ws->taps[i] = (g.kh1 - g.kh0) * (kw1 - kw0);
        int64_t base = pixel_base(cv, s, &g, ow);
        int32_t *pop = ws->pop + (int64_t)i * ws->pop_stride;
        for (int b = 0; b < cv->n_blocks; b++) {
            int lanes = cv->block_lanes[b], count = cv->block_hw_count[b], begin = cv->block_hw_begin[b];
            const uint32_t *w = block_weights(cv, b);
            const uint32_t *m = cv->masked ? cv->masks + cv->block_mask_offset[b] : 0;
            int32_t low[CPNAS_LANES_PER_BLOCK] = {0}, high[CPNAS_LANES_PER_BLOCK] = {0};
            for (int kh = g.kh0; kh < g.kh1; kh++)
                for (int kw = kw0; kw < kw1; kw++) {
                    const uint32_t *x = g.input + base + kh * g.row_step + kw * g.col_step + begin;
                    const uint32_t *wt = w + (int64_t)(kh * cv->kernel_w + kw) * count * lanes;
                    for (int j = 0; j < count; j++)
                        for (int l = 0; l < lanes; l++) {
                            uint32_t v = x[j] ^ wt[j * lanes + l];
                            if (m) v &= m[j * lanes + l];
                            if (pairs) {
                                low[l] += __builtin_popcount(v & 0xFFFFu);
                                high[l] += __builtin_popcount(v >> 16);
                            } else {
                                low[l] += __builtin_popcount(v);
                            }
                        }
                }
            for (int l = 0; l < lanes; l++) {
                pop[cv->block_out[b] + l] = low[l];
                if (pairs && cv->block_out[b] + cv->group_out_c < cv->out_c)
                    pop[cv->block_out[b] + cv->group_out_c + l] = high[l];
            }
        }
    }
    epilogue_pixels(cv, s, ws, pack_pixel_portable_inline);
}

#if CPNAS_X86

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

/* Byte counters gain at most 8 per halfword: widen before 32 halfwords. */
#define AVX2_FLUSH_HALFWORDS 31

/* Byte counts summed into the lanes' counters: 32-bit lanes (vpmaddubsw + vpmaddwd), or the two
 * 16-bit halves of a PAIRS lane (vpmaddubsw alone). */
TARGET_AVX2 static inline __m256i widen_avx2(__m256i sums, __m256i bytes, int pairs)
{
    __m256i words = _mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1));
    if (pairs) return _mm256_add_epi16(sums, words);
    return _mm256_add_epi32(sums, _mm256_madd_epi16(words, _mm256_set1_epi16(1)));
}

/* Block b for `np` pixels (1 or 2) sharing the kw range [kw0, kw1); each block is two ymm
 * halves (lanes 0-7, 8-15). Counts go to pop (pixel p at pop + p * pop_stride). */
TARGET_AVX2 static inline __attribute__((always_inline)) void
block_avx2(const struct cpnas_conv *cv, const struct geometry *g, const int64_t *base, int np, int kw0, int kw1,
           int b, int pairs, int masked, int full, int32_t *pop, int pop_stride)
{
    /* full: 16 lanes, plain loads (a partial block's masked loads are slower) */
    int lanes = full ? CPNAS_LANES_PER_BLOCK : cv->block_lanes[b], count = cv->block_hw_count[b];
    int begin = cv->block_hw_begin[b];
    const uint32_t *w = block_weights(cv, b);
    const uint32_t *m = masked ? cv->masks + cv->block_mask_offset[b] : 0;
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), zero = _mm256_setzero_si256();
    __m256i live[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), index),
                       _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes - 8), index)};
    __m256i bytes[2][2], sums[2][2];  /* [pixel][half] */
    for (int p = 0; p < np; p++)
        for (int h = 0; h < 2; h++) bytes[p][h] = sums[p][h] = zero;
    int pending = 0;
    for (int kh = g->kh0; kh < g->kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            int64_t off = kh * g->row_step + kw * g->col_step + begin;
            const uint32_t *wt = w + (int64_t)(kh * cv->kernel_w + kw) * count * lanes;
            for (int j = 0; j < count; j++) {
                for (int h = 0; h < 2; h++) {
                    const int *wh = (const int *)(wt + j * lanes + 8 * h);
                    __m256i weight = full ? _mm256_loadu_si256((const __m256i *)wh) : _mm256_maskload_epi32(wh, live[h]);
                    __m256i mask = masked ? _mm256_maskload_epi32((const int *)(m + j * lanes + 8 * h), live[h]) : zero;
                    for (int p = 0; p < np; p++) {
                        __m256i v = _mm256_xor_si256(_mm256_set1_epi32((int)g->input[base[p] + off + j]), weight);
                        if (masked) v = _mm256_and_si256(v, mask);
                        bytes[p][h] = _mm256_add_epi8(bytes[p][h], popcount_bytes_avx2(v));
                    }
                }
                if (++pending == AVX2_FLUSH_HALFWORDS) {
                    for (int p = 0; p < np; p++)
                        for (int h = 0; h < 2; h++) {
                            sums[p][h] = widen_avx2(sums[p][h], bytes[p][h], pairs);
                            bytes[p][h] = zero;
                        }
                    pending = 0;
                }
            }
        }
    int o0 = cv->block_out[b];
    for (int p = 0; p < np; p++)
        for (int h = 0; h < 2; h++) {
            __m256i counts = widen_avx2(sums[p][h], bytes[p][h], pairs);
            int32_t *row = pop + (int64_t)p * pop_stride + 8 * h;
            if (pairs) {
                _mm256_storeu_si256((__m256i *)(row + o0), _mm256_and_si256(counts, _mm256_set1_epi32(0xFFFF)));
                if (o0 + cv->group_out_c < cv->out_c)  /* an odd group count: no high half */
                    _mm256_storeu_si256((__m256i *)(row + o0 + cv->group_out_c), _mm256_srli_epi32(counts, 16));
            } else {  /* lanes past out_c land in the scratch row's slack (a masked store is slow on AMD) */
                _mm256_storeu_si256((__m256i *)(row + o0), counts);
            }
        }
}

/* Dense and PAIRS blocks run interior pixels two at a time (the weight loads are shared);
 * masked blocks one at a time (their masks would make the counters spill). */
TARGET_AVX2 void lanes_segment_avx2(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws)
{
    struct geometry g = segment_geometry(cv, s, pack_pixel_avx2_inline);
    int pairs = cv->kernel == CPNAS_PAIRS, masked = cv->masked;
    for (int ow = s->ow0; ow < s->ow1; ow++) {
        int kw0 = 0, kw1 = 1;
        if (!g.local) tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        ws->taps[ow - s->ow0] = (g.kh1 - g.kh0) * (kw1 - kw0);
    }
    for (int b = 0; b < cv->n_blocks; b++) {
        int full = cv->block_lanes[b] == CPNAS_LANES_PER_BLOCK;
        for (int ow = s->ow0; ow < s->ow1;) {
            int32_t *pop = ws->pop + (int64_t)(ow - s->ow0) * ws->pop_stride;
            int64_t base[2] = {pixel_base(cv, s, &g, ow), pixel_base(cv, s, &g, ow + 1)};
            if (!masked && ow >= g.lo && ow + 2 <= g.hi) {
                int kw1 = g.local ? 1 : cv->kernel_w;
                if (pairs) block_avx2(cv, &g, base, 2, 0, kw1, b, 1, 0, 1, pop, ws->pop_stride);
                else if (full) block_avx2(cv, &g, base, 2, 0, kw1, b, 0, 0, 1, pop, ws->pop_stride);
                else block_avx2(cv, &g, base, 2, 0, kw1, b, 0, 0, 0, pop, ws->pop_stride);
                ow += 2;
                continue;
            }
            int kw0 = 0, kw1 = 1;
            if (!g.local) tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
            if (masked) block_avx2(cv, &g, base, 1, kw0, kw1, b, 0, 1, 0, pop, ws->pop_stride);
            else if (pairs) block_avx2(cv, &g, base, 1, kw0, kw1, b, 1, 0, 1, pop, ws->pop_stride);
            else if (full) block_avx2(cv, &g, base, 1, kw0, kw1, b, 0, 0, 1, pop, ws->pop_stride);
            else block_avx2(cv, &g, base, 1, kw0, kw1, b, 0, 0, 0, pop, ws->pop_stride);
            ow += 1;
        }
    }
    epilogue_pixels(cv, s, ws, pack_pixel_avx2_inline);
}

/* ---- AVX-512 ---------------------------------------------------------------------------- */

/* DENSE: every block reads the same halfwords; WINDOW: each block its own (groups of whole
 * halfwords); PAIRS and MASKED as above. */
enum mode { DENSE, WINDOW, PAIRS, MASKED };

/* The reduction steps of a tile: every (tap, halfword) pair, in weight order. A pixel whose taps
 * all lie in bounds along w (kh in [kh0, kh1), every kw) reads the contiguous run of steps
 * [kh0 * kernel_w * count, kh1 * kernel_w * count): one flat loop over input offsets from this
 * table (relative to the pixel's tap (0, 0), without the block's first halfword), the weights
 * one vector after another. Other pixels walk their taps. */
#define STEP_TABLE_MAX 2048

struct steps {
    const int64_t *offset;  /* NULL: walk the taps */
    int first, end;
};

/* Blocks b0 .. b0+nb-1 (equal halfword counts) for `np` pixels ow, ow+1, ... sharing the kw
 * range [kw0, kw1): counters in registers, then the epilogue. Inlined with constant np / nb /
 * mode, so each case compiles to its own loop with 4 x 4 accumulators at most. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
tile_avx512(const struct cpnas_conv *cv, const struct epilogue *e, const struct segment *s, const struct geometry *g,
            int ow, int np, int kw0, int kw1, struct steps steps, int b0, int nb, enum mode mode, int full)
{
    const uint32_t *w[4], *m[4], *x[4];
    int begin[4], lanes[4];
    __mmask16 live[4];
    int count = cv->block_hw_count[b0];
    /* full: 16 lanes in every block, whose weights then lie one after another, `stride` apart */
    const uint32_t *first = block_weights(cv, b0);
    int64_t stride = (int64_t)cv->kernel_h * cv->kernel_w * count * CPNAS_LANES_PER_BLOCK;
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) {
        lanes[j] = full ? CPNAS_LANES_PER_BLOCK : cv->block_lanes[b0 + j];
        live[j] = (__mmask16)((1u << lanes[j]) - 1);
        begin[j] = cv->block_hw_begin[b0 + j];
        w[j] = block_weights(cv, b0 + j);
        m[j] = mode == MASKED ? cv->masks + cv->block_mask_offset[b0 + j] : 0;
    }
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) x[p] = g->input + pixel_base(cv, s, g, ow + p);
    __m512i acc[4][4];
#pragma GCC unroll 4
    for (int p = 0; p < np; p++)
#pragma GCC unroll 4
        for (int j = 0; j < nb; j++) acc[p][j] = _mm512_setzero_si512();
/* One step: the halfword at input offset `off` of each pixel against the blocks' weight vectors
 * at `wi` (uint32 index of the step's first lane, times lanes) and masks at `mi`. */
#define STEP(off, wi, mi)                                                                                      \
    do {                                                                                                       \
        __m512i shared[4];                                                                                     \
        if (mode == DENSE)                                                                                     \
            _Pragma("GCC unroll 4") for (int p = 0; p < np; p++) shared[p] = _mm512_set1_epi32((int)x[p][(off) + begin[0]]); \
        _Pragma("GCC unroll 4") for (int j = 0; j < nb; j++) {                                                 \
            __m512i wv = full ? _mm512_loadu_si512(first + j * stride + (int64_t)(wi) * CPNAS_LANES_PER_BLOCK)   \
                              : _mm512_maskz_loadu_epi32(live[j], w[j] + (int64_t)(wi) * lanes[j]);            \
            __m512i mv = mode == MASKED ? _mm512_maskz_loadu_epi32(live[j], m[j] + (int64_t)(mi) * lanes[j]) : wv; \
            _Pragma("GCC unroll 4") for (int p = 0; p < np; p++) {                                             \
                __m512i xv = mode == DENSE ? shared[p] : _mm512_set1_epi32((int)x[p][(off) + begin[j]]);       \
                __m512i v = mode == MASKED ? _mm512_ternarylogic_epi32(xv, wv, mv, 0x28) /* (a^b)&c */          \
                                           : _mm512_xor_si512(xv, wv);                                         \
                acc[p][j] = mode == PAIRS ? _mm512_add_epi16(acc[p][j], _mm512_popcnt_epi16(v))                \
                                          : _mm512_add_epi32(acc[p][j], _mm512_popcnt_epi32(v));               \
            }                                                                                                  \
        }                                                                                                      \
    } while (0)
    if (steps.offset) {
        for (int i = steps.first; i < steps.end; i++) STEP(steps.offset[i], i, i % count);
    } else {
        for (int kh = g->kh0; kh < g->kh1; kh++)
            for (int kw = kw0; kw < kw1; kw++) {
                int64_t off = kh * g->row_step + kw * g->col_step, tap = kh * cv->kernel_w + kw;
                for (int i = 0; i < count; i++) STEP(off + i, tap * count + i, i);
            }
    }
#undef STEP
    int32_t k = (g->kh1 - g->kh0) * (kw1 - kw0) * cv->group_in_c;
    int o0[4];
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) o0[j] = cv->block_out[b0 + j];
    const float *residual = s->residual, *pixel_out = s->out;
    uint64_t *out_bits = s->out_bits;
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) {
        int64_t pixel = ow + p;
        const float *res = residual ? residual + pixel * e->out_c : 0;
        float *out = pixel_out ? (float *)pixel_out + pixel * e->out_c : 0;
        uint16_t *bits = out_bits ? (uint16_t *)(out_bits + pixel * e->out_words) : 0;
#pragma GCC unroll 4
        for (int j = 0; j < nb; j++) {
            if (mode == PAIRS) {  /* an odd group count leaves the last blocks' high halves unused */
                epilogue16_avx512(e, _mm512_and_si512(acc[p][j], _mm512_set1_epi32(0xFFFF)), k, o0[j], 0xFFFF, res, out, bits);
                if (o0[j] + e->group_out_c < e->out_c)
                    epilogue16_avx512(e, _mm512_srli_epi32(acc[p][j], 16), k, o0[j] + e->group_out_c, 0xFFFF, res, out, bits);
            } else {
                epilogue16_avx512(e, acc[p][j], k, o0[j], live[j], res, out, bits);
            }
        }
    }
}

/* One row of tiles for blocks b0 .. b0+nb-1: interior pixels four at a time, the others alone
 * with their own kw range (the step table serves every pixel with all kw in bounds). */
TARGET_AVX512 static inline __attribute__((always_inline)) void
blocks_avx512(const struct cpnas_conv *cv, const struct epilogue *e, const struct segment *s, const struct geometry *g,
              const int64_t *table, int b0, int nb, enum mode mode, int full)
{
    int full_kw = g->local ? 1 : cv->kernel_w, per_row = full_kw * cv->block_hw_count[b0];
    struct steps run = {table, g->kh0 * per_row, g->kh1 * per_row}, walk = {0, 0, 0};
    for (int ow = s->ow0; ow < s->ow1;) {
        if (ow >= g->lo && ow + 4 <= g->hi) {
            tile_avx512(cv, e, s, g, ow, 4, 0, full_kw, run, b0, nb, mode, full);
            ow += 4;
            continue;
        }
        int kw0 = 0, kw1 = 1;
        if (!g->local) tap_range(ow, cv->stride_w, cv->pad_w, cv->dil_w, cv->kernel_w, cv->in_w, &kw0, &kw1);
        tile_avx512(cv, e, s, g, ow, 1, kw0, kw1, kw1 - kw0 == full_kw ? run : walk, b0, nb, mode, full);
        ow += 1;
    }
}

/* All blocks, four at a time (the last 1-3 still with constant counts); a partial last block
 * (fewer than 16 lanes: masked weight loads) alone. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
blocks_in_fours_avx512(const struct cpnas_conv *cv, const struct epilogue *e, const struct segment *s,
                       const struct geometry *g, const int64_t *table, enum mode mode)
{
    int b = 0, whole = cv->n_blocks - (cv->block_lanes[cv->n_blocks - 1] < CPNAS_LANES_PER_BLOCK);
    for (; b + 4 <= whole; b += 4) blocks_avx512(cv, e, s, g, table, b, 4, mode, 1);
    switch (whole - b) {
    case 3: blocks_avx512(cv, e, s, g, table, b, 3, mode, 1); break;
    case 2: blocks_avx512(cv, e, s, g, table, b, 2, mode, 1); break;
    case 1: blocks_avx512(cv, e, s, g, table, b, 1, mode, 1); break;
    }
    if (whole < cv->n_blocks) blocks_avx512(cv, e, s, g, table, whole, 1, mode, 0);
}

TARGET_AVX512 void lanes_segment_avx512(const struct cpnas_conv *cv, const struct segment *s,
                                        const struct scratch *ws)
{
    (void)ws;  /* the counters never leave the registers */
    struct geometry g = segment_geometry(cv, s, pack_pixel_avx512_inline);
    struct epilogue e = epilogue_of(cv);
    int count = cv->block_hw_count[0], kw = g.local ? 1 : cv->kernel_w, kh = g.local ? 1 : cv->kernel_h;
    int64_t table[STEP_TABLE_MAX];
    const int64_t *steps = 0;
    if (!cv->masked && (int64_t)kh * kw * count <= STEP_TABLE_MAX) {  /* else every pixel walks its taps */
        for (int r = 0; r < kh; r++)
            for (int c = 0; c < kw; c++)
                for (int i = 0; i < count; i++) table[(r * kw + c) * count + i] = r * g.row_step + c * g.col_step + i;
        steps = table;
    }
    if (cv->masked) {
        for (int b = 0; b < cv->n_blocks; b++) blocks_avx512(cv, &e, s, &g, 0, b, 1, MASKED, 0);
    } else if (cv->kernel == CPNAS_PAIRS) {
        blocks_in_fours_avx512(cv, &e, s, &g, steps, PAIRS);
    } else if (cv->groups > 1) {
        blocks_in_fours_avx512(cv, &e, s, &g, steps, WINDOW);
    } else {
        blocks_in_fours_avx512(cv, &e, s, &g, steps, DENSE);
    }
    if (s->out_bits && cv->out_c % 64)
        for (int ow = s->ow0; ow < s->ow1; ow++) clear_bits_tail(&e, s->out_bits + (int64_t)ow * cv->out_words);
}
#endif
