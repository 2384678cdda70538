/* Entry points of the cpnas native library: ISA selection, the fused epilogue and the threaded
 * driver of a 1-bit conv layer.
 *
 * A layer call runs in one OpenMP parallel region: (optionally) binarize + pack the float
 * input, a barrier, then output rows of all images shared among the threads (batch x rows, so
 * batch 1 uses every thread too). Each row: the ISA's kernel fills disagreement counts d,
 * the epilogue turns them into y = fma(acc*beta, scale, shift) [+ residual], written as
 * NHWC float32 or packed straight into output bits for a following 1-bit conv.
 * The folded BatchNorm is one FMA (one rounding) because torch's addcmul and ATen's eval
 * BatchNorm are fused on every SIMD x86 capability, so the trained Child, the packed model and
 * this library agree bit for bit. acc*beta and + residual are rounded separately, as in torch;
 * -ffp-contract=off keeps the compiler from fusing anything else.
 */
#include <math.h>
#include <stdlib.h>
#include "native.h"

#ifdef _OPENMP
#include <omp.h>
#endif

CPNAS_API int cpnas_abi_version(void) { return CPNAS_ABI_VERSION; }

CPNAS_API int cpnas_isa_supported(int isa)
{
    switch (isa) {
    case CPNAS_PORTABLE: return 1;
#if CPNAS_X86
    case CPNAS_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt");
    case CPNAS_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("popcnt");
#endif
    default: return 0;
    }
}

CPNAS_API int cpnas_best_isa(void)
{
    for (int isa = CPNAS_AVX512; isa > CPNAS_PORTABLE; isa--)
        if (cpnas_isa_supported(isa)) return isa;
    return CPNAS_PORTABLE;
}

/* Per-thread workspace of one layer call: the counts and valid-tap numbers of one output row,
 * and one pixel's epilogue result when the output is bits. */
struct workspace {
    int32_t *pop, *taps;
    float *pixel;
    int pop_stride;
};

static inline __attribute__((always_inline)) void
epilogue_row(const struct cpnas_conv *cv, const struct workspace *ws, const float *residual,
             float *out, uint64_t *out_bits, pack_fn pack)
{
    const float *beta = cv->beta, *scale = cv->bn_scale, *shift = cv->bn_shift;
    for (int ow = 0; ow < cv->out_w; ow++) {
        int32_t k = ws->taps[ow] * cv->group_in_c;
        const int32_t *d = ws->pop + (int64_t)ow * ws->pop_stride;
        const float *r = residual ? residual + (int64_t)ow * cv->out_c : 0;
        float *y = out ? out + (int64_t)ow * cv->out_c : ws->pixel;
        for (int o = 0; o < cv->out_c; o++) {
            float v = (float)(k - 2 * d[o]) * beta[o];
            if (scale) v = fmaf(v, scale[o], shift[o]); /* vfmadd on AVX2/512, libm fmaf on portable */
            if (r) v = v + r[o];
            y[o] = v;
        }
        if (out_bits) pack(y, cv->out_c, out_bits + (int64_t)ow * cv->out_words);
    }
}

/* One output row: counts by the ISA's kernel, then the epilogue compiled for the same ISA. */
#define DEFINE_CONV_ROW(isa, TARGET)                                                          \
    TARGET static void conv_row_##isa(const struct cpnas_conv *cv, const uint64_t *image,     \
                                      int oh, const struct workspace *ws, const float *res,   \
                                      float *out, uint64_t *out_bits)                         \
    {                                                                                         \
        row_kernel_fn kernel = cv->kernel == CPNAS_DEPTHWISE ? depthwise_row_##isa            \
                                                             : general_row_##isa;             \
        kernel(cv, image, oh, ws->pop, ws->pop_stride, ws->taps);                             \
        epilogue_row(cv, ws, res, out, out_bits, pack_pixel_##isa);                           \
    }

typedef void (*conv_row_fn)(const struct cpnas_conv *, const uint64_t *, int, const struct workspace *,
                            const float *, float *, uint64_t *);

DEFINE_CONV_ROW(portable, )
#if CPNAS_X86
DEFINE_CONV_ROW(avx2, TARGET_AVX2)
DEFINE_CONV_ROW(avx512, TARGET_AVX512)
#endif

struct isa_kernels {
    pack_fn pack;
    conv_row_fn conv_row;
};

static const struct isa_kernels KERNELS[] = {
    {pack_pixel_portable, conv_row_portable},
#if CPNAS_X86
    {pack_pixel_avx2, conv_row_avx2},
    {pack_pixel_avx512, conv_row_avx512},
#endif
};

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Binarize and pack `pixels` NHWC pixels of `channels` floats into `bits` (pixels x words). */
CPNAS_API int cpnas_pack(int isa, int threads, const float *x, int64_t pixels, int channels, uint64_t *bits)
{
    if (!cpnas_isa_supported(isa)) return -1;
    pack_fn pack = KERNELS[isa].pack;
    int words = (channels + 63) / 64;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t p = 0; p < pixels; p++) pack(x + p * channels, channels, bits + p * words);
    return 0;
}

