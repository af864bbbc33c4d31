/* Motion of the shipped demo model's clips (moedit video), judged from pixels.
 * For prompts "a COLOR SHAPE moving DIRECTION on a BG background", each frame's
 * object pixels are the pixel judge's (demo_judge_object_mask: farther than its
 * OBJECT_DISTANCE from the background color measured on the border); their
 * centroid is tracked over the frames and a straight line fitted to it. A clip
 * moves as stated when the fitted travel over the clip is at least MIN_TRAVEL
 * of the frame side along the stated axis, in the stated sense, and larger
 * than the travel across it.
 *
 * `test_demo_video --judge DIR FRAMES DIRECTION` judges frames DIR/frame-NNNN.png
 * made elsewhere (tools/eval/eval_video_motion.py uses it): one line
 * "ok|MISS<TAB>travel along A, across B<TAB>dx dy". */
#include "core/error.h"
#include "io/image_io.h"
#include "demo_judge.h"
#include "moedit.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/../../models/demo"
#define FRAMES 8
#define SIZE 128
#define STEPS 20
#define GUIDANCE 4.0
#define MIN_TRAVEL 0.2
#define MIN_OBJECT_PIXELS 4

static const struct {
    const char *name;
    int axis, sense; /* axis 0 = x (right), 1 = y (down) */
} DIRECTIONS[] = {{"left to right", 0, 1}, {"right to left", 0, -1}, {"top to bottom", 1, 1}, {"bottom to top", 1, -1}};

static const struct {
    const char *prompt;
    int direction;
} VIDEOS[] = {
    {"a red circle moving left to right on a white background", 0},
    {"a blue square moving right to left on a black background", 1},
    {"a yellow star moving top to bottom on a gray background", 2},
    {"a green diamond moving bottom to top on a white background", 3},
    {"an orange triangle moving left to right on a gray background", 0},
    {"a purple circle moving top to bottom on a black background", 2},
};
#define VIDEO_COUNT ((int)(sizeof VIDEOS / sizeof *VIDEOS))
/* Measured 2026-11-30 (docs/video.md): 6 of these 6 with the model of 5133 DiT steps;
 * the threshold is that less one clip of slack. */
#define MIN_MOVING 5

/* DIR/frame-NNNN.png, as moedit video writes a clip into a directory. */
static void frame_path(char *path, size_t size, const char *dir, int frame)
{
    snprintf(path, size, "%s/frame-%04d.png", dir, frame);
}

/* Centroid in [0, 1]^2 of the object pixels of one frame; 0 when it has too few. */
static int frame_centroid(const char *path, double *x, double *y)
{
    uint8_t *rgb = NULL;
    int64_t w, h;
    if (image_read(path, 4096, 1 << 24, &rgb, &w, &h)) return -1;
    uint8_t *mask = malloc((size_t)(w * h));
    if (!mask) {
        free(rgb);
        return -1;
    }
    demo_judge_object_mask(rgb, w, h, mask);
    double sx = 0, sy = 0;
    long count = 0;
    for (int64_t i = 0; i < w * h; i++)
        if (mask[i]) sx += (double)(i % w) + 0.5, sy += (double)(i / w) + 0.5, count++;
    free(rgb), free(mask);
    if (count < MIN_OBJECT_PIXELS) return 0;
    *x = sx / (double)count / (double)w, *y = sy / (double)count / (double)h;
    return 1;
}

/* Judges DIR/frame-NNNN.png (frames of them) against a direction index; prints one line.
 * 1 moves as stated, 0 not, -1 unreadable. */
static int judge_video(const char *dir, int frames, int direction)
{
    double st = 0, stt = 0, sp[2] = {0}, stp[2] = {0};
    int found = 0;
    for (int f = 0; f < frames; f++) {
        char path[1024];
        frame_path(path, sizeof path, dir, f);
        double p[2];
        int status = frame_centroid(path, &p[0], &p[1]);
        if (status < 0) {
            fprintf(stderr, "%s: %s\n", path, error_message());
            return -1;
        }
        if (!status) continue;
        found++, st += f, stt += (double)f * f;
        for (int a = 0; a < 2; a++) sp[a] += p[a], stp[a] += f * p[a];
    }
    if (found < 2) {
        printf("MISS\tno object found in at least two frames\t0 0\n");
        return 0;
    }
    double travel[2]; /* least-squares slope per axis, times the clip's length in frames */
    for (int a = 0; a < 2; a++)
        travel[a] = (found * stp[a] - st * sp[a]) / (found * stt - st * st) * (frames - 1);
    int axis = DIRECTIONS[direction].axis;
    double along = travel[axis] * DIRECTIONS[direction].sense, across = fabs(travel[1 - axis]);
    int ok = along >= MIN_TRAVEL && along > across;
    printf("%s\ttravel along %+.2f, across %.2f\t%.3f %.3f\n", ok ? "ok" : "MISS", along, across, travel[0], travel[1]);
    return ok;
}

static int direction_index(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(DIRECTIONS[i].name, name)) return i;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--judge")) {
        char *end;
        long frames = strtol(argv[3], &end, 10);
        int direction = direction_index(argv[4]);
        if (*end || end == argv[3] || frames < 2 || frames > 100000 || direction < 0) {
            fprintf(stderr, "usage: test_demo_video --judge DIR FRAMES \"left to right\"|\"right to left\"|"
                            "\"top to bottom\"|\"bottom to top\"\n");
            return 2;
        }
        return judge_video(argv[2], (int)frames, direction) < 0 ? 2 : 0;
    }
    moedit_init(&argc, &argv);
    if (access(MODEL "/model_index.json", R_OK) != 0) {
        fprintf(stderr, "%s: no demo model\n", MODEL);
        return 1;
    }
    char dir[] = "/tmp/moedit-motion-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int moving = 0;
    double seconds = 0;
    for (int i = 0; i < VIDEO_COUNT; i++) {
        char output[64];
        snprintf(output, sizeof output, "%s/", dir);
        const char *prompts[1] = {VIDEOS[i].prompt};
        moedit_video_options o = {.base = {.model_dir = MODEL, .prompts = prompts, .prompt_count = 1, .height = SIZE,
                                           .width = SIZE, .steps = STEPS, .guidance = GUIDANCE, .seed = i,
                                           .images_per_prompt = 1, .output = output, .quiet = 1},
                                  .frames = FRAMES};
        moedit_generate_result r;
        CHECK_MSG(moedit_video(&o, &r) == 0, "video: %s", moedit_error());
        seconds += r.total_seconds;
        moedit_generate_result_free(&r);
        printf("%s: ", VIDEOS[i].prompt);
        int ok = judge_video(dir, FRAMES, VIDEOS[i].direction);
        CHECK(ok >= 0);
        moving += ok > 0;
        for (int f = 0; f < FRAMES; f++) {
            char path[96];
            frame_path(path, sizeof path, dir, f);
            unlink(path);
        }
    }
    rmdir(dir);
    printf("motion: %d of %d clips move as stated (%d frames of %dx%d, %d steps); %.1f s\n", moving, VIDEO_COUNT, FRAMES,
           SIZE, SIZE, STEPS, seconds);
    CHECK_MSG(moving >= MIN_MOVING, "%d of %d clips move as stated (at least %d expected)", moving, VIDEO_COUNT,
              MIN_MOVING);
    moedit_finalize();
    return test_finish("test_demo_video");
}
