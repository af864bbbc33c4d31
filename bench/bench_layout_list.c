/* The layouts of a bench: the list syntax, "auto", and why a layout cannot
 * run on this world and model; see bench_layouts.h.
 *
 * auto on N ranks: every (tp, ulysses, ring, cfg, dp) whose product is N
 * (cfg 1 or 2), each with EP off, +ep and (with cfg or dp) +epw, each with every VAE patch size that
 * divides a replica's ranks (auto:vaeN: only N). Those the model cannot run
 * stay in the list as skipped, with the reason. Those whose tensor-parallel
 * or Ulysses groups span hosts go last (parallel/layout_hosts.h). */
#include "bench/bench_layouts.h"

#include "core/error.h"
#include "dit/dit_model.h"
#include "parallel/layout_hosts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEGREE 1024

typedef struct layout_list {
    moedit_bench_layout *items;
    int count, capacity;
} layout_list;

static const char *term_names[5] = {"tp", "ulysses", "ring", "cfg", "dp"};

static int *degree_of(moedit_bench_layout *l, int term)
{
    int *degrees[5] = {&l->tp, &l->ulysses, &l->ring, &l->cfg, &l->dp};
    return degrees[term];
}

static int layout_ranks(const moedit_bench_layout *l) { return l->tp * l->ulysses * l->ring * l->cfg * l->dp; }

parallel_degrees bench_layout_degrees(const moedit_bench_layout *l, int world_size)
{
    int idle_replicas = world_size / layout_ranks(l);
    parallel_degrees d = {l->tp, l->ulysses, l->ring, l->cfg, l->dp * idle_replicas, l->expert_parallel, l->vae_patch,
                          l->expert_scope};
    return d;
}

int bench_layout_ep_ranks(const moedit_bench_layout *l)
{
    if (!l->expert_parallel) return 1;
    return l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD ? layout_ranks(l) : l->tp * l->ulysses * l->ring;
}

/* "tp2xcfg2+ep:vae2", "cfg2+epw": the degrees above 1 in tp-sp-cfg-dp order. */
static void name_layout(moedit_bench_layout *l)
{
    int used = 0, size = (int)sizeof l->name;
    l->name[0] = '\0';
    for (int t = 0; t < 5; t++) {
        int degree = *degree_of(l, t);
        if (degree > 1) used += snprintf(l->name + used, (size_t)(size - used), "%s%s%d", used ? "x" : "", term_names[t], degree);
    }
    if (!used) used = snprintf(l->name, (size_t)size, "serial");
    if (l->expert_parallel)
        used += snprintf(l->name + used, (size_t)(size - used), l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD ? "+epw" : "+ep");
    if (l->vae_patch > 1) snprintf(l->name + used, (size_t)(size - used), ":vae%d", l->vae_patch);
    parallel_degrees d = {l->tp, l->ulysses, l->ring, l->cfg, l->dp, l->expert_parallel, l->vae_patch, l->expert_scope};
    layout_describe(&d, l->description, (int)sizeof l->description);
    l->images = l->dp;
    l->ranks = layout_ranks(l);
}

/* A positive integer of at most MAX_DEGREE digits-worth; advances *p. */
static int parse_degree(const char **p, const char *item, int *out)
{
    if (!isdigit((unsigned char)**p)) return error_set("--layouts item '%s': a number must follow the mode name", item);
    long v = strtol(*p, (char **)p, 10);
    if (v < 1 || v > MAX_DEGREE) return error_set("--layouts item '%s': degree %ld must be 1..%d", item, v, MAX_DEGREE);
    *out = (int)v;
    return 0;
}

static int parse_suffixes(const char *p, const char *item, moedit_bench_layout *l)
{
    if (!strncmp(p, "+epw", 4)) {
        l->expert_parallel = 1;
        l->expert_scope = MOEDIT_EXPERT_SCOPE_WORLD;
        p += 4;
    } else if (!strncmp(p, "+ep", 3)) {
        l->expert_parallel = 1;
        p += 3;
    }
    if (!strncmp(p, ":vae", 4)) {
        p += 4;
        if (parse_degree(&p, item, &l->vae_patch)) return -1;
    }
    if (*p) return error_set("--layouts item '%s': unexpected '%s' (see moedit bench --help for the syntax)", item, p);
    return 0;
}

