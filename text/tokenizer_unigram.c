/* The Unigram model: Viterbi over the vocab's log-probabilities; see
 * tokenizer_unigram.h for the recurrence and the library behaviour mirrored.
 *
 * The vocab lives in a byte trie (edges in one hash table keyed by
 * (node, byte)) so that all tokens starting at a position are found in one
 * walk, shortest first, and in a hash table from piece to id for the final
 * lookups. Scratch for one piece is allocated per call. */
#include "text/tokenizer_unigram.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNIGRAM_UNK_PENALTY 10.0

struct unigram_model {
    char *path;
    int32_t size;
    char **pieces;
    size_t *piece_lengths;
    double *scores;
    double unk_score;     /* min score - UNIGRAM_UNK_PENALTY */
    int32_t unk_id;       /* -1: none */
    int byte_fallback;
    /* piece -> id (open addressing; a repeated piece keeps its last id) */
    int32_t *id_slots;    /* -1 empty */
    size_t id_capacity;
    /* trie: node 0 is the root; edge (node, byte) -> child in edge_keys/edge_children */
    int32_t *node_ids;    /* the id a node's path spells, -1 if none */
    int32_t node_count;
    uint64_t *edge_keys;  /* node * 256 + byte + 1; 0 empty */
    int32_t *edge_children;
    size_t edge_capacity;
};

/* ---- hashing ------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t power_of_two_above(size_t n)
{
    size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    return capacity;
}

static size_t id_slot(const unigram_model *m, const char *s, size_t n)
{
    size_t mask = m->id_capacity - 1, i = hash_bytes(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = m->id_slots[i];
        if (id < 0) return i;
        if (m->piece_lengths[id] == n && memcmp(m->pieces[id], s, n) == 0) return i;
    }
}

int32_t unigram_token_id(const unigram_model *m, const char *token, size_t n)
{
    return m->id_slots[id_slot(m, token, n)];
}

int32_t unigram_vocab_size(const unigram_model *m) { return m->size; }

static size_t edge_slot(const unigram_model *m, uint64_t key)
{
    size_t mask = m->edge_capacity - 1, i = hash_u64(key) & mask;
    while (m->edge_keys[i] && m->edge_keys[i] != key) i = (i + 1) & mask;
    return i;
}

static int32_t trie_child(const unigram_model *m, int32_t node, unsigned char byte)
{
    size_t slot = edge_slot(m, (uint64_t)node * 256 + byte + 1);
    return m->edge_keys[slot] ? m->edge_children[slot] : -1;
}

/* Adds piece `id` to the trie; node_count grows by the new nodes. */
static void trie_insert(unigram_model *m, int32_t id)
{
    int32_t node = 0;
    for (size_t i = 0; i < m->piece_lengths[id]; i++) {
        uint64_t key = (uint64_t)node * 256 + (unsigned char)m->pieces[id][i] + 1;
        size_t slot = edge_slot(m, key);
        if (!m->edge_keys[slot]) {
            m->edge_keys[slot] = key;
            m->edge_children[slot] = m->node_count;
            m->node_ids[m->node_count++] = -1;
        }
        node = m->edge_children[slot];
    }
}

/* ---- loading ------------------------------------------------------------- */

void unigram_free(unigram_model *m)
{
    if (!m) return;
    if (m->pieces)
        for (int32_t i = 0; i < m->size; i++) free(m->pieces[i]);
    free(m->path);
    free(m->pieces);
    free(m->piece_lengths);
    free(m->scores);
    free(m->id_slots);
    free(m->node_ids);
    free(m->edge_keys);
    free(m->edge_children);
    free(m);
}

