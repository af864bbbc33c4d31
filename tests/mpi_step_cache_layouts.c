/* Under mpirun: with step caching (--cache block and taylor) a layout that
 * replays the serial run's schedule gives the serial run's final latents
 * (max abs diff <= 1e-4 of their scale): models/tiny-random, the serial run
 * on rank 0 alone deciding which steps to compute (it caches some: the test
 * checks) and capturing the schedule and the MoE routing, then CFG parallel,
 * tensor, Ulysses and ring parallel (and EP, over a branch and over both
 * branches, and pairs of them on 4 ranks) replaying both; block caching
 * also with --precision fp8 (each layout against the serial FP8 run, by
 * test_layout_judge_fp8's bar). Then
 * each layout once more deciding on its own (no replay):
 * every rank must agree on every step (a disagreement hangs or fails the
 * collectives) and, the decision being a whole-sequence, both-branch
 * quantity, the schedule comes out the serial one. */
#include "test_layouts.h"
#include "test_model_dir.h"

#define STEPS 10
#define LATENTS (4 * 8 * 8)

static char dir[64];

typedef struct cache_case {
    const char *mode;
    int64_t order;
    const char *precision; /* NULL (native F32) or "fp8" */
    const char *name;      /* of its files and labels */
} cache_case;

/* One run; schedule[STEPS] receives its computed steps (rank 0's view). */
static int generate(const moedit_parallel *par, const cache_case *c, const char *capture, const char *replay,
                    const char *routing_capture, const char *routing_replay, const char *name, signed char *schedule)
{
    char png[128], latents[128];
    snprintf(png, sizeof png, "%s/%s.png", dir, name);
    snprintf(latents, sizeof latents, "%s/%s.latents", dir, name);
    const char *prompts[1] = {"a red circle on a blue background"};
    /* tiny-random has 2 blocks: the first decides, the second is skipped on cached steps. */
    moedit_cache_options cache = {c->mode, 1, 0, 1.0, 1, 3, c->order, capture, replay};
    moedit_generate_options o = {
        .model_dir = TEST_TINY_MODEL, .prompts = prompts, .prompt_count = 1, .height = 64, .width = 64,
        .steps = STEPS, .guidance = 3.0, .seed = 5, .images_per_prompt = 1, .output = png, .latents_output = latents,
        .device = "cpu", .parallel = *par, .routing_capture = routing_capture, .routing_replay = routing_replay,
        .cache = cache, .precision = c->precision, .quiet = 1,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = moedit_generate(&o, r);
    if (status == 0 && schedule && moedit_rank() == 0) { /* the serial run works on rank 0 alone */
        CHECK_MSG(r->cache_steps == STEPS && r->cache_computed, "%s: no schedule in the result", name);
        for (int i = 0; i < STEPS && r->cache_computed; i++) schedule[i] = r->cache_computed[i];
        CHECK_MSG(r->cache_bytes > 0, "%s: no bytes reported for the cached residuals", name);
    }
    moedit_generate_result_free(r);
    free(r);
    return status;
}

static const int64_t latent_shape[3] = {4, 8, 8};

/* A run (status: its result here) against the serial run's final latents,
 * by FP8's bar where the case is FP8. */
static void compare(const char *label, const cache_case *c, int status, const char *name, const float *serial)
{
    test_layout_figures f;
    if (!test_layout_latents(label, status, dir, name, 3, latent_shape, serial, &f)) return;
    if (!c->precision) {
        test_layout_judge(label, 36, 1, &f);
        return;
    }
    test_layout_judge_fp8(label, 36, &f);
    printf("\n");
}

/* The serial run's caching: the mode, its schedule's file (replayed) and steps. */
typedef struct serial_cache {
    const cache_case *cache;
    const char *schedule;
    const signed char *computed; /* 1 computed, 0 cached */
} serial_cache;

/* The layout replaying the serial schedule, then deciding on its own. */
static void check(const test_layout *layout, const test_serial *serial)
{
    const serial_cache *caching = serial->more;
    const cache_case *c = caching->cache;
    const char *name = layout->label;
    const moedit_parallel *par = &layout->parallel;
    char label[96], own[64];
    snprintf(label, sizeof label, "%s %s replayed", c->name, name);
    int status = generate(par, c, NULL, caching->schedule, NULL, serial->routing, name, NULL);
    compare(label, c, status, name, serial->latents);
    signed char decided[STEPS];
    snprintf(own, sizeof own, "%s-%s-own", c->name, name);
    snprintf(label, sizeof label, "%s %s deciding", c->name, name);
    status = generate(par, c, NULL, NULL, NULL, serial->routing, own, decided);
    if (status == 0 && moedit_rank() == 0)
        CHECK_MSG(memcmp(decided, caching->computed, STEPS) == 0, "%s: a schedule other than the serial run's", label);
    compare(label, c, status, own, serial->latents);
}

/* Every layout of 2 and of 4 ranks (test_layouts.h reads the labels). */
static const char *const layouts[] = {
    "cfg2", "tp2", "ulysses2", "ring2", "tp2 +EP", "cfg2 +EP(world)",
    "cfg2 x tp2", "cfg2 x ulysses2", "ulysses2 x ring2 +EP", "cfg2 x ring2 +EP(world)",
};

static void run_case(int n, const cache_case *c)
{
    char schedule[128], routing[128];
    snprintf(schedule, sizeof schedule, "%s/%s-schedule.safetensors", dir, c->name);
    snprintf(routing, sizeof routing, "%s/%s-routing.safetensors", dir, c->name);
    moedit_parallel serial_layout = {.data_parallel = n};
    signed char serial_schedule[STEPS];
    int status = generate(&serial_layout, c, schedule, NULL, routing, NULL, "serial", serial_schedule);
    CHECK_MSG(status == 0, "serial: %s", error_message());
    test_barrier();
    if (status) return;
    test_broadcast(serial_schedule, STEPS);
    int cached = 0;
    for (int i = 0; i < STEPS; i++) cached += serial_schedule[i] == 0;
    CHECK_MSG(cached > 0 && cached < STEPS - 1, "%s: the serial run cached %d of %d steps", c->name, cached, STEPS);
    if (moedit_rank() == 0) {
        printf("%s (order %lld): serial schedule ", c->name, (long long)c->order);
        for (int i = 0; i < STEPS; i++) putchar(serial_schedule[i] ? 'C' : '.');
        printf(" (C computed, . cached)\n");
    }
    float latents[LATENTS];
    CHECK_MSG(test_read_latents(dir, "serial", 3, latent_shape, latents) == 0, "%s", error_message());
    serial_cache caching = {c, schedule, serial_schedule};
    test_serial serial = {routing, latents, &caching};
    /* The serial run replaying its own schedule: the same latents. */
    test_layout itself = {"serial", serial_layout, 1};
    check(&itself, &serial);
    test_layouts_run(layouts, sizeof layouts / sizeof layouts[0], check, &serial);
}

int main(int argc, char **argv)
{
    int n = test_layouts_init(&argc, &argv, dir, sizeof dir, "/tmp/moedit_step_cache_XXXXXX");
    static const cache_case cases[] = {
        {"block", 1, NULL, "block"}, {"taylor", 2, NULL, "taylor"}, {"block", 1, "fp8", "block-fp8"}};
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) run_case(n, &cases[i]);
    return test_layouts_finish("mpi_step_cache_layouts");
}
