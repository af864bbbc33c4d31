/* What the multi-rank pipeline tests (tests/mpi_*_layouts.c) share: the
 * layouts they run, named by the label they print ("cfg2 x tp2 +EP(world)"),
 * picked for the world's size; the serial run's files read back; and the bar
 * every layout meets against the serial run, with its line of output.
 *
 * A label is the layout: words "tpN", "ulyssesN", "ringN", "cfgN", "dpN",
 * "vaeN" (VAE patch parallel), "x" between degrees, "+EP" (expert parallel
 * over a branch's tp x sp ranks) or "+EP(world)" (over every rank), and last
 * an optional note "(2 images)" or "(A, B)": the layout makes two images, or
 * takes two prompts, one per data-parallel replica. Parsing the label rather
 * than writing the degrees beside it keeps the two from disagreeing. */
#ifndef MOEDIT_TESTS_TEST_LAYOUTS_H
#define MOEDIT_TESTS_TEST_LAYOUTS_H

#include "backend/backend.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct test_layout {
    const char *label;
    moedit_parallel parallel;
    int images; /* 2 with a note "(2 images)" or "(A, B)", else 1 */
} test_layout;

/* Reads one word of a label into *layout; 0, or -1 for a word it does not know. */
static inline int test_layout_word(const char *word, test_layout *layout)
{
    static const char *const names[] = {"tp", "ulysses", "ring", "cfg", "dp", "vae"};
    moedit_parallel *p = &layout->parallel;
    int *degrees[] = {&p->tensor_parallel, &p->ulysses, &p->ring, &p->cfg_parallel, &p->data_parallel,
                      &p->vae_patch_parallel};
    if (!strcmp(word, "x")) return 0;
    if (!strcmp(word, "+EP") || !strcmp(word, "+EP(world)")) {
        p->expert_parallel = 1;
        if (word[3]) p->expert_parallel_scope = MOEDIT_EXPERT_SCOPE_WORLD;
        return 0;
    }
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(names[i]);
        char *end = NULL;
        if (strncmp(word, names[i], n) || word[n] < '1' || word[n] > '9') continue;
        *degrees[i] = (int)strtol(word + n, &end, 10);
        return *end ? -1 : 0;
    }
    return -1;
}

/* The layout a label names (see the top); 0, or -1 for a label it cannot read. */
static inline int test_layout_parse(const char *label, test_layout *layout)
{
    memset(layout, 0, sizeof *layout);
    layout->label = label;
    layout->images = 1;
    char words[128];
    snprintf(words, sizeof words, "%s", label);
    char *note = strchr(words, '(');
    while (note && note > words && note[-1] != ' ') note = strchr(note + 1, '('); /* "+EP(world)" is a word */
    if (note) {
        if (strcmp(note, "(2 images)") && strcmp(note, "(A, B)")) return -1;
        layout->images = 2;
        *note = '\0';
    }
    char *save = NULL;
    for (char *word = strtok_r(words, " ", &save); word; word = strtok_r(NULL, " ", &save))
        if (test_layout_word(word, layout)) return -1;
    return 0;
}

/* Ranks a layout takes: the product of its degrees (0 counts as 1). */
static inline int test_layout_ranks(const moedit_parallel *p)
{
    int degrees[] = {p->tensor_parallel, p->ulysses, p->ring, p->cfg_parallel, p->data_parallel}, ranks = 1;
    for (int i = 0; i < 5; i++) ranks *= degrees[i] > 0 ? degrees[i] : 1;
    return ranks;
}

/* The serial run every layout is held to: the routing it captured (each
 * layout replays it), its final latents, and what more a test's check needs. */
typedef struct test_serial {
    const char *routing;
    const float *latents;
    const void *more;
} test_serial;

/* check(layout, serial) for each label of `labels` whose layout takes every
 * rank of the world, in the order listed; a label it cannot read fails the
 * test, and so does a multi-rank world that no label fits (it would
 * otherwise pass having compared nothing). */
static inline void test_layouts_run(const char *const *labels, int count,
                                   void (*check)(const test_layout *, const test_serial *), const test_serial *serial)
{
    int checked = 0;
    for (int i = 0; i < count; i++) {
        test_layout layout;
        int status = test_layout_parse(labels[i], &layout);
        CHECK_MSG(status == 0, "'%s' is not a layout", labels[i]);
        if (status || test_layout_ranks(&layout.parallel) != moedit_world_size()) continue;
        check(&layout, serial);
        checked++;
    }
    CHECK_MSG(checked > 0 || moedit_world_size() == 1, "no layout of the list takes %d ranks", moedit_world_size());
}

/* MPI only under a launcher (a _no_launcher run has one rank and no MPI). */
static inline void test_barrier(void)
{
    if (moedit_world_size() > 1) MPI_Barrier(MPI_COMM_WORLD);
}

static inline void test_broadcast(void *data, int bytes)
{
    if (moedit_world_size() > 1) MPI_Bcast(data, bytes, MPI_CHAR, 0, MPI_COMM_WORLD);
}

/* The device a test names as its argument ("cpu" without one), or NULL,
 * said as "skipped: ..." (exit 77), where this machine has none. */
static inline const char *test_layouts_device(int argc, char **argv)
{
    const char *device = argc > 1 ? argv[1] : "cpu";
    backend *probe = backend_create(device);
    if (!probe) {
        printf("skipped: %s\n", error_message());
        return NULL;
    }
    backend_destroy(probe);
    return device;
}

/* moedit_init, then a temporary directory of mkdtemp's `template` that rank
 * 0 makes into dir[size] and names to every rank. Returns the world's size. */
