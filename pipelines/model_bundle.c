/* Loading a model directory's components; see model_bundle.h. */
#include "pipelines/model_bundle.h"

#include "backend/backend_memory.h"
#include "core/error.h"
#include "moedit.h" /* MOEDIT_MAX_LORAS */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* HiDream's four encoders, on the run's backend or text_device's own. */
static int open_hidream_text(model_bundle *b, const model_bundle_options *o)
{
    backend *be = b->be;
    if (o->text_device && strcmp(o->text_device, o->device ? o->device : "cpu") != 0) {
        if (!(b->text_be = backend_create(o->text_device))) return error_prefix("--text-device %s", o->text_device);
        be = b->text_be;
    }
    hidream_text_options ho = {o->dir, o->llama_dir, o->max_sequence_length, o->keep_text_encoders, o->random_weights,
                               o->seed};
    if (hidream_text_open(&b->hidream, be, &ho, &b->transformer.cfg)) return -1;
    b->has_hidream = 1;
    return 0;
}

static int load_text_side(model_bundle *b, const model_bundle_options *o)
{
    char path[4200];
    if (o->need_encoder && hidream_text_present(o->dir, o->llama_dir)) return open_hidream_text(b, o);
    snprintf(path, sizeof path, "%s/text_encoder", o->dir);
    if (!exists(path)) {
        if (o->need_encoder)
            return error_set("%s has no text_encoder/: give --prompt-embeds FILE or use a model with a text encoder",
                             o->dir);
        return 0;
    }
    if (!o->need_encoder) return 0;
    if (text_encoder_load(&b->encoder, b->be, path, 0, 0)) return -1;
    b->has_encoder = 1;
    snprintf(path, sizeof path, "%s/tokenizer/tokenizer.json", o->dir);
    return tokenizer_load(&b->tok, path);
}

/* shard's placement tables from o->expert_placement (EP only), into b->placement. */
static int place_experts(model_bundle *b, const model_bundle_options *o, dit_shard *shard)
{
    if (!o->expert_placement || shard->ep_size < 2) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/transformer/config.json", o->dir);
    dit_config cfg;
    if (dit_config_load(&cfg, path) ||
        dit_expert_placement(&b->placement, &cfg, o->expert_placement, shard->ep_size, shard->tp_size))
        return -1;
    dit_shard_place(shard, &b->placement);
    return 0;
}

/* Under --max-gpu-memory: the transformer's blocks back on the device, as
 * many as the budget leaves room for beside every other weight now loaded
 * and the run's activations; the rest streamed. */
static int place_blocks(model_bundle *b, const model_bundle_options *o)
{
    if (o->max_device_bytes <= 0) return 0;
    return dit_weight_stream_place(b->transformer.stream, b->be, o->max_device_bytes, o->max_device_text,
                                   backend_memory_in_use(b->be), o->activation_bytes, o->stream_all_blocks, NULL);
}

int model_dir_check(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return error_set("model directory %s does not exist", dir);
    if (!S_ISDIR(st.st_mode))
        return error_set("model %s is not a directory (give the model's folder, the one with model_index.json)", dir);
    return 0;
}

