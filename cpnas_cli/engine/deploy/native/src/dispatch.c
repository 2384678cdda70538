/* Entry points of the cpnas native library: ISA selection and the threaded driver of 1-bit conv
 * layers, alone (cpnas_bconv) or as a chain in one call (cpnas_run).
 *
 * A layer runs inside one OpenMP parallel region (a chain: all its layers in the same region):
 * binarize + pack the float input when the kernel reads neighbouring pixels, then segments of
 * output rows of all images shared among the threads (batch x rows, so batch 1 uses every
 * thread too). A 1x1 conv without padding packs each segment's own input pixels as it goes (no
 * pass over the whole input, no barrier), and one with stride 1 sees the batch as a single row
 * of N*H*W pixels cut into short segments. The kernels write NHWC float32 and/or the packed
 * sign bits of the result; the epilogue is in lanes.c (AVX-512) and epilogue.h (the others).
 */
#include <stdlib.h>
#include <string.h>
#include "pack.h"

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
            && __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bitalg")
            && __builtin_cpu_supports("popcnt");
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

#define ERROR_ISA (-1)
#define ERROR_MEMORY (-2)
#define ERROR_ISA_NAME (-3) /* CPNAS_NATIVE_ISA is not exactly the name of a path this CPU offers */

/* isa < 0: the path CPNAS_NATIVE_ISA names exactly (read at every call, so tests can switch
 * it), or the best one when it is unset or empty. Anything else is ERROR_ISA_NAME, and the
 * binding explains it (or accepts another spelling) in Python. */
static int resolve_isa(int isa)
{
    if (isa >= 0) return cpnas_isa_supported(isa) ? isa : ERROR_ISA;
    const char *name = getenv("CPNAS_NATIVE_ISA");
    if (!name || !*name) return cpnas_best_isa();
    static const char *const names[] = {"portable", "avx2", "avx512"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) return cpnas_isa_supported(i) ? i : ERROR_ISA_NAME;
    return ERROR_ISA_NAME;
}

struct isa_kernels {
    pack_fn pack;
    segment_fn lanes, depthwise;
};

static const struct isa_kernels KERNELS[] = {
    {pack_pixel_portable, lanes_segment_portable, depthwise_segment_portable},
#if CPNAS_X86
    {pack_pixel_avx2, lanes_segment_avx2, depthwise_segment_avx2},
    {pack_pixel_avx512, lanes_segment_avx512, depthwise_segment_avx512},
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
    isa = resolve_isa(isa);
    if (isa < 0) return isa;
    pack_fn pack = KERNELS[isa].pack;
    int words = (channels + 63) / 64;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t p = 0; p < pixels; p++) pack(x + p * channels, channels, bits + p * words);
    return 0;
}

/* How a layer call is cut into segments, and the scratch its threads need. */
struct layout {
    struct cpnas_conv conv;  /* the layer's geometry, a stride-1 1x1 conv as one row of N*H*W */
    int local;               /* 1x1 without padding: segments pack their own input pixels */
    int segment;             /* pixels per segment (out_w unless the batch is one row) */
    int64_t segments, scratch_words;
};

#define SEGMENT_MAX 64

static struct layout layout_of(const struct cpnas_conv *cv, int threads)
{
    struct layout l = {*cv, 0, cv->out_w, (int64_t)cv->batch * cv->out_h, 0};
    struct cpnas_conv *c = &l.conv;
    l.local = c->kernel != CPNAS_DEPTHWISE && c->kernel_h == 1 && c->kernel_w == 1 && c->pad_h == 0 && c->pad_w == 0;
    if (l.local && c->stride_h == 1 && c->stride_w == 1) {
        int64_t pixels = (int64_t)c->batch * c->out_h * c->out_w;
        c->in_w = c->out_w = (int32_t)pixels, c->in_h = c->out_h = c->batch = 1;
        /* Enough segments for every thread to get several, each a multiple of 4 pixels. */
        int64_t size = (pixels + 4 * threads - 1) / (4 * threads);
        size = (size + 3) / 4 * 4;
        l.segment = (int)(size < 8 ? 8 : size > SEGMENT_MAX ? SEGMENT_MAX : size);
        l.segments = (pixels + l.segment - 1) / l.segment;
    }
    int pop_stride = c->kernel == CPNAS_DEPTHWISE ? c->in_words * 64 : (c->out_c + 15) / 16 * 16 + 16;
    int64_t four_byte = (int64_t)l.segment * pop_stride + l.segment + c->out_c;  /* pop, taps, pixel */
    l.scratch_words = (l.local ? (int64_t)l.segment * c->in_words : 0) + (four_byte + 1) / 2;
    return l;
}

static struct scratch scratch_of(const struct layout *l, uint64_t *words, uint64_t **local)
{
    const struct cpnas_conv *c = &l->conv;
    *local = words;
    int32_t *four_byte = (int32_t *)(words + (l->local ? (int64_t)l->segment * c->in_words : 0));
    struct scratch ws;
    ws.pop_stride = c->kernel == CPNAS_DEPTHWISE ? c->in_words * 64 : (c->out_c + 15) / 16 * 16 + 16;
    ws.pop = four_byte;
    ws.taps = ws.pop + (int64_t)l->segment * ws.pop_stride;
    ws.pixel = (float *)(ws.taps + l->segment);
    return ws;
}

