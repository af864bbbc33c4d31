/* The inputs and the reference output of a transformer fixture
 * (tools/make_dit_fixtures.py): what every test of dit_forward reads first. */
#ifndef MOEDIT_TESTS_TEST_DIT_FIXTURE_H
#define MOEDIT_TESTS_TEST_DIT_FIXTURE_H

#include "core/error.h"
#include "dit/dit_forward.h"
#include "test_fixture.h"
#include "test_util.h"

#include <string.h>

typedef struct dit_fixture {
    float *latents, *t5, *llama, *pooled, *output, *timestep;
    int64_t n_latents, n_t5, n_llama, n_pooled, n_output;
    int64_t latent_shape[4]; /* [C, H, W], or [F, C, H, W] for a clip */
    int64_t t5_shape[2], llama_shape[3];
    dit_text_inputs text; /* points into the arrays above */
} dit_fixture;

/* 0 when the fixture holds all of them; the arrays are malloc'ed either way
 * (NULL where missing) and dit_fixture_free releases them. */
static inline int dit_fixture_read(const safetensors *io, dit_fixture *f)
{
    int64_t n_timestep;
    memset(f, 0, sizeof *f);
    f->latents = fixture_read(io, "latents", &f->n_latents, f->latent_shape);
    f->t5 = fixture_read(io, "prompt_embeds_t5", &f->n_t5, f->t5_shape);
    f->llama = fixture_read(io, "prompt_embeds_llama3", &f->n_llama, f->llama_shape);
    f->pooled = fixture_read(io, "pooled_prompt_embeds", &f->n_pooled, NULL);
    f->output = fixture_read(io, "output", &f->n_output, NULL);
    f->timestep = fixture_read(io, "timestep", &n_timestep, NULL);
    dit_text_inputs text = {f->t5, f->t5_shape[0], f->llama, f->llama_shape[0], f->llama_shape[1], f->pooled};
    f->text = text;
    return f->latents && f->t5 && f->llama && f->pooled && f->output && f->timestep ? 0 : -1;
}

/* What every transformer test does first: open `io_path`, load the model in
 * `model_dir` on `be` and read the fixture into f. 0 when all of it worked;
 * each failure is a failed check. */
static inline int dit_fixture_setup(backend *be, const char *io_path, const char *model_dir, safetensors **io,
                                    dit_model *model, dit_fixture *f)
{
    *io = NULL;
    memset(f, 0, sizeof *f);
    CHECK_MSG(safetensors_open(io, io_path) == 0, "%s", error_message());
    CHECK_MSG(dit_model_load(model, be, model_dir, 0, 0, NULL) == 0, "%s", error_message());
    if (!*io || test_failures) return -1;
    CHECK(dit_fixture_read(*io, f) == 0);
    return test_failures ? -1 : 0;
}

/* One backend's model of a fixture, its prompt encoded and a run for
 * latents of height x width (the tests that compare two backends). */
typedef struct dit_session {
    dit_model model;
    dit_text text;
    dit_run run;
    int open;
} dit_session;

static inline int dit_session_open(dit_session *s, backend *be, const char *model_dir, const dit_shard *shard,
                                   const dit_text_inputs *text, int64_t height, int64_t width, int64_t t5_tokens,
                                   int64_t llama_tokens)
{
    memset(s, 0, sizeof *s);
    if (dit_model_load(&s->model, be, model_dir, 0, 0, shard)) return -1;
    if (dit_text_encode(&s->text, &s->model, text)) return -1;
    if (dit_run_init(&s->run, &s->model, height, width, t5_tokens, llama_tokens, NULL)) return -1;
    s->open = 1;
    return 0;
}

static inline void dit_session_close(dit_session *s)
{
    if (!s->open) return;
    dit_run_free(&s->run);
    dit_text_free(&s->text);
    dit_model_free(&s->model);
}

static inline void dit_fixture_free(dit_fixture *f)
{
    free(f->latents), free(f->t5), free(f->llama), free(f->pooled), free(f->output), free(f->timestep);
}

#endif
