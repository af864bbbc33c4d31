# `moedit inspect` names every component's class and counts the weights of
# sharded checkpoints: the demo model (a transformer in two shards, a
# tokenizer.json alone) and a HiDream-I1-like layout (four text encoders whose
# class is transformers' "architectures", tokenizers by tokenizer_class, one
# encoder sharded under transformers' file stem "model").
source "$(dirname "$0")/common_cli.sh"
demo="$fixtures/../../models/demo"

# expect_line NAME PATTERN: fails unless $work/out has a line matching PATTERN.
expect_line() {
  if grep -Eq "$2" "$work/out"; then echo "ok   $1"; else fail "$1: no line matching '$2'"; cat "$work/out"; fi
}

"$moedit" inspect --model "$demo" >"$work/out" 2>&1 || fail "inspect demo: $(cat "$work/out")"
expect_line "sharded transformer counted" "^    weights: 10.132 M parameters in 299 tensors, BF16"
expect_line "text encoder class" "^  text_encoder +LlamaModel$"
expect_line "tokenizer.json alone" "^  tokenizer +tokenizer.json$"

hidream="$work/hidream"
mkdir -p "$hidream"
cp -r "$demo/transformer" "$demo/vae" "$demo/scheduler" "$hidream/"
for i in "" _2 _3 _4; do
  mkdir -p "$hidream/text_encoder$i" "$hidream/tokenizer$i"
  echo '{"tokenizer_class": "T5Tokenizer"}' >"$hidream/tokenizer$i/tokenizer_config.json"
done
echo '{"architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model"}' \
  >"$hidream/text_encoder_2/config.json"
echo '{"model_type": "t5"}' >"$hidream/text_encoder_3/config.json"
# text_encoder_3 in transformers' shards: the demo transformer's two files renamed.
for n in 1 2; do
  cp "$demo/transformer/diffusion_pytorch_model-0000$n-of-00002.safetensors" \
    "$hidream/text_encoder_3/model-0000$n-of-00002.safetensors"
done
sed 's/diffusion_pytorch_model-/model-/g' "$demo/transformer/diffusion_pytorch_model.safetensors.index.json" \
  >"$hidream/text_encoder_3/model.safetensors.index.json"
"$moedit" inspect --model "$hidream" >"$work/out" 2>&1 || fail "inspect hidream layout: $(cat "$work/out")"
expect_line "architectures[0]" "^  text_encoder_2 CLIPTextModelWithProjection$"
expect_line "model_type without architectures" "^  text_encoder_3 t5$"
expect_line "transformers' shards counted" "^    weights: 10.132 M parameters in 299 tensors"
expect_line "tokenizer_class" "^  tokenizer_4 +T5Tokenizer$"
expect_line "a component without a config" "^  text_encoder +\?$"
"$moedit" inspect --model "$hidream" --json >"$work/out" 2>&1 || fail "inspect --json: $(cat "$work/out")"
expect_line "JSON lists text_encoder_4" '"text_encoder_4":\{"class":"\?"\}'
finish cli_inspect
