"""The demo model's three trained parts, as the diffusers/transformers classes
moedit loads, plus what training needs around them.

    vae          AutoencoderKL: factor 8, 16 latent channels, [16, 32, 64, 128], 1 layer a block,
                 16 norm groups (a quarter of [32, 64, 128, 128]'s decode cost at 256 x 256)
    text_encoder transformers LlamaModel: hidden 128, 4 layers, 4 heads (2 kv), WordLevel vocab
    transformer  HiDreamImageTransformer2DModel: dim 128 (4 heads x 32), 4 double + 4 single
                 blocks, 4 routed experts top-2 plus the shared expert, patch 2, 16 channels

Conditioning is moedit's rule (text/text_conditioning.h) on the encoder's
hidden states hs [N + 1, L, C]: llama3 = hs[1..N], t5 = hs[N], pooled = the mean
of hs[N] over tokens. Batches of prompts are right-padded; padding changes
nothing a real token computes, because
  - the encoder is causal: a real token never sees a later pad,
  - pooled is the mean over real tokens only,
  - every attention in the transformer gets a key mask that hides pad tokens
    (MaskedHiDreamAttnProcessor), so the image and real text tokens compute
    exactly what they compute for the unpadded prompt (text ids are all zero:
    no position depends on the padding).
tools/train/check.py proves that equivalence numerically.

Training runs the MoE feed-forward densely (dense_moe_forward): every expert on
every token, weighted by the gate's top-k weights scattered into a [tokens, E]
matrix (zero for unselected experts). That is the same function, with the same
gradients, as diffusers' sparse path, without its host synchronisations. The
gate's load-balancing loss (diffusers computes and drops it) is collected and
added to the loss.
"""
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, HiDreamImageTransformer2DModel
from diffusers.models.transformers import transformer_hidream_image as hidream
from transformers import LlamaConfig, LlamaModel

import data

LATENT_CHANNELS = 16
IMAGE_SIZE = 256

VAE = dict(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=[16, 32, 64, 128],
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           layers_per_block=1, norm_num_groups=16, sample_size=IMAGE_SIZE)
ENCODER = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=128,
               bos_token_id=data.BOS, eos_token_id=2, pad_token_id=data.PAD, tie_word_embeddings=False)
TRANSFORMER = dict(patch_size=2, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_layers=4,
                   num_single_layers=4, attention_head_dim=32, num_attention_heads=4, caption_channels=[128, 128],
                   text_emb_dim=128, num_routed_experts=4, num_activated_experts=2, axes_dims_rope=[8, 12, 12],
                   max_resolution=[32, 32], llama_layers=[0, 1, 2, 3, 0, 1, 2, 3])
SCHEDULER_SHIFT = 3.0


def build_vae():
    return AutoencoderKL(**VAE)


def build_encoder():
    cfg = LlamaConfig(vocab_size=len(data.VOCAB), attn_implementation="sdpa", **ENCODER)
    return LlamaModel(cfg)


def build_transformer():
    return HiDreamImageTransformer2DModel(**TRANSFORMER)


def conditioning(encoder, ids, mask):
    """moedit's rule, batched: (t5 [B, L, C], llama [N, B, L, C], pooled [B, C]) of right-padded ids.
    Layer outputs are read by hooks (not output_hidden_states), the same in every transformers
    version: llama = [layer 1, ..., layer N - 1, final norm(layer N)], t5 = its last entry."""
    outs = []
    hook = lambda module, args, out: outs.append(out[0] if isinstance(out, tuple) else out)
    handles = [layer.register_forward_hook(hook) for layer in encoder.layers]
    try:
        t5 = encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    finally:
        for h in handles:
            h.remove()
    assert len(outs) == len(encoder.layers)
    llama = torch.stack(outs[:-1] + [t5], 0)
    m = mask.to(t5.dtype)[..., None]
    pooled = (t5 * m).sum(1) / m.sum(1)
    return t5, llama, pooled


class MaskContext:
    """The key mask of the current batch: [B, S] over [image tokens, 3 x L text tokens], or None."""
    key_mask = None