static int load_vocab(unigram_model *m, const cJSON *vocab)
{
    int size = cJSON_GetArraySize(vocab);
    size_t total_bytes = 0;
    m->pieces = calloc((size_t)size + 1, sizeof(char *));
    m->piece_lengths = calloc((size_t)size + 1, sizeof(size_t));
    m->scores = calloc((size_t)size + 1, sizeof(double));
    if (!m->pieces || !m->piece_lengths || !m->scores) return error_set("out of memory loading %s", m->path);
    double min_score = INFINITY;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, vocab) {
        const cJSON *piece = cJSON_GetArrayItem(entry, 0), *score = cJSON_GetArrayItem(entry, 1);
        if (!cJSON_IsArray(entry) || cJSON_GetArraySize(entry) != 2 || !cJSON_IsString(piece) ||
            !cJSON_IsNumber(score))
            return error_set("%s: model.vocab[%d] is not a [piece, score] pair of a string and a number", m->path,
                             m->size);
        size_t length = strlen(piece->valuestring);
        if (!(m->pieces[m->size] = malloc(length + 1))) return error_set("out of memory loading %s", m->path);
        memcpy(m->pieces[m->size], piece->valuestring, length + 1);
        m->piece_lengths[m->size] = length;
        m->scores[m->size] = score->valuedouble;
        if (score->valuedouble < min_score) min_score = score->valuedouble;
        total_bytes += length;
        m->size++;
    }
    m->unk_score = min_score - UNIGRAM_UNK_PENALTY;

    m->id_capacity = power_of_two_above((size_t)m->size);
    m->edge_capacity = power_of_two_above(total_bytes);
    m->id_slots = malloc(m->id_capacity * sizeof(int32_t));
    m->node_ids = malloc((total_bytes + 1) * sizeof(int32_t));
    m->edge_keys = calloc(m->edge_capacity, sizeof(uint64_t));
    m->edge_children = malloc(m->edge_capacity * sizeof(int32_t));
    if (!m->id_slots || !m->node_ids || !m->edge_keys || !m->edge_children)
        return error_set("out of memory loading %s", m->path);
    memset(m->id_slots, 0xff, m->id_capacity * sizeof(int32_t));
    m->node_ids[0] = -1;
    m->node_count = 1;
    for (int32_t id = 0; id < m->size; id++) {
        m->id_slots[id_slot(m, m->pieces[id], m->piece_lengths[id])] = id; /* the last repeat wins */
        trie_insert(m, id);
    }
    /* A trie node that ends a piece carries that piece's (last) id. */
    for (int32_t id = 0; id < m->size; id++) {
        int32_t node = 0;
        for (size_t i = 0; i < m->piece_lengths[id]; i++) node = trie_child(m, node, (unsigned char)m->pieces[id][i]);
        m->node_ids[node] = unigram_token_id(m, m->pieces[id], m->piece_lengths[id]);
    }
    return 0;
}

int unigram_load(unigram_model **out, const cJSON *model, const char *path)
{
    *out = NULL;
    if (!path) path = "tokenizer.json";
    if (!cJSON_IsObject(model)) return error_set("%s: \"model\" is not an object", path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "Unigram") == 0))
        return error_set("%s: model.type is not \"Unigram\"", path);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsArray(vocab)) return error_set("%s: model.vocab is not a list of [piece, score] pairs", path);
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    const cJSON *fallback = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    if (unk && !cJSON_IsNull(unk) &&
        !(cJSON_IsNumber(unk) && unk->valuedouble >= 0 && unk->valuedouble == floor(unk->valuedouble)))
        return error_set("%s: model.unk_id is not a non-negative integer or null", path);
    if (fallback && !cJSON_IsNull(fallback) && !cJSON_IsBool(fallback))
        return error_set("%s: model.byte_fallback is not true or false", path);

    unigram_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return error_set("out of memory loading %s", path);
    }
    m->byte_fallback = cJSON_IsTrue(fallback);
    if (load_vocab(m, vocab)) {
        unigram_free(m);
        return -1;
    }
    m->unk_id = -1;
    if (unk && cJSON_IsNumber(unk)) {
        if (m->size == 0) {
            unigram_free(m);
            return error_set("%s: model.vocab is empty but model.unk_id needs an entry", path);
        }
        if (unk->valuedouble >= m->size) {
            int size = m->size;
            unigram_free(m);
            return error_set("%s: model.unk_id %.0f is beyond the %d vocab entries", path, unk->valuedouble, size);
        }
        m->unk_id = (int32_t)unk->valuedouble;
    }
    *out = m;
    return 0;
}

/* ---- encoding ------------------------------------------------------------ */

/* Bytes of the UTF-8 character at s[0] (1 for a byte that starts none). */
static size_t utf8_char_length(const unsigned char *s, size_t n)
{
    size_t length = s[0] < 0x80 ? 1 : (s[0] >> 5) == 0x6 ? 2 : (s[0] >> 4) == 0xe ? 3 : (s[0] >> 3) == 0x1e ? 4 : 1;
    if (length > n) return 1;
    for (size_t i = 1; i < length; i++)
        if ((s[i] & 0xc0) != 0x80) return 1;
    return length;
}

