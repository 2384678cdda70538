/* cpnas native 1-bit kernels: shared declarations.
 *
 * A 1-bit conv computes y[n,o,p] = epilogue(acc[n,o,p]) with
 *   acc = sum over the in-bounds taps and the input channels of o's group of sign(x)*sign(W),
 * an exact integer. Bits: 1 = +1 (x >= 0, also -0.0), 0 = -1. Activations are NHWC and packed
 * along channels, 64 per uint64 word, channel c in word c/64 at bit c%64, unused bits 0.
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

#define CPNAS_ABI_VERSION 2
/* The library is built with -fvisibility=hidden: only these entry points are exported. */
#define CPNAS_API __attribute__((visibility("default")))

enum cpnas_isa { CPNAS_PORTABLE = 0, CPNAS_AVX2 = 1, CPNAS_AVX512 = 2 };
enum cpnas_kernel { CPNAS_GENERAL = 0, CPNAS_DEPTHWISE = 1 };

/* Lanes of one output-channel block of the general kernel: 8 uint64 = one zmm, two ymm. */
#define CPNAS_BLOCK 8

#if defined(__x86_64__) || defined(__i386__)
#define CPNAS_X86 1
#define TARGET_AVX2 __attribute__((target("avx2,fma,popcnt,bmi,bmi2")))
#define TARGET_AVX512 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx2,fma,popcnt,bmi,bmi2")))
#else
#define CPNAS_X86 0
#endif

/* One 1-bit conv layer: geometry, packed weights and the fused epilogue (see library.py, which
 * fills it; field order is part of the ABI). */
struct cpnas_conv {
    int32_t batch, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
    int32_t in_words, out_words;   /* uint64 words per pixel of packed input / output */
    int32_t kernel;                /* enum cpnas_kernel */
    int32_t masked;                /* general kernel: lanes read only their group's bits */
    int32_t group_in_c;            /* input channels per group (K per tap) */
    int32_t n_blocks;              /* general kernel: ceil(out_c / 8) */
    const int32_t *block_word_begin, *block_word_count;
    const int64_t *block_weight_offset, *block_mask_offset;
    const uint64_t *weights;       /* general: per block [tap][word][8]; depthwise: [tap][in_words] */
    const uint64_t *masks;         /* general, masked: per block [word][8] */
    const float *beta, *bn_scale, *bn_shift;   /* beta required; BN pair optional (both or none) */
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

/* Row kernels: fill pop[ow * pop_stride + o] (disagreement counts d) and taps_valid[ow] for one
 * output row of image `image` (its packed input, H*W*in_words words). */
typedef void (*row_kernel_fn)(const struct cpnas_conv *cv, const uint64_t *image, int oh,
                              int32_t *pop, int pop_stride, int32_t *taps_valid);
typedef void (*pack_fn)(const float *x, int channels, uint64_t *bits);

void general_row_portable(const struct cpnas_conv *, const uint64_t *, int, int32_t *, int, int32_t *);
void depthwise_row_portable(const struct cpnas_conv *, const uint64_t *, int, int32_t *, int, int32_t *);
void pack_pixel_portable(const float *x, int channels, uint64_t *bits);
#if CPNAS_X86
void general_row_avx2(const struct cpnas_conv *, const uint64_t *, int, int32_t *, int, int32_t *);
void general_row_avx512(const struct cpnas_conv *, const uint64_t *, int, int32_t *, int, int32_t *);
void depthwise_row_avx2(const struct cpnas_conv *, const uint64_t *, int, int32_t *, int, int32_t *);
void depthwise_row_avx512(const struct cpnas_conv *, const uint64_t *, int, int32_t *, int, int32_t *);
void pack_pixel_avx2(const float *x, int channels, uint64_t *bits);
void pack_pixel_avx512(const float *x, int channels, uint64_t *bits);
#endif

#endif