static inline int test_layouts_init(int *argc, char ***argv, char *dir, int size, const char *template)
{
    moedit_init(argc, argv);
    if (moedit_rank() == 0) {
        snprintf(dir, (size_t)size, "%s", template);
        CHECK(mkdtemp(dir) != NULL);
    }
    test_broadcast(dir, size);
    return moedit_world_size();
}

/* This rank's verdict on `test`, then moedit_finalize: the exit status. */
static inline int test_layouts_finish(const char *test)
{
    int status = test_finish_rank(test, moedit_rank(), moedit_world_size());
    moedit_finalize();
    return status;
}

/* The F32 tensor "latents" of `shape` from dir/name.latents (a run's
 * --latents-output); 0 or -1. */
static inline int test_read_latents(const char *dir, const char *name, int ndim, const int64_t *shape, float *out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.latents", dir, name);
    safetensors *st = NULL;
    int status = safetensors_open(&st, path) || safetensors_read_f32(st, "latents", ndim, shape, out);
    if (st) safetensors_close(st);
    return status ? -1 : 0;
}

/* Largest difference between two PNGs' RGB (256: unreadable or of other
 * sizes) and, when both read, their PSNR in dB (99: identical) in *psnr. */
static inline int test_pixel_diff(const char *a_path, const char *b_path, double *psnr)
{
    uint8_t *a = NULL, *b = NULL;
    int64_t aw, ah, bw, bh;
    int worst = 256;
    if (image_read(a_path, 4096, 1 << 24, &a, &aw, &ah) == 0 && image_read(b_path, 4096, 1 << 24, &b, &bw, &bh) == 0 &&
        aw == bw && ah == bh) {
        worst = 0;
        double squares = 0;
        for (int64_t i = 0; i < aw * ah * 3; i++) {
            worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
            squares += (double)(a[i] - b[i]) * (a[i] - b[i]);
        }
        *psnr = squares == 0 ? 99 : 10 * log10(255.0 * 255.0 / (squares / (double)(aw * ah * 3)));
    }
    free(a), free(b);
    return worst;
}

/* A layout's run against the serial run's, as one line of `width` for the label. */
typedef struct test_layout_figures {
    double diff, scale; /* final latents: max abs difference, max abs of the serial's */
    int pixels;         /* largest pixel difference; -1: no image compared */
    double psnr;        /* of the image, dB */
    double rms;         /* final latents: relative rms difference (FP8's bar) */
} test_layout_figures;

/* The bar: on the CPU final latents within 1e-4 of their scale and (with an
 * image) every pixel within 1 of the serial run's; on a GPU, against one
 * GPU's image, a PSNR of at least 40 dB. Then the figures' line. */
static inline void test_layout_judge(const char *label, int width, int on_cpu, const test_layout_figures *f)
{
    if (on_cpu) {
        CHECK_MSG(f->diff <= 1e-4 * f->scale, "%s: final latents differ by %.3g (scale %.3g)", label, f->diff,
                  f->scale);
        CHECK_MSG(f->pixels <= 1, "%s: image differs from serial by %d", label, f->pixels);
    } else {
        CHECK_MSG(f->psnr >= 40, "%s: image PSNR %.1f dB vs one GPU", label, f->psnr);
    }
    printf("  %-*s latents max abs diff %.3g (scale %.3g)", width, label, f->diff, f->scale);
    if (f->pixels >= 0) printf(", max pixel diff %d, PSNR %.1f dB", f->pixels, f->psnr);
    printf("\n");
}

/* FP8's bar (docs/fp8.md; mpi_dit_layouts has the same for one forward):
 * final latents within 1e-4 of their scale, unless an activation within an
 * ulp of an E4M3 tie rounds the other way in the layout (another sum order:
 * tp/sp partial sums, or OpenBLAS's kernels for another number of rows),
 * then within FP8_FLIP_RMS relative rms. 1 when within 1e-4, else 0. */
#define FP8_FLIP_RMS 0.03
static inline int test_layout_judge_fp8(const char *label, int width, const test_layout_figures *f)
{
    int exact = f->diff <= 1e-4 * f->scale;
    CHECK_MSG(exact || f->rms <= FP8_FLIP_RMS, "%s fp8: final latents differ by %.3g (scale %.3g), relative rms %.3g",
              label, f->diff, f->scale, f->rms);
    printf("  %-*s latents max abs diff %.3g (scale %.3g)", width, label, f->diff, f->scale);
    if (!exact) printf(" (FP8 rounding flips, relative rms %.3g)", f->rms);
    return exact;
}

/* After a layout's run on every rank (status: the run's here, a failure
 * fails the test), rank 0 reads its final latents, dir/name.latents of
 * `shape`, and compares them with serial's into *f (no image yet: pixels
 * -1). 1 on rank 0 when it did, else 0 (a latents file it cannot read
 * fails the test). */
static inline int test_layout_latents(const char *label, int status, const char *dir, const char *name, int ndim,
                                      const int64_t *shape, const float *serial, test_layout_figures *f)
{
    CHECK_MSG(status == 0, "%s: %s", label, error_message());
    test_barrier();
    if (moedit_rank() != 0 || status) return 0;
    long n = 1;
    for (int d = 0; d < ndim; d++) n *= (long)shape[d];
    float *got = malloc((size_t)n * sizeof *got);
    int read = got ? test_read_latents(dir, name, ndim, shape, got) : -1;
    CHECK_MSG(read == 0, "%s: %s", label, error_message());
    if (read == 0)
        *f = (test_layout_figures){test_max_abs_diff(got, serial, n), test_max_abs(serial, n), -1, 0,
                                   test_relative_rms(got, serial, n)};
    free(got);
    return read == 0;
}

#endif
