/* Animated PNGs are well formed: signature, acTL with the frame count, one
 * fcTL per frame and fdAT for every frame after the first, sequence numbers
 * 0, 1, 2... in order; the first frame reads back as the plain PNG image and
 * every later frame's fdAT decompresses to exactly its rows. */
#include "io/apng.h"
#include "core/error.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define W 7
#define H 5
#define FRAMES 3

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

int main(void)
{
    static uint8_t frames[FRAMES][W * H * 3];
    const uint8_t *views[FRAMES];
    for (int f = 0; f < FRAMES; f++) {
        for (int i = 0; i < W * H * 3; i++) frames[f][i] = (uint8_t)(i * 3 + f * 50);
        views[f] = frames[f];
    }
    char path[] = "/tmp/moedit_apng_XXXXXX.png";
    close(mkstemps(path, 4));
    image_metadata meta = {0};
    image_metadata_add(&meta, "prompt", "a red circle moving left to right");
    CHECK_MSG(apng_write(path, views, FRAMES, W, H, 8, &meta) == 0, "%s", error_message());

    FILE *f = fopen(path, "rb");
    static uint8_t file[1 << 16];
    size_t size = f ? fread(file, 1, sizeof file, f) : 0;
    if (f) fclose(f);
    CHECK(size > 8 && memcmp(file, "\x89PNG\r\n\x1a\n", 8) == 0);
    int fctl = 0, fdat = 0, actl_frames = -1, next_sequence = 0, saw_idat = 0;
    for (size_t at = 8; at + 12 <= size;) {
        uint32_t length = get32(file + at);
        const uint8_t *type = file + at + 4, *data = file + at + 8;
        CHECK(crc32(crc32(0, type, 4), data, length) == get32(data + length));
        if (!memcmp(type, "acTL", 4)) actl_frames = (int)get32(data);
        if (!memcmp(type, "IDAT", 4)) saw_idat = 1;
        if (!memcmp(type, "fcTL", 4) || !memcmp(type, "fdAT", 4)) {
            CHECK_MSG((int)get32(data) == next_sequence, "sequence %u, expected %d", get32(data), next_sequence);
            next_sequence++;
        }
        if (!memcmp(type, "fcTL", 4)) {
            fctl++;
            CHECK(get32(data + 4) == W && get32(data + 8) == H && data[23] == 8);
        }
        if (!memcmp(type, "fdAT", 4)) {
            fdat++;
            CHECK(saw_idat);
            uint8_t raw[H * (W * 3 + 1)];
            uLongf raw_size = sizeof raw;
            CHECK(uncompress(raw, &raw_size, data + 4, length - 4) == Z_OK && raw_size == sizeof raw);
            for (int y = 0; y < H; y++) CHECK(memcmp(raw + y * (W * 3 + 1) + 1, frames[fdat] + y * W * 3, W * 3) == 0);
        }
        at += 12 + length;
    }
    CHECK(actl_frames == FRAMES && fctl == FRAMES && fdat == FRAMES - 1);

    uint8_t *rgb = NULL;
    int64_t w, h;
    CHECK_MSG(image_read(path, 4096, 1 << 20, &rgb, &w, &h) == 0, "%s", error_message());
    CHECK(rgb && w == W && h == H && memcmp(rgb, frames[0], sizeof frames[0]) == 0);
    free(rgb);
    unlink(path);
    return test_finish("test_apng");
}