/* One LAYOUT of the syntax; item is trimmed. */
static int parse_layout(const char *item, moedit_bench_layout *l)
{
    memset(l, 0, sizeof *l);
    l->tp = l->ulysses = l->ring = l->cfg = l->dp = l->vae_patch = 1;
    const char *p = item;
    if (!strncmp(p, "serial", 6)) return parse_suffixes(p + 6, item, l);
    int seen[5] = {0};
    for (;;) {
        int term = -1;
        for (int t = 0; t < 5 && term < 0; t++)
            if (!strncmp(p, term_names[t], strlen(term_names[t]))) term = t; /* no name begins another */
        if (term < 0)
            return error_set("--layouts item '%s': expected tpN, ulyssesN, ringN, cfgN, dpN, serial or auto at '%s'", item,
                             p);
        if (seen[term]++) return error_set("--layouts item '%s': %s given twice", item, term_names[term]);
        p += strlen(term_names[term]);
        if (parse_degree(&p, item, degree_of(l, term))) return -1;
        if (*p != 'x') break;
        p++;
    }
    return parse_suffixes(p, item, l);
}

static void skip(moedit_bench_layout *l, const char *reason)
{
    l->skipped = 1;
    snprintf(l->reason, sizeof l->reason, "%s", reason);
}

/* Why the transformer cannot run this layout ("" when it can). */
static void check_transformer(moedit_bench_layout *l, const bench_facts *f)
{
    char why[512];
    const dit_config *cfg = &f->dit;
    int heads_split = l->tp * l->ulysses, ep_ranks = bench_layout_ep_ranks(l);
    dit_shard shard = {0, l->tp, 0, l->expert_parallel ? ep_ranks : 1, NULL, NULL, 0, 0};
    if (l->cfg > 2) {
        skip(l, "cfg is 1 or 2: the conditional and unconditional branches");
    } else if (l->cfg == 2 && f->guidance <= 1) {
        snprintf(why, sizeof why, "cfg2 needs --guidance-scale > 1 (it is %g): without guidance there is no "
                 "unconditional branch", f->guidance);
        skip(l, why);
    } else if (cfg->heads % heads_split) {
        snprintf(why, sizeof why, "tp %d x ulysses %d = %d does not divide the transformer's %d attention heads", l->tp,
                 l->ulysses, heads_split, cfg->heads);
        skip(l, why);
    } else if (l->expert_parallel && cfg->num_routed_experts <= 1) {
        snprintf(why, sizeof why, "EP on a dense transformer (%d routed experts): there are no experts to split",
                 cfg->num_routed_experts);
        skip(l, why);
    } else if (l->expert_parallel && ep_ranks == 1) {
        skip(l, l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD || l->cfg * l->dp == 1
                    ? "EP over one rank is EP off"
                    : "EP over one rank (tp x ulysses x ring = 1) is EP off; +epw spreads the experts over the cfg "
                      "and dp ranks too");
    } else if (l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD && l->ranks < f->world_size) {
        snprintf(why, sizeof why, "+epw uses %d of the world's %d ranks, and the idle replicas would hold experts "
                 "but never run the MoE calls their group waits for (run under mpirun -np %d)",
                 l->ranks, f->world_size, l->ranks);
        skip(l, why);
    } else if (dit_shard_validate(cfg, &shard)) {
        skip(l, error_message());
        error_clear();
    }
}

static void check_vae(moedit_bench_layout *l, const bench_facts *f)
{
    char why[512];
    int replica = l->tp * l->ulysses * l->ring * l->cfg;
    if (l->vae_patch == 1) return;
    if (!f->has_vae) {
        skip(l, "no VAE to split: transformer only (--config without a model directory)");
    } else if (replica % l->vae_patch) {
        snprintf(why, sizeof why, "vae %d does not divide the %d rank(s) of a replica (tp x ulysses x ring x cfg)",
                 l->vae_patch, replica);
        skip(l, why);
    } else if (l->vae_patch > f->latent_rows) {
        snprintf(why, sizeof why, "vae %d: more VAE ranks than the %lld latent rows of the image", l->vae_patch,
                 (long long)f->latent_rows);
        skip(l, why);
    }
}

static void check_layout(moedit_bench_layout *l, const bench_facts *f)
{
    char why[512];
    int ranks = layout_ranks(l);
    if (ranks > f->world_size) {
        snprintf(why, sizeof why, "needs %d ranks; the world has %d (run under mpirun -np %d)", ranks, f->world_size,
                 ranks);
        skip(l, why);
    } else if (f->world_size % ranks) {
        snprintf(why, sizeof why, "uses %d ranks, which does not divide the world's %d (the rest could not idle as "
                 "whole replicas)", ranks, f->world_size);
        skip(l, why);
    }
    if (!l->skipped) check_transformer(l, f);
    if (!l->skipped) check_vae(l, f);
}

