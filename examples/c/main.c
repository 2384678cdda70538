/* classify: the class of images, by a 1-bit network exported with
 *     cpnas export <best.safetensors or model.cpnas> fm_model.c     (prefix fm, fm_model.h beside it)
 *
 *     ./classify image.pgm [more.ppm ...]      binary PGM (P5, gray) or PPM (P6, RGB), maxval 255,
 *                                              the model's size and channel count
 *     ./classify images-idx3-ubyte [labels-idx1-ubyte]
 *                                              every image of an (uncompressed) IDX file; with the labels,
 *                                              the accuracy; and the time per image
 * Plain C99; the model itself needs no libc beyond string.h and math.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fm_model.h"

static uint8_t pixels[FM_INPUT_BYTES];

/* The next decimal number of a PNM header, past whitespace and # comments. */
static long pnm_number(FILE *f)
{
    int c = fgetc(f);
    while (c == '#' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        if (c == '#')
            while (c != '\n' && c != EOF)
                c = fgetc(f);
        c = fgetc(f);
    }
    long value = 0;
    for (; c >= '0' && c <= '9'; c = fgetc(f))
        value = value * 10 + (c - '0');
    return value; /* the one whitespace byte after it is consumed */
}

/* A P5/P6 image into `pixels` (P6 is already H x W x C interleaved, as the model wants it). */
static int read_pnm(FILE *f, const char *path)
{
    char magic[3] = {0};
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '6')) {
        fprintf(stderr, "%s: not a binary PGM (P5) or PPM (P6) image\n", path);
        return 0;
    }
    long channels = magic[1] == '5' ? 1 : 3, width = pnm_number(f), height = pnm_number(f), maxval = pnm_number(f);
    if (width != FM_INPUT_WIDTH || height != FM_INPUT_HEIGHT || channels != FM_INPUT_CHANNELS || maxval != 255) {
        fprintf(stderr, "%s: %ldx%ld, %ld channel(s), maxval %ld; the model takes %dx%d, %d channel(s), maxval 255\n",
                path, width, height, channels, maxval, FM_INPUT_WIDTH, FM_INPUT_HEIGHT, FM_INPUT_CHANNELS);
        return 0;
    }
    if (fread(pixels, 1, FM_INPUT_BYTES, f) != FM_INPUT_BYTES) {
        fprintf(stderr, "%s: truncated\n", path);
        return 0;
    }
    return 1;
}

static long idx_int(FILE *f)
{
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4)
        return -1;
    return (long)b[0] << 24 | (long)b[1] << 16 | (long)b[2] << 8 | (long)b[3]; /* big-endian */
}

/* Every image of an IDX file (magic 0x803: n, rows, cols, bytes); the accuracy when labels are given. */
static int classify_idx(FILE *images, const char *labels_path)
{
    long n = idx_int(images), rows = idx_int(images), cols = idx_int(images); /* past the magic */
    FILE *labels = labels_path ? fopen(labels_path, "rb") : NULL;
    if (rows != FM_INPUT_HEIGHT || cols != FM_INPUT_WIDTH || FM_INPUT_CHANNELS != 1) {
        fprintf(stderr, "IDX images are %ldx%ld gray; the model takes %dx%dx%d\n", rows, cols, FM_INPUT_HEIGHT,
                FM_INPUT_WIDTH, FM_INPUT_CHANNELS);
        return 1;
    }
    if (labels_path && (!labels || idx_int(labels) != 0x801 || idx_int(labels) != n)) {
        fprintf(stderr, "%s: not the IDX labels of these %ld images\n", labels_path, n);
        return 1;
    }
    long right = 0;
    double seconds = 0;
    for (long i = 0; i < n; i++) {
        if (fread(pixels, 1, FM_INPUT_BYTES, images) != FM_INPUT_BYTES) {
            fprintf(stderr, "IDX images: truncated at image %ld\n", i);
            return 1;
        }
        clock_t start = clock();
        int label = fm_predict(pixels, NULL);
        seconds += (double)(clock() - start) / CLOCKS_PER_SEC;
        if (labels)
            right += fgetc(labels) == label;
        else
            printf("%ld: %d %s\n", i, label, fm_class_names[label]);
    }
    if (labels)
        printf("accuracy %.2f%% (%ld of %ld images)\n", 100.0 * right / n, right, n);
    printf("%.3f ms per image (%ld images, %.2f s of CPU)\n", 1e3 * seconds / n, n, seconds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s image.pgm|image.ppm ... | images-idx3-ubyte [labels-idx1-ubyte]\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        if (idx_int(f) == 0x803)
            return classify_idx(f, i + 1 < argc ? argv[i + 1] : NULL);
        rewind(f);
        if (!read_pnm(f, argv[i]))
            return 1;
        int label = fm_predict(pixels, NULL);
        printf("%s: %d %s\n", argv[i], label, fm_class_names[label]);
        fclose(f);
    }
    return 0;
}