class MaskedHiDreamAttnProcessor:
    """diffusers' HiDreamAttnProcessor with MaskContext.key_mask passed to attention."""

    def __init__(self, context):
        self.context = context

    def __call__(self, attn, hidden_states, hidden_states_masks=None, encoder_hidden_states=None,
                 image_rotary_emb=None, *args, **kwargs):
        dtype = hidden_states.dtype
        batch_size = hidden_states.shape[0]
        query_i = attn.q_rms_norm(attn.to_q(hidden_states)).to(dtype=dtype)
        key_i = attn.k_rms_norm(attn.to_k(hidden_states)).to(dtype=dtype)
        value_i = attn.to_v(hidden_states)
        inner_dim = key_i.shape[-1]
        head_dim = inner_dim // attn.heads
        query_i = query_i.view(batch_size, -1, attn.heads, head_dim)
        key_i = key_i.view(batch_size, -1, attn.heads, head_dim)
        value_i = value_i.view(batch_size, -1, attn.heads, head_dim)
        if hidden_states_masks is not None:
            key_i = key_i * hidden_states_masks.view(batch_size, -1, 1, 1)
        if not attn.single:
            query_t = attn.q_rms_norm_t(attn.to_q_t(encoder_hidden_states)).to(dtype=dtype)
            key_t = attn.k_rms_norm_t(attn.to_k_t(encoder_hidden_states)).to(dtype=dtype)
            value_t = attn.to_v_t(encoder_hidden_states)
            query_t = query_t.view(batch_size, -1, attn.heads, head_dim)
            key_t = key_t.view(batch_size, -1, attn.heads, head_dim)
            value_t = value_t.view(batch_size, -1, attn.heads, head_dim)
            num_image_tokens = query_i.shape[1]
            num_text_tokens = query_t.shape[1]
            query = torch.cat([query_i, query_t], dim=1)
            key = torch.cat([key_i, key_t], dim=1)
            value = torch.cat([value_i, value_t], dim=1)
        else:
            query, key, value = query_i, key_i, value_i
        if query.shape[-1] == image_rotary_emb.shape[-3] * 2:
            query, key = hidream.apply_rope(query, key, image_rotary_emb)
        else:
            query_1, query_2 = query.chunk(2, dim=-1)
            key_1, key_2 = key.chunk(2, dim=-1)
            query_1, key_1 = hidream.apply_rope(query_1, key_1, image_rotary_emb)
            query = torch.cat([query_1, query_2], dim=-1)
            key = torch.cat([key_1, key_2], dim=-1)
        mask = self.context.key_mask
        if mask is not None:
            assert mask.shape[1] == key.shape[1], (mask.shape, key.shape)
            mask = mask[:, None, None, :]
        hidden_states = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2),
                                                       value.transpose(1, 2), attn_mask=mask)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        if not attn.single:
            hidden_states_i, hidden_states_t = torch.split(hidden_states, [num_image_tokens, num_text_tokens], dim=1)
            return attn.to_out(hidden_states_i), attn.to_out_t(hidden_states_t)
        return attn.to_out(hidden_states)


class AuxLosses:
    """The gates' load-balancing losses of the current forward."""

    def __init__(self):
        self.items = []

    def take(self):
        items, self.items = self.items, []
        return sum(items) if items else None


def dense_moe_forward(self, x):
    """MOEFeedForwardSwiGLU.forward, every expert dense; see the module comment."""
    topk_idx, topk_weight, aux_loss = self.gate(x)
    if aux_loss is not None and getattr(self, "_aux_sink", None) is not None:
        self._aux_sink.items.append(aux_loss)
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    weights = torch.zeros(flat.shape[0], len(self.experts), dtype=topk_weight.dtype, device=x.device)
    weights = weights.scatter(1, topk_idx.view(flat.shape[0], -1), topk_weight.view(flat.shape[0], -1))
    y = None
    for i, expert in enumerate(self.experts):
        term = expert(flat) * weights[:, i:i + 1].to(flat.dtype)
        y = term if y is None else y + term
    return y.view(shape).to(x.dtype) + self.shared_experts(x)


def prepare_for_training(transformer):
    """Masked attention, dense MoE and aux-loss collection; returns (MaskContext, AuxLosses)."""
    context, aux = MaskContext(), AuxLosses()
    for module in transformer.modules():
        if isinstance(module, hidream.HiDreamAttention):
            module.set_processor(MaskedHiDreamAttnProcessor(context))
        if isinstance(module, hidream.MOEFeedForwardSwiGLU):
            module._aux_sink = aux
            module.forward = dense_moe_forward.__get__(module)
    return context, aux