/* The work of one layer call, shared by the threads of the enclosing parallel region (or run
 * alone: the `omp for` loops are orphaned then and cover every iteration). */
static void run_layer(const struct isa_kernels *k, const struct cpnas_conv *cv, const float *x,
                      uint64_t *x_bits, const float *residual, float *out, uint64_t *out_bits,
                      int32_t *memory, int64_t per_thread, int pop_stride)
{
    int32_t *mine = memory + per_thread * thread_id();
    int64_t pops = (int64_t)cv->out_w * pop_stride;
    struct workspace ws = {mine, mine + pops, (float *)(mine + pops + cv->out_w), pop_stride};
    int64_t in_pixels = (int64_t)cv->batch * cv->in_h * cv->in_w;
    int64_t image_words = (int64_t)cv->in_h * cv->in_w * cv->in_words;
    int64_t out_row = (int64_t)cv->out_w * cv->out_c, out_bits_row = (int64_t)cv->out_w * cv->out_words;
    if (x) {
#pragma omp for schedule(static)
        for (int64_t p = 0; p < in_pixels; p++)
            k->pack(x + p * cv->in_c, cv->in_c, x_bits + p * cv->in_words);
    }
#pragma omp for collapse(2) schedule(static)
    for (int n = 0; n < cv->batch; n++)
        for (int oh = 0; oh < cv->out_h; oh++) {
            int64_t row = (int64_t)n * cv->out_h + oh;
            k->conv_row(cv, x_bits + n * image_words, oh, &ws, residual ? residual + row * out_row : 0,
                        out ? out + row * out_row : 0, out_bits ? out_bits + row * out_bits_row : 0);
        }
}

/* One 1-bit conv layer. Input: float NHWC `x` (packed into the caller's `x_bits` workspace
 * first) or, when x is NULL, already packed `x_bits`. Output: float NHWC `out` and/or packed
 * `out_bits`. `residual` (NHWC, like out) is optional. One thread skips OpenMP altogether (a
 * parallel region costs about a microsecond even when it runs serially). Returns 0, or <0 on a
 * bad ISA / no memory. */
CPNAS_API int cpnas_bconv(int isa, int threads, const struct cpnas_conv *cv, const float *x, uint64_t *x_bits,
                          const float *residual, float *out, uint64_t *out_bits)
{
    if (!cpnas_isa_supported(isa)) return -1;
    const struct isa_kernels *k = &KERNELS[isa];
    if (threads < 1) threads = 1;
    int pop_stride = cv->kernel == CPNAS_DEPTHWISE ? cv->in_words * 64 : cv->n_blocks * CPNAS_BLOCK;
    int64_t per_thread = (int64_t)cv->out_w * pop_stride + cv->out_w + cv->out_c;  /* 4-byte items */
    int32_t *memory = malloc((size_t)(per_thread * threads) * sizeof(int32_t));
    if (!memory) return -2;
    if (threads == 1) {
        run_layer(k, cv, x, x_bits, residual, out, out_bits, memory, per_thread, pop_stride);
    } else {
#pragma omp parallel num_threads(threads)
        run_layer(k, cv, x, x_bits, residual, out, out_bits, memory, per_thread, pop_stride);
    }
    free(memory);
    return 0;
}