static int append(layout_list *list, moedit_bench_layout *l, const bench_facts *f)
{
    name_layout(l);
    for (int i = 0; i < list->count; i++)
        if (!strcmp(list->items[i].name, l->name)) return 0;
    check_layout(l, f);
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 32;
        moedit_bench_layout *items = realloc(list->items, (size_t)capacity * sizeof *items);
        if (!items) return error_set("out of memory listing layouts");
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = *l;
    return 0;
}

/* Moves the layouts from `first` on whose fast groups span hosts after the
 * others, keeping the order within each part. */
static int host_crossing_last(layout_list *list, int first, const bench_facts *f)
{
    int n = list->count - first, kept = 0, moved = 0;
    moedit_bench_layout *crossing = malloc((size_t)(n ? n : 1) * sizeof *crossing);
    if (!crossing) return error_set("out of memory listing layouts");
    for (int i = first; i < list->count; i++) {
        parallel_degrees d = bench_layout_degrees(&list->items[i], f->world_size);
        if (layout_degrees_cross_hosts(&d, f->world_size, f->host_of))
            crossing[moved++] = list->items[i];
        else
            list->items[first + kept++] = list->items[i];
    }
    memcpy(list->items + first + kept, crossing, (size_t)moved * sizeof *crossing);
    free(crossing);
    return 0;
}

static int add_auto(layout_list *list, const bench_facts *f, int fixed_vae)
{
    int first = list->count;
    int n = f->world_size, matched = 0;
    for (int dp = 1; dp <= n; dp++) {
        if (n % dp) continue;
        for (int cfg = 1; cfg <= 2; cfg++) {
            if ((n / dp) % cfg) continue;
            int sp_tp = n / dp / cfg;
            for (int ring = 1; ring <= sp_tp; ring++) {
                if (sp_tp % ring) continue;
                for (int ulysses = 1; ulysses <= sp_tp / ring; ulysses++) {
                    if ((sp_tp / ring) % ulysses) continue;
                    for (int ep = 0; ep <= 2; ep++) /* off, +ep, +epw (where it differs from +ep) */
                        for (int vae = 1; vae <= n / dp; vae++) {
                            if (ep == 2 && cfg * dp == 1) continue;
                            if (fixed_vae ? vae != fixed_vae : (n / dp) % vae != 0) continue;
                            if (!f->has_vae && vae > 1) continue;
                            matched++;
                            moedit_bench_layout l = {0};
                            l.tp = sp_tp / ring / ulysses;
                            l.ulysses = ulysses, l.ring = ring, l.cfg = cfg, l.dp = dp;
                            l.expert_parallel = ep > 0, l.expert_scope = ep == 2, l.vae_patch = vae;
                            if (append(list, &l, f)) return -1;
                        }
                }
            }
        }
    }
    if (!matched) /* only a VAE band count can leave nothing to run */
        return error_set("--layouts item 'auto:vae%d': no layout of %d rank(s) decodes in %d bands (%s)", fixed_vae, n,
                         fixed_vae, f->has_vae ? "the bands must divide the ranks of a replica" : "a transformer-only run has no VAE");
    return host_crossing_last(list, first, f);
}

/* One comma-separated item, trimmed. */
static int add_item(layout_list *list, const char *item, const bench_facts *f)
{
    if (!strncmp(item, "auto", 4)) {
        const char *p = item + 4;
        int vae = 0;
        if (!strncmp(p, ":vae", 4)) {
            p += 4;
            if (parse_degree(&p, item, &vae)) return -1;
        }
        if (*p) return error_set("--layouts item '%s': auto takes only :vaeN", item);
        return add_auto(list, f, vae);
    }
    moedit_bench_layout l;
    if (parse_layout(item, &l)) return -1;
    return append(list, &l, f);
}

int bench_layout_list(const char *text, const bench_facts *f, moedit_bench_layout **layouts, int *count)
{
    layout_list list = {0};
    char item[256];
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        while (length && isspace((unsigned char)*p)) p++, length--;
        while (length && isspace((unsigned char)p[length - 1])) length--;
        if (length == 0 || length >= sizeof item) {
            free(list.items);
            return error_set("--layouts '%s': %s item", text, length ? "an overlong" : "an empty");
        }
        memcpy(item, p, length);
        item[length] = '\0';
        if (add_item(&list, item, f)) {
            free(list.items);
            return -1;
        }
        p = end ? end + 1 : p + strlen(p);
        if (end && !*p) {
            free(list.items);
            return error_set("--layouts '%s': an empty item at the end", text);
        }
    }
    if (list.count == 0) return error_set("--layouts is empty (give auto or a list such as tp2,ulysses2)");
    *layouts = list.items;
    *count = list.count;
    return 0;
}
