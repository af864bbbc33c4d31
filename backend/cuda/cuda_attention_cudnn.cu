/* Attention through cuDNN's fused SDPA (its FlashAttention-style kernels),
 * built with the header-only cuDNN frontend (tools/fetch_cudnn_frontend.sh)
 * and used for BF16 attention unless the environment says
 * MOEDIT_ATTENTION=moedit: the transformer forward is faster with it than
 * with moedit's wgmma kernel (cuda_flash_wgmma.cu; docs/benchmarks.md,
 * "Figures cited by source comments").
 *
 * moedit's q, k, v and out are [S, H * D] BF16, token-major: as cuDNN's
 * [B, H, S, D] tensors that is B = 1 with strides (S H D, D, H D, 1). The
 * log-sum-exp rows (ring attention's merge) are cuDNN's softmax statistics,
 * [1, H, Sq, 1] in F32, natural log, the layout lse[h * Sq + i] has.
 *
 * A graph is built once per shape (cuDNN picks and compiles its kernel then,
 * which takes a while) and kept with the backend's cuDNN handle until the
 * backend is destroyed; shapes cuDNN does not support fall back to moedit's
 * own kernels. */
#include "backend/cuda/cuda_common.cuh"
#include "core/env_choice.h"

#ifdef MOEDIT_HAVE_CUDNN_FRONTEND

#include <cstring> /* the frontend's dynamic-loading shim uses std::strlen */
#include <cudnn_frontend.h>

#include <math.h>
#include <memory>
#include <vector>

#include <dlfcn.h>

namespace fe = cudnn_frontend;

/* The frontend, built with NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING, finds
 * cuDNN's functions through this handle, which its user owns. */
namespace cudnn_frontend {
void *cudnn_dlhandle = nullptr;
}

namespace {

enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS };

struct sdpa_key {
    int64_t sq, sk, heads, d;
    int causal, stats;
    bool operator==(const sdpa_key &o) const
    {
        return sq == o.sq && sk == o.sk && heads == o.heads && d == o.d &&
               causal == o.causal && stats == o.stats;
    }
};

struct sdpa_plan {
    sdpa_key key;
    std::shared_ptr<fe::graph::Graph> graph; /* null: cuDNN cannot run this shape */
    int64_t workspace;
};

std::shared_ptr<fe::graph::Tensor_attributes> token_major(fe::graph::Graph &g, const char *name, int uid,
                                                           const sdpa_key &k, int64_t rows)
{
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name(name)
                        .set_uid(uid)
                        .set_dim({1, k.heads, rows, k.d})
                        .set_stride({rows * k.heads * k.d, k.d, k.heads * k.d, 1}));
}

std::shared_ptr<fe::graph::Graph> build(cudnnHandle_t handle, const sdpa_key &k)
{
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    auto q = token_major(*g, "q", UID_Q, k, k.sq), key = token_major(*g, "k", UID_K, k, k.sk);
    auto value = token_major(*g, "v", UID_V, k, k.sk);
    auto options = fe::graph::SDPA_attributes()
                       .set_name("attention")
                       .set_generate_stats(k.stats != 0)
                       .set_attn_scale(1.0f / sqrtf((float)k.d));
    if (k.causal) options.set_causal_mask(true); /* query i sees keys 0..i */
    auto [out, stats] = g->sdpa(q, key, value, options);
    out->set_output(true).set_uid(UID_O).set_dim({1, k.heads, k.sq, k.d}).set_stride(
        {k.sq * k.heads * k.d, k.d, k.heads * k.d, 1});
    if (k.stats)
        stats->set_output(true)
            .set_uid(UID_STATS)
            .set_data_type(fe::DataType_t::FLOAT)
            .set_dim({1, k.heads, k.sq, 1})
            .set_stride({k.heads * k.sq, k.sq, 1, 1});
    if (g->validate().is_bad() || g->build_operation_graph(handle).is_bad() ||
        g->create_execution_plans({fe::HeurMode_t::A}).is_bad() || g->check_support(handle).is_bad() ||
        g->build_plans(handle).is_bad())
        return nullptr;
    return g;
}

} // namespace

