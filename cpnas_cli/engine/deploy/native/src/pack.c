/* The exported-per-ISA pack functions (cpnas_pack, the depth-wise kernel's epilogue): the
 * inline bodies of pack.h, one function per ISA. */
#include "pack.h"

void pack_pixel_portable(const float *x, int channels, uint64_t *bits)
{
    pack_pixel_portable_inline(x, channels, bits);
}

#if CPNAS_X86
TARGET_AVX2 void pack_pixel_avx2(const float *x, int channels, uint64_t *bits)
{
    pack_pixel_avx2_inline(x, channels, bits);
}

TARGET_AVX512 void pack_pixel_avx512(const float *x, int channels, uint64_t *bits)
{
    pack_pixel_avx512_inline(x, channels, bits);
}
#endif