def key_mask(text_mask, image_tokens):
    """[B, image_tokens + 3 L]: image tokens always, then the text mask three times (t5,
    the initial llama layer, the block's llama layer: HiDream's text stream layout)."""
    B = text_mask.shape[0]
    ones = torch.ones(B, image_tokens, dtype=torch.bool, device=text_mask.device)
    return torch.cat([ones, text_mask, text_mask, text_mask], 1)


def patchified(x, patch):
    """[B, C, H, W] in the layout of the transformer's training-mode output [B, C, S, p * p]."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // patch, patch, W // patch, patch).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(B, C, (H // patch) * (W // patch), patch * patch)


def transformer_output(transformer, latents, sigmas, t5, llama, pooled):
    """transformer(...).sample at timesteps sigma * 1000, as [B, C, H, W] in any mode."""
    out = transformer(hidden_states=latents, timesteps=sigmas * 1000, encoder_hidden_states_t5=t5,
                      encoder_hidden_states_llama3=llama, pooled_embeds=pooled).sample
    if out.shape != latents.shape:  # training mode: [B, C, S, p * p]
        p = transformer.config.patch_size
        B, C, H, W = latents.shape
        out = out.reshape(B, C, H // p, W // p, p, p).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)
    return out


def tokens(latents, patch):
    """[B, C, H, W] -> [B, (H / p)(W / p), p * p * C]: diffusers' patchify of a square image
    (row-major patches, each patch ordered (row in patch, column in patch, channel))."""
    B, C, H, W = latents.shape
    x = latents.reshape(B, C, H // patch, patch, W // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // patch) * (W // patch), patch * patch * C)


def grid_ids(batch, rows, cols, index, device):
    """RoPE ids [batch, rows * cols, 3] = (index, r, c): index is the frame (clips) or 1 for an
    edit's context image, 0 for a plain image (HiDream's img_ids)."""
    r = torch.arange(rows, device=device, dtype=torch.float32)[:, None].expand(rows, cols)
    c = torch.arange(cols, device=device, dtype=torch.float32)[None, :].expand(rows, cols)
    ids = torch.stack([torch.full_like(r, float(index)), r, c], -1).reshape(1, rows * cols, 3)
    return ids.expand(batch, -1, -1)


def sequence_output(transformer, seq, ids, sigmas, t5, llama, pooled):
    """The transformer on already patchified tokens seq [B, S, D] with RoPE ids [B, S, 3] (all
    tokens real: an all-ones hidden_states_masks), as moedit runs clips and in-context edits.
    Returns the output for every token [B, S, D] in the same layout (training mode)."""
    assert transformer.training, "sequence_output reads the training-mode output layout"
    B, S, D = seq.shape
    sizes = torch.tensor([[S, 1]] * B, device=seq.device)  # read by eval-mode unpatchify only
    out = transformer(hidden_states=seq, timesteps=sigmas * 1000, encoder_hidden_states_t5=t5,
                      encoder_hidden_states_llama3=llama, pooled_embeds=pooled, img_ids=ids, img_sizes=sizes,
                      hidden_states_masks=torch.ones(B, S, device=seq.device, dtype=seq.dtype)).sample
    return out.permute(0, 2, 3, 1).reshape(B, S, D)  # [B, C, S, p * p] -> [B, S, p * p * C]


def fit_vocab(state, prefix="text_encoder."):
    """A checkpoint's encoder state grown to len(data.VOCAB) rows: words appended to the
    vocabulary since it was trained get fresh embeddings (std 0.02, LlamaConfig's initializer
    range); every earlier id keeps its row."""
    key = prefix + "embed_tokens.weight"
    old = state[key]
    if old.shape[0] < len(data.VOCAB):
        gen = torch.Generator().manual_seed(len(data.VOCAB))
        fresh = torch.randn(len(data.VOCAB) - old.shape[0], old.shape[1], generator=gen) * 0.02
        state[key] = torch.cat([old, fresh.to(old.dtype)])
    return state


def shifted(u, shift):
    """FlowMatchEulerDiscreteScheduler's static shift: s u / (1 + (s - 1) u)."""
    return shift * u / (1 + (shift - 1) * u)