int model_bundle_load(model_bundle *b, const model_bundle_options *o)
{
    char path[4200];
    memset(b, 0, sizeof *b);
    if (model_dir_check(o->dir)) return -1;
    b->device_be = backend_create(o->device);
    if (!b->device_be) return -1;
    if (!(b->be = backend_memory_wrap(b->device_be))) goto fail;
    dit_shard shard = o->shard;
    shard.host_blocks = o->max_device_bytes > 0;
    lora_set *loras[MOEDIT_MAX_LORAS] = {NULL};
    if (o->lora_count > MOEDIT_MAX_LORAS) {
        error_set("%d LoRAs: at most %d are supported", o->lora_count, MOEDIT_MAX_LORAS);
        goto fail;
    }
    int loaded = 1;
    for (int i = 0; i < o->lora_count && loaded; i++)
        loaded = lora_open(&loras[i], o->loras[i], o->lora_scales ? o->lora_scales[i] : 1.0) == 0;
    loaded = loaded && place_experts(b, o, &shard) == 0 &&
             dit_model_load_adapted(&b->transformer, b->be, o->dir, o->random_weights, o->seed, &shard, loras,
                                    o->lora_count) == 0;
    for (int i = 0; i < o->lora_count; i++) lora_close(loras[i]);
    if (!loaded) goto fail;
    b->loaded_transformer = 1;
    snprintf(path, sizeof path, "%s/vae", o->dir);
    if (vae_model_load(&b->vae, b->be, path, o->random_weights, o->seed)) goto fail;
    b->loaded_vae = 1;
    if (b->vae.cfg.latent_channels != b->transformer.cfg.in_channels) {
        error_set("%s: the VAE has %d latent channels but the transformer takes %d", o->dir, b->vae.cfg.latent_channels,
                  b->transformer.cfg.in_channels);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", o->dir);
    if (exists(path)) {
        if (scheduler_load(&b->scheduler, path)) goto fail;
    } else {
        scheduler_config_default(&b->scheduler);
    }
    if (load_text_side(b, o)) goto fail;
    if (place_blocks(b, o)) goto fail;
    return 0;
fail:
    model_bundle_free(b);
    return -1;
}

void model_bundle_free(model_bundle *b)
{
    if (b->has_encoder) text_encoder_free(&b->encoder);
    tokenizer_free(b->tok);
    if (b->has_hidream) hidream_text_close(&b->hidream);
    backend_destroy(b->text_be);
    if (b->loaded_vae) vae_model_free(&b->vae);
    if (b->loaded_transformer) dit_model_free(&b->transformer);
    backend_destroy(b->be);
    if (b->device_be != b->be) backend_destroy(b->device_be);
    dit_placement_free(&b->placement);
    memset(b, 0, sizeof *b);
}

/* The kept bundle and the options it was loaded with (strings copied). */
static struct {
    int present;
    model_bundle bundle;
    char dir[4096], device[32], expert_placement[4096], loras[MOEDIT_MAX_LORAS][4096];
    char llama_dir[4096], text_device[32];
    const char *lora_names[MOEDIT_MAX_LORAS];
    double lora_scales[MOEDIT_MAX_LORAS];
    model_bundle_options options;
} kept;

static int same_loras(const model_bundle_options *a, const model_bundle_options *b)
{
    if (a->lora_count != b->lora_count) return 0;
    for (int i = 0; i < a->lora_count; i++)
        if (strcmp(a->loras[i], b->loras[i]) ||
            (a->lora_scales ? a->lora_scales[i] : 1.0) != (b->lora_scales ? b->lora_scales[i] : 1.0))
            return 0;
    return 1;
}

static int same_string(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

static int same_options(const model_bundle_options *a, const model_bundle_options *b)
{
    return !strcmp(a->dir, b->dir) && !strcmp(a->device, b->device) && a->random_weights == b->random_weights &&
           a->seed == b->seed && a->need_encoder == b->need_encoder && a->shard.tp_rank == b->shard.tp_rank &&
           a->shard.tp_size == b->shard.tp_size && a->shard.ep_rank == b->shard.ep_rank &&
           a->shard.ep_size == b->shard.ep_size && a->shard.fp8 == b->shard.fp8 &&
           same_string(a->expert_placement, b->expert_placement) && same_string(a->llama_dir, b->llama_dir) &&
           same_string(a->text_device, b->text_device) && a->max_sequence_length == b->max_sequence_length &&
           a->keep_text_encoders == b->keep_text_encoders && a->max_device_bytes == b->max_device_bytes &&
           a->activation_bytes == b->activation_bytes && a->stream_all_blocks == b->stream_all_blocks &&
           same_loras(a, b);
}

int model_bundle_take(model_bundle *b, const model_bundle_options *o)
{
    if (kept.present && same_options(&kept.options, o)) {
        *b = kept.bundle;
        kept.present = 0;
        return 0;
    }
    model_bundle_drop_kept();
    return model_bundle_load(b, o);
}

void model_bundle_keep(model_bundle *b, const model_bundle_options *o)
{
    model_bundle_drop_kept();
    kept.bundle = *b;
    kept.options = *o;
    snprintf(kept.dir, sizeof kept.dir, "%s", o->dir);
    snprintf(kept.device, sizeof kept.device, "%s", o->device);
    snprintf(kept.expert_placement, sizeof kept.expert_placement, "%s", o->expert_placement ? o->expert_placement : "");
    kept.options.dir = kept.dir;
    kept.options.device = kept.device;
    kept.options.expert_placement = o->expert_placement ? kept.expert_placement : NULL;
    snprintf(kept.llama_dir, sizeof kept.llama_dir, "%s", o->llama_dir ? o->llama_dir : "");
    snprintf(kept.text_device, sizeof kept.text_device, "%s", o->text_device ? o->text_device : "");
    kept.options.llama_dir = o->llama_dir ? kept.llama_dir : NULL;
    kept.options.text_device = o->text_device ? kept.text_device : NULL;
    for (int i = 0; i < o->lora_count && i < MOEDIT_MAX_LORAS; i++) {
        snprintf(kept.loras[i], sizeof kept.loras[i], "%s", o->loras[i]);
        kept.lora_names[i] = kept.loras[i];
        kept.lora_scales[i] = o->lora_scales ? o->lora_scales[i] : 1.0;
    }
    kept.options.loras = kept.lora_names;
    kept.options.lora_scales = kept.lora_scales;
    kept.present = 1;
    memset(b, 0, sizeof *b);
}

void model_bundle_drop_kept(void)
{
    if (kept.present) model_bundle_free(&kept.bundle);
    kept.present = 0;
}