/* The work of one layer call, shared by the threads of the enclosing parallel region (or run
 * alone: the `omp for` loops are orphaned then and cover every iteration). */
static void run_layer(const struct isa_kernels *k, const struct cpnas_call *call, const struct layout *l,
                      uint64_t *scratch)
{
    const struct cpnas_conv *c = &l->conv;
    uint64_t *local;
    struct scratch ws = scratch_of(l, scratch, &local);
    segment_fn kernel = c->kernel == CPNAS_DEPTHWISE ? k->depthwise : k->lanes;
    int64_t image_words = (int64_t)c->in_h * c->in_w * c->in_words;
    int64_t out_row = (int64_t)c->out_w * c->out_c, out_bits_row = (int64_t)c->out_w * c->out_words;
    int pack_first = call->x && !l->local;
    if (pack_first) {
        int64_t in_pixels = (int64_t)c->batch * c->in_h * c->in_w;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < in_pixels; p++)
            k->pack(call->x + p * c->in_c, c->in_c, call->x_bits + p * c->in_words);
    }
    int64_t per_row = (c->out_w + l->segment - 1) / l->segment;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < (int64_t)c->batch * c->out_h * per_row; item++) {
        int64_t row = item / per_row;
        int n = (int)(row / c->out_h), oh = (int)(row % c->out_h);
        struct segment s;
        s.oh = oh;
        s.ow0 = (int)(item % per_row) * l->segment;
        s.ow1 = s.ow0 + l->segment < c->out_w ? s.ow0 + l->segment : c->out_w;
        s.image = call->x_bits ? call->x_bits + n * image_words : 0;
        s.x_image = l->local && call->x ? call->x + (int64_t)n * c->in_h * c->in_w * c->in_c : 0;
        s.local = local;
        s.residual = call->residual ? call->residual + row * out_row : 0;
        s.out = call->out ? call->out + row * out_row : 0;
        s.out_bits = call->out_bits ? call->out_bits + row * out_bits_row : 0;
        kernel(c, &s, &ws);
    }
}

/* The calling thread's scratch, kept between calls and grown as needed: a malloc + free per call
 * costs as much as a small layer (and a fresh large block its page faults). */
static uint64_t *scratch_words(int64_t words)
{
    static _Thread_local uint64_t *kept;
    static _Thread_local int64_t kept_words;
    if (words > kept_words) {
        free(kept);
        kept = malloc((size_t)words * sizeof(uint64_t));
        kept_words = kept ? words : 0;
    }
    return kept;
}

/* A chain of 1-bit conv layers, one after another, each as cpnas_bconv describes, in one
 * parallel region (a layer's output may be the next one's input). One thread skips OpenMP
 * altogether (a parallel region costs about a microsecond even when it runs serially). Returns
 * 0, or < 0 on a bad ISA / no memory. */
CPNAS_API int cpnas_run(int isa, int threads, int count, const struct cpnas_call *calls)
{
    isa = resolve_isa(isa);
    if (isa < 0) return isa;
    const struct isa_kernels *k = &KERNELS[isa];
    if (threads < 1) threads = 1;
    struct layout stack[8], *layouts = count <= 8 ? stack : malloc(sizeof(struct layout) * (size_t)count);
    if (!layouts) return ERROR_MEMORY;
    int64_t per_thread = 0;
    for (int i = 0; i < count; i++) {
        layouts[i] = layout_of(calls[i].conv, threads);
        if (layouts[i].scratch_words > per_thread) per_thread = layouts[i].scratch_words;
    }
    uint64_t *scratch = scratch_words(per_thread * threads);
    if (!scratch) {
        if (layouts != stack) free(layouts);
        return ERROR_MEMORY;
    }
    if (threads == 1) {
        for (int i = 0; i < count; i++) run_layer(k, &calls[i], &layouts[i], scratch);
    } else {
#pragma omp parallel num_threads(threads)
        {
            uint64_t *mine = scratch + per_thread * thread_id();
            for (int i = 0; i < count; i++) run_layer(k, &calls[i], &layouts[i], mine);
        }
    }
    if (layouts != stack) free(layouts);
    return 0;
}

/* One 1-bit conv layer. Input: float NHWC `x` (packed into the caller's `x_bits` workspace
 * first, unless the conv is 1x1 without padding: then x_bits may be NULL) or, when x is NULL,
 * already packed `x_bits`. Output: float NHWC `out` and/or packed `out_bits`. `residual`
 * (NHWC, like out) is optional. isa < 0: as CPNAS_NATIVE_ISA says (see resolve_isa). */
CPNAS_API int cpnas_bconv(int isa, int threads, const struct cpnas_conv *cv, const float *x, uint64_t *x_bits,
                          const float *residual, float *out, uint64_t *out_bits)
{
    struct cpnas_call call = {cv, x, x_bits, residual, out, out_bits};
    return cpnas_run(isa, threads, 1, &call);
}
