/* The C kernels of `cpnas export --format c`, one section per plan step (plan.py), cut at the
 * `@ name` markers: c_source.py copies into a model only the sections its plan uses, so a model
 * compiles warning-free (no unused static function) under -Wall -Wextra -Werror.
 * Activations are float32, planar C x H x W per value; every kernel computes what run_torch does. */
/*@ bits */
/* The sign bits of 1-bit kernels (packing.pack_signs order: kernel flattened (out, in/groups, kh, kw),
 * least significant bit first) as little-endian 32-bit words, and the input patch of one output
 * position in the same order: the patch's words `sign` (1 = x >= 0, so sign(-0.0) = +1 too) and
 * `valid` (1 = an in-bounds tap; padded taps add 0 to the sum). */
/* GCC and Clang have a popcount builtin (one instruction where the CPU has one); elsewhere, or with
 * -DCPNAS_PORTABLE_POPCOUNT, the bit-twiddling count. */
#if defined(__GNUC__) && __SIZEOF_INT__ >= 4 && !defined(CPNAS_PORTABLE_POPCOUNT)
#define POPCOUNT(v) __builtin_popcount(v)
#else
static int POPCOUNT(uint32_t v)
{
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    return (int)((((v + (v >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24);
}
#endif

/* 32 kernel bits from bit `at` on: a row of a kernel starts anywhere in a word (rows are not
 * padded, so flash holds exactly one bit per weight); every array ends with a spare zero word. */
static uint32_t bits_at(const uint32_t *bits, uint32_t at)
{
    uint32_t i = at >> 5, s = at & 31u;
    return s ? (bits[i] >> s) | (bits[i + 1] << (32u - s)) : bits[i];
}

static int patch(const float *x, int c, int h, int w, int k, int y0, int x0, int dil)
{
    int t = 0, valid = 0;
    memset(patch_sign, 0, sizeof patch_sign);
    memset(patch_valid, 0, sizeof patch_valid);
    for (int ci = 0; ci < c; ci++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++, t++) {
                int iy = y0 + ky * dil, ix = x0 + kx * dil;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                    continue;
                valid++;
                patch_valid[t >> 5] |= 1u << (t & 31);
                if (x[(ci * h + iy) * w + ix] >= 0.0f)
                    patch_sign[t >> 5] |= 1u << (t & 31);
            }
    return valid;
}
/*@ bconv */
/* 1-bit conv: y = beta[o] * acc, acc = (matching signs) - (differing signs) over the valid taps,
 * an exact integer; the input patch is binarized once per group and output position. */
static void bconv(const float *x, float *y, int cin, int h, int w, int cout, int oh, int ow, int k, int stride,
                  int pad, int dil, int groups, const uint32_t *bits, const float *beta)
{
    const int cin_g = cin / groups, cout_g = cout / groups, taps = cin_g * k * k, words = (taps + 31) / 32;
    for (int g = 0; g < groups; g++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int valid = patch(x + g * cin_g * h * w, cin_g, h, w, k, oy * stride - pad, ox * stride - pad, dil);
                for (int o = g * cout_g; o < (g + 1) * cout_g; o++) {
                    uint32_t row = (uint32_t)o * (uint32_t)taps;
                    int match = 0;
                    for (int j = 0; j < words; j++)
                        match += POPCOUNT(~(patch_sign[j] ^ bits_at(bits, row + 32u * (uint32_t)j)) & patch_valid[j]);
                    y[(o * oh + oy) * ow + ox] = beta[o] * (float)(2 * match - valid);
                }
            }
}
/*@ conv */
/* Full-precision conv (the stem): fused multiply-adds in (ky, kx, in) order, then the bias, as oneDNN
 * computes torch's conv on x86 (bit for bit, measured), so the first 1-bit conv sees the same signs. */
static void conv(const float *x, float *y, int cin, int h, int w, int cout, int oh, int ow, int k, int stride,
                 int pad, const float *weight, const float *bias)
{
    for (int o = 0; o < cout; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float acc = 0.0f;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                            continue;
                        for (int ci = 0; ci < cin; ci++)
                            acc = fmaf(x[(ci * h + iy) * w + ix], weight[((o * cin + ci) * k + ky) * k + kx], acc);
                    }
                y[(o * oh + oy) * ow + ox] = bias ? acc + bias[o] : acc;
            }
}
/*@ affine */
/* Folded BatchNorm, one fused multiply-add as torch's addcmul (hardware fma on Cortex-M7, AArch64). */
static void affine(const float *x, float *y, int c, int hw, const float *scale, const float *shift)
{
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < hw; i++)
            y[ch * hw + i] = fmaf(x[ch * hw + i], scale[ch], shift[ch]);
}
/*@ relu */
static void relu(const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
/*@ pool */
/* 3x3 pooling, padding 1: max, or the mean of the in-bounds taps (padding not counted). */
static void pool(const float *x, float *y, int c, int h, int w, int oh, int ow, int stride, int is_max)
{
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float acc = is_max ? -INFINITY : 0.0f;
                int n = 0;
                for (int iy = oy * stride - 1; iy <= oy * stride + 1; iy++)
                    for (int ix = ox * stride - 1; ix <= ox * stride + 1; ix++) {
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                            continue;
                        float v = x[(ch * h + iy) * w + ix];
                        acc = is_max ? (v > acc ? v : acc) : acc + v;
                        n++;
                    }
                y[(ch * oh + oy) * ow + ox] = is_max ? acc : acc / (float)n;
            }
}
/*@ halve */
/* 2x2 average pooling, stride 2, ceil mode: the mean of the in-bounds taps. */
static void halve(const float *x, float *y, int c, int h, int w, int oh, int ow)
{
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float acc = 0.0f;
                int n = 0;
                for (int iy = 2 * oy; iy < 2 * oy + 2 && iy < h; iy++)
                    for (int ix = 2 * ox; ix < 2 * ox + 2 && ix < w; ix++, n++)
                        acc += x[(ch * h + iy) * w + ix];
                y[(ch * oh + oy) * ow + ox] = acc / (float)n;
            }
}
/*@ mix */
/* Channel averaging to `cout` channels: output o is the mean of input channels
 * [floor(o*cin/cout), ceil((o+1)*cin/cout)), adaptive pooling over the channel axis. */
static void mix(const float *x, float *y, int cin, int cout, int hw)
{
    for (int o = 0; o < cout; o++) {
        int start = o * cin / cout, end = ((o + 1) * cin + cout - 1) / cout;
        for (int i = 0; i < hw; i++) {
            float acc = 0.0f;
            for (int ch = start; ch < end; ch++)
                acc += x[ch * hw + i];
            y[o * hw + i] = acc / (float)(end - start);
        }
    }
}
/*@ pick */
/* Every second pixel from `offset` in both directions, zero-padded to oh x ow. */
static void pick(const float *x, float *y, int c, int h, int w, int oh, int ow, int offset)
{
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int iy = 2 * oy + offset, ix = 2 * ox + offset;
                y[(ch * oh + oy) * ow + ox] = iy < h && ix < w ? x[(ch * h + iy) * w + ix] : 0.0f;
            }
}
/*@ add */
static void add(const float *x, const float *z, float *y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] + z[i];
}
/*@ concat */
/* Planar values concatenate along channels: each input is copied after the one before. */
static void concat(const float *x, float *y, int n)
{
    memcpy(y, x, (size_t)n * sizeof *y);
}
/*@ gap */
static void gap(const float *x, float *y, int c, int hw)
{
    for (int ch = 0; ch < c; ch++) {
        float acc = 0.0f;
        for (int i = 0; i < hw; i++)
            acc += x[ch * hw + i];
        y[ch] = acc / (float)hw;
    }
}
/*@ linear */
static void linear(const float *x, float *y, int cin, int cout, const float *weight, const float *bias)
{
    for (int o = 0; o < cout; o++) {
        float acc = 0.0f;
        for (int i = 0; i < cin; i++)
            acc += x[i] * weight[o * cin + i];
        y[o] = acc + bias[o];
    }
}