struct cuda_sdpa_cache {
    cudnnHandle_t handle = nullptr;
    std::vector<sdpa_plan> plans;

    /* Valid until the next call (the vector may grow). */
    const sdpa_plan *plan_for(const sdpa_key &key)
    {
        for (const sdpa_plan &p : plans)
            if (p.key == key) return &p;
        sdpa_plan p{key, build(handle, key), 0};
        if (p.graph && p.graph->get_workspace_size(p.workspace).is_bad()) p.graph = nullptr;
        plans.push_back(p);
        return &plans.back();
    }
};

void cuda_sdpa_cache_free(cuda_state *s)
{
    if (!s->sdpa_cache) return;
    s->sdpa_cache->plans.clear(); /* the graphs before the handle they were built with */
    if (s->sdpa_cache->handle) cudnnDestroy(s->sdpa_cache->handle);
    delete s->sdpa_cache;
    s->sdpa_cache = nullptr;
}

/* The backend's cuDNN handle on its stream; NULL when cuDNN is unavailable. */
static cuda_sdpa_cache *sdpa_cache_ready(cuda_state *s)
{
    /* The frontend's loader handle is process-wide; loaded once, kept. */
    if (!fe::cudnn_dlhandle) fe::cudnn_dlhandle = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_GLOBAL);
    if (!fe::cudnn_dlhandle) return nullptr;
    if (!s->sdpa_cache) s->sdpa_cache = new (std::nothrow) cuda_sdpa_cache();
    if (!s->sdpa_cache) return nullptr;
    cuda_sdpa_cache *c = s->sdpa_cache;
    if (!c->handle && cudnnCreate(&c->handle) != CUDNN_STATUS_SUCCESS) {
        c->handle = nullptr;
        return nullptr;
    }
    return cudnnSetStream(c->handle, s->stream) == CUDNN_STATUS_SUCCESS ? c : nullptr;
}

int cuda_attention_cudnn(cuda_state *s, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal)
{
    /* Read per call: the tests switch it. */
    static const char *const choices[2] = {"cudnn", "moedit"};
    static int warned;
    int own_kernels = env_choice("MOEDIT_ATTENTION", choices, 2, 0, &warned) == 1;
    if (own_kernels || q.dtype != DTYPE_BF16 || k.dtype != DTYPE_BF16 || v.dtype != DTYPE_BF16 || out.dtype != DTYPE_BF16)
        return 0;
    int64_t width = tensor_cols(&q);
    sdpa_key key{tensor_rows(&q), tensor_rows(&k), heads, width / heads, causal, lse.data != nullptr};
    if (key.d % 8 || key.d > 256) return 0;
    /* Plans are built for 16-byte aligned operands; views that start
     * elsewhere go to moedit's kernels. */
    const void *operands[5] = {q.data, k.data, v.data, out.data, lse.data};
    for (int i = 0; i < 5; i++)
        if (operands[i] && (uintptr_t)operands[i] % 16) return 0;
    cuda_sdpa_cache *cache = sdpa_cache_ready(s);
    if (!cache) return 0;
    const sdpa_plan *p = cache->plan_for(key);
    if (!p->graph) return 0;
    void *workspace = p->workspace > 0 ? cuda_scratch(s, (size_t)p->workspace) : nullptr;
    if (p->workspace > 0 && !workspace) return -1;
    std::unordered_map<int64_t, void *> pointers = {
        {UID_Q, q.data}, {UID_K, k.data}, {UID_V, v.data}, {UID_O, out.data}};
    if (key.stats) pointers[UID_STATS] = lse.data;
    if (p->graph->execute(cache->handle, pointers, workspace).is_bad()) {
        cuda_ok(s, cudaErrorLaunchFailure, "attention (cuDNN SDPA execute)");
        return -1;
    }
    return cuda_launched(s, causal ? "attention_causal (cuDNN)" : "attention (cuDNN)") ? 1 : -1;
}

#else

int cuda_attention_cudnn(cuda_state *, tensor, tensor, tensor, tensor, tensor, int, int) { return 0; }
void cuda_sdpa_cache_free(cuda_state *) {}

#endif
