/* cpnas native 1-bit kernels: shared declarations.
 *
 * A 1-bit conv computes y[n,o,p] = epilogue(acc[n,o,p]) with
 *   acc = sum over the in-bounds taps and the input channels of o's group of sign(x)*sign(W),
 * an exact integer. Bits: 1 = +1 (x >= 0, also -0.0), 0 = -1. Activations are NHWC and packed
 * along channels, 64 per uint64 word, channel c in word c/64 at bit c%64, unused bits 0; the
 * kernels read a pixel's words as 32-bit halfwords (channel c in halfword c/32, bit c%32).
 * With d = popcount(x XOR w) over the K real (channel, tap) pairs, acc = K - 2d. Padded taps
 * are skipped (K counts only the in-bounds taps of each output pixel), so zero padding needs
 * no correction table; padded channel bits are 0 in both operands and never count.
 *
 * Every ISA variant is a function compiled with __attribute__((target)), the library itself
 * with baseline flags, so it loads on any x86-64 and picks a path at run time.
 */
#ifndef CPNAS_NATIVE_H
#define CPNAS_NATIVE_H

#include <stdint.h>

#define CPNAS_ABI_VERSION 3
/* The library is built with -fvisibility=hidden: only these entry points are exported. */
#define CPNAS_API __attribute__((visibility("default")))

enum cpnas_isa { CPNAS_PORTABLE = 0, CPNAS_AVX2 = 1, CPNAS_AVX512 = 2 };
/* LANES: 32-bit lanes, one output channel each (dense convs; other groups with a mask).
 * PAIRS: groups of 16 input channels with a multiple of 16 outputs: each 32-bit lane holds two
 *        output channels of neighbouring groups, 16 bits each, counted by a 16-bit popcount.
 * DEPTHWISE: groups = in = out channels, byte counters per channel (depthwise.c). */
enum cpnas_kernel { CPNAS_LANES = 0, CPNAS_DEPTHWISE = 1, CPNAS_PAIRS = 2 };

/* 32-bit lanes per weight block: one zmm, two ymm. */
#define CPNAS_LANES_PER_BLOCK 16

#if defined(__x86_64__) || defined(__i386__)
#define CPNAS_X86 1
#define TARGET_AVX2 __attribute__((target("avx2,fma,popcnt,bmi,bmi2")))
#define TARGET_AVX512                                                                             \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx512bitalg,avx2,fma," \
                          "popcnt,bmi,bmi2")))
#else
#define CPNAS_X86 0
#endif

/* One 1-bit conv layer: geometry, packed weights and the fused epilogue (library.py fills it;
 * field order is part of the ABI).
 * LANES / PAIRS weights: blocks of up to 16 lanes; block b reads the block_hw_count[b] input
 * halfwords from block_hw_begin[b] at every tap, its weights are uint32 [tap][halfword][lane]
 * (block_lanes[b] lanes, the last block of a dense conv may be partial) at
 * block_weight_offset[b], its masks (masked only) [halfword][lane] at block_mask_offset[b].
 * Lane l of a LANES block is output channel block_out[b] + l; in a PAIRS block its low 16 bits
 * are output block_out[b] + l, its high 16 bits output block_out[b] + group_out_c + l.
 * DEPTHWISE weights: uint64 [tap][in_words], packed along channels like the input. */
struct cpnas_conv {
    int32_t batch, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
    int32_t in_words, out_words;   /* uint64 words per pixel of packed input / output */
    int32_t kernel;                /* enum cpnas_kernel */
    int32_t masked;                /* LANES: lanes read only their group's bits */
    int32_t group_in_c;            /* input channels per group (K per tap) */
    int32_t group_out_c;           /* output channels per group */
    int32_t n_blocks;
    const int32_t *block_hw_begin, *block_hw_count, *block_out, *block_lanes;
    const int64_t *block_weight_offset, *block_mask_offset;
    const void *weights;
    const uint32_t *masks;
    const float *beta, *bn_scale, *bn_shift;   /* beta required; BN pair optional (both or none) */
};

/* One call of a chain run by cpnas_run: a layer and its buffers (see cpnas_bconv). */
struct cpnas_call {
    const struct cpnas_conv *conv;
    const float *x;
    uint64_t *x_bits;
    const float *residual;
    float *out;
    uint64_t *out_bits;
};

/* The valid kernel offsets [lo, hi) of output coordinate `o` along one axis: taps that land
 * inside the input. Contiguous because taps step by `dil` from o*stride - pad. */
static inline void tap_range(int o, int stride, int pad, int dil, int k, int size, int *lo, int *hi)
{
    int start = o * stride - pad;
    int first = start >= 0 ? 0 : (-start + dil - 1) / dil;
    int last = (size - 1 - start) < 0 ? -1 : (size - 1 - start) / dil;
    *lo = first;
    *hi = last + 1 < k ? last + 1 : k;
    if (*hi < *lo) *hi = *lo;
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

/* A run of output pixels [ow0, ow1) of output row `oh` of one image, with what it reads and
 * writes. The packed input is `image` (the image's H*W*in_words words); or, for a 1x1 conv with
 * no padding and a float input, `x_image` (the image's NHWC floats), whose pixels the kernel
 * packs into `local` first, one after another (in_words each): read once, no pass over the
 * whole input, no barrier. */
struct segment {
    const uint64_t *image;
    const float *x_image;
    uint64_t *local;
    int oh, ow0, ow1;
    const float *residual;   /* the row's residual (pixel ow at residual + ow*out_c), or NULL */
    float *out;              /* the row's float output, or NULL */
    uint64_t *out_bits;      /* the row's packed output, or NULL */
};

/* Per-thread scratch of the kernels that count first and run the epilogue after (AVX2,
 * portable, depth-wise): counts d per output channel of each pixel, valid taps per pixel, and
 * one pixel's epilogue result when the output is bits. */
struct scratch {
    int32_t *pop, *taps;
    float *pixel;
    int pop_stride;
};

typedef void (*pack_fn)(const float *x, int channels, uint64_t *bits);
typedef void (*segment_fn)(const struct cpnas_conv *cv, const struct segment *s, const struct scratch *ws);

void lanes_segment_portable(const struct cpnas_conv *, const struct segment *, const struct scratch *);
void depthwise_segment_portable(const struct cpnas_conv *, const struct segment *, const struct scratch *);
void pack_pixel_portable(const float *x, int channels, uint64_t *bits);
#if CPNAS_X86
void lanes_segment_avx2(const struct cpnas_conv *, const struct segment *, const struct scratch *);
void lanes_segment_avx512(const struct cpnas_conv *, const struct segment *, const struct scratch *);
void depthwise_segment_avx2(const struct cpnas_conv *, const struct segment *, const struct scratch *);
void depthwise_segment_avx512(const struct cpnas_conv *, const struct segment *, const struct scratch *);
void pack_pixel_avx2(const float *x, int channels, uint64_t *bits);
void pack_pixel_avx512(const float *x, int channels, uint64_t *bits);
#endif

#endif