static int append_id(int32_t **ids, int *count, int *capacity, int32_t id)
{
    if (*count == *capacity) {
        int grown_capacity = *capacity ? *capacity * 2 : 16;
        int32_t *grown = realloc(*ids, (size_t)grown_capacity * sizeof(int32_t));
        if (!grown) return error_set("out of memory tokenizing");
        *ids = grown;
        *capacity = grown_capacity;
    }
    (*ids)[(*count)++] = id;
    return 0;
}

/* The best path ending at each byte position of the piece. */
typedef struct lattice_node {
    double score;
    size_t start; /* SIZE_MAX: not reached */
    int32_t id;
} lattice_node;

static void lattice_offer(lattice_node *node, size_t start, int32_t id, double score)
{
    if (node->start == SIZE_MAX || score > node->score) {
        node->score = score;
        node->start = start;
        node->id = id;
    }
}

static int viterbi(const unigram_model *m, const unsigned char *s, size_t n, lattice_node *best)
{
    for (size_t i = 0; i <= n; i++) best[i] = (lattice_node){0.0, SIZE_MAX, 0};
    size_t start = 0;
    while (start < n) {
        double till_here = best[start].score;
        size_t char_n = utf8_char_length(s + start, n - start);
        int has_single_char_token = 0;
        int32_t node = 0;
        for (size_t end = start; end < n; end++) {
            node = trie_child(m, node, s[end]);
            if (node < 0) break;
            int32_t id = m->node_ids[node];
            if (id < 0) continue;
            lattice_offer(&best[end + 1], start, id, m->scores[id] + till_here);
            if (end + 1 - start == char_n) has_single_char_token = 1;
        }
        if (!has_single_char_token) {
            lattice_node *target = &best[start + char_n];
            double score = m->unk_score + till_here;
            if (target->start == SIZE_MAX || score > target->score) {
                if (m->unk_id < 0)
                    return error_set("%s: a character is not in the Unigram vocab and the model has no unk_id",
                                     m->path);
                lattice_offer(target, start, m->unk_id, score);
            }
        }
        start += char_n;
    }
    return 0;
}

/* The id(s) of one token of the best path, s[0 .. n). */
static int emit_token(const unigram_model *m, const char *s, size_t n, int32_t **ids, int *count, int *capacity)
{
    int32_t id = unigram_token_id(m, s, n);
    if (id >= 0) return append_id(ids, count, capacity, id);
    if (m->byte_fallback) {
        int all_bytes_known = 1;
        for (size_t i = 0; i < n && all_bytes_known; i++) {
            char name[8];
            snprintf(name, sizeof(name), "<0x%02X>", (unsigned char)s[i]);
            all_bytes_known = unigram_token_id(m, name, 6) >= 0;
        }
        if (all_bytes_known) {
            for (size_t i = 0; i < n; i++) {
                char name[8];
                snprintf(name, sizeof(name), "<0x%02X>", (unsigned char)s[i]);
                if (append_id(ids, count, capacity, unigram_token_id(m, name, 6))) return -1;
            }
            return 0;
        }
    }
    if (m->unk_id < 0)
        return error_set("%s: a token is not in the Unigram vocab and the model has no unk_id", m->path);
    return append_id(ids, count, capacity, m->unk_id);
}

int unigram_encode(const unigram_model *m, const char *piece, size_t n, int32_t **ids, int *count, int *capacity)
{
    if (n == 0) return 0;
    lattice_node *best = malloc((n + 1) * sizeof(lattice_node));
    size_t *cuts = malloc((n + 1) * sizeof(size_t)); /* token boundaries, back to front */
    if (!best || !cuts) {
        free(best);
        free(cuts);
        return error_set("out of memory tokenizing");
    }
    int status = viterbi(m, (const unsigned char *)piece, n, best);
    if (status == 0) {
        /* Back from the end: cuts[0] = n, ..., cuts[cut_count - 1] = 0. */
        size_t cut_count = 0, end = n;
        cuts[cut_count++] = n;
        while (end > 0) {
            end = best[end].start;
            cuts[cut_count++] = end;
        }
        /* cuts[] holds every edge boundary; merge unk runs while emitting front to back. */
        size_t i = cut_count - 1;
        while (status == 0 && i > 0) {
            size_t start = cuts[i], stop = cuts[i - 1];
            size_t j = i - 1;
            if (m->unk_id >= 0 && best[stop].id == m->unk_id)
                while (j > 0 && best[cuts[j - 1]].id == m->unk_id) j--, stop = cuts[j];
            status = emit_token(m, piece + start, stop - start, ids, count, capacity);
            i = j;
        }
    }
    free(best);
    free(cuts);
    return status;
}
