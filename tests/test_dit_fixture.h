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

static inline void dit_fixture_free(dit_fixture *f)
{
    free(f->latents), free(f->t5), free(f->llama), free(f->pooled), free(f->output), free(f->timestep);
}

#endif
