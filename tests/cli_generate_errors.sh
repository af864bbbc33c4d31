#!/usr/bin/env bash
# moedit generate with bad input: one line "moedit: error: ...", exit 1, no
# output file; and a good run writes exactly the file asked for.
# usage: cli_generate_errors.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
out="$work/out.png"

run=("$moedit" generate --model "$model" --prompt "a red circle" --num-inference-steps 2 --seed 0 --quiet)
expect_error "missing model dir" "does not exist" "$moedit" generate --model "$work/none" --prompt x --height 64 --width 64 --output "$out"
expect_error "height not on the grid" "multiples of 16" "${run[@]}" --height 40 --width 64 --output "$out"
expect_error "zero steps" "num-inference-steps 0" "${run[@]}" --height 64 --width 64 --num-inference-steps 0 --output "$out"
expect_error "placement without EP" "needs --enable-expert-parallel" "${run[@]}" --height 64 --width 64 --expert-placement "$work/r" --output "$out"
expect_error "placement file missing" "no such routing file" "${run[@]}" --height 64 --width 64 --enable-expert-parallel --expert-placement "$work/r" --output "$out"
expect_error "negative steps" "num-inference-steps -3" "${run[@]}" --height 64 --width 64 --num-inference-steps -3 --output "$out"
expect_error "absurd size" "each side must be" "${run[@]}" --height 1000000 --width 1000000 --output "$out"
expect_error "negative size" "each side must be" "${run[@]}" --height -64 --width 64 --output "$out"
expect_error "unknown flag" "unknown option '--stepz'" "${run[@]}" --stepz 3 --output "$out"
expect_error "bad number" "not an integer" "${run[@]}" --height 6x4 --output "$out"
expect_error "unwritable output" "not writable" "${run[@]}" --height 64 --width 64 --output "$work/no/such/dir/out.png"
expect_error "unsupported format" "unsupported image format" "${run[@]}" --height 64 --width 64 --output "$work/out.gif"
expect_error "model is a file" "is not a directory" "$moedit" generate --model "$model/model_index.json" --prompt x --height 64 --width 64 --output "$out"
expect_error "output is a directory" "is a directory" "${run[@]}" --height 64 --width 64 --output "$work"
expect_error "output without extension" "has no .png or .jpg extension" "${run[@]}" --height 64 --width 64 --output "$work/picture"
expect_error "capture into a missing directory" "--routing-capture $work/none/r.bin: directory" "${run[@]}" --height 64 --width 64 --routing-capture "$work/none/r.bin" --output "$out"
expect_error "no prompt" "needs --prompt" "$moedit" generate --model "$model" --height 64 --width 64 --output "$out"
expect_error "missing prompt file" "none.txt: cannot open prompt file (--prompt-file): No such file" "$moedit" generate --model "$model" --prompt-file "$work/none.txt" --height 64 --width 64 --output "$out"
expect_error "a directory as the prompt file" "cannot read prompt file (--prompt-file): Is a directory" "$moedit" generate --model "$model" --prompt-file "$work" --height 64 --width 64 --output "$out"
printf 'a red\0circle\n' >"$work/nul.txt"
expect_error "a prompt file with a NUL byte" "nul.txt: prompt file (--prompt-file) contains a NUL byte" "$moedit" generate --model "$model" --prompt-file "$work/nul.txt" --height 64 --width 64 --output "$out"
expect_error "prompt and prompt file" "not both" "${run[@]}" --prompt-file "$work/none.txt" --height 64 --width 64 --output "$out"
expect_error "cfg parallel without guidance" "cfg-parallel-size 2 needs" "${run[@]}" --height 64 --width 64 --guidance-scale 1 --cfg-parallel-size 2 --output "$out"
expect_error "degrees vs ranks" "must equal the number of ranks" "${run[@]}" --height 64 --width 64 --tensor-parallel-size 2 --output "$out"
# tp 3 also fails to divide tiny-random's 2 heads; the ranks are the mistake to name.
expect_error "degrees vs ranks, not the heads" "= 3, but the world has 1 rank(s)" "${run[@]}" --height 64 --width 64 --tensor-parallel-size 3 --output "$out"
expect_error "unknown device" "--device: 'tpu' is not cpu, cuda or auto" "${run[@]}" --height 64 --width 64 --device tpu --output "$out"
expect_error "cuda without a GPU" "CUDA" "${run[@]}" --height 64 --width 64 --device cuda --output "$out"
expect_error "bad init noise" "latents" "${run[@]}" --height 64 --width 64 --init-noise "$2/dit_moe/io.safetensors" --output "$out"

# Good runs: one file; numbered files for a prompt file with two images each.
if "${run[@]}" --height 64 --width 64 --output "$out" && [ -s "$out" ]; then echo "ok   single image"; else
  echo "FAIL single image"; failures=$((failures + 1)); fi
# No GPU visible: the default device (auto) is the CPU, the same picture as --device cpu.
if "${run[@]}" --height 64 --width 64 --device cpu --output "$work/cpu.png" && cmp -s "$out" "$work/cpu.png" &&
   "${run[@]}" --height 64 --width 64 --device auto --output "$work/auto.png" && cmp -s "$out" "$work/auto.png"; then
  echo "ok   default and auto device = cpu without a GPU"; else fail "default or auto device differs from --device cpu"; fi
printf 'a red circle\n\na blue square\n' >"$work/prompts.txt"
if "$moedit" generate --model "$model" --prompt-file "$work/prompts.txt" --num-images-per-prompt 2 \
     --num_inference_steps 2 --height 32 --width 32 --seed 0 --quiet --output "$work/batch.jpg" --json >"$work/json" &&
   [ -s "$work/batch-0.jpg" ] && [ -s "$work/batch-3.jpg" ] && [ ! -e "$work/batch-4.jpg" ] &&
   grep -q '"seeds":\[0,1,0,1\]' "$work/json"; then echo "ok   prompt file, numbered outputs"; else
  echo "FAIL prompt file batch: $(cat "$work/json")"; failures=$((failures + 1)); fi

# A text encoder whose weights exceed any machine's memory (a 4 TiB F32 tensor in a sparse file) is refused on the
# CPU before any is read or allocated.
cp -r "$model" "$work/huge_text"
python3 - "$work/huge_text/text_encoder/model.safetensors" <<'PY'
import json, os, struct, sys
n = 1 << 40  # elements: 4 TiB of F32
header = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [1 << 20, 1 << 20],
                                                   "data_offsets": [0, 4 * n]}}).encode()
header += b" " * (-len(header) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header)
    f.truncate(8 + len(header) + 4 * n)  # sparse: nothing written
PY
[ -s "$work/huge_text/text_encoder/model.safetensors" ] || fail "could not write the sparse 4 TiB weights file"
expect_error "text encoder beyond memory" "text encoder's weights on the CPU.*GiB available" \
  "$moedit" generate --model "$work/huge_text" --prompt x --height 64 --width 64 --num-inference-steps 1 \
  --quiet --output "$out"
rm -rf "$work/huge_text"

lora="$fixtures/pipeline_lora/lora.safetensors"
expect_error "LoRA scale without a LoRA" "1 --lora-scale for 0 --lora" "${run[@]}" --height 64 --width 64 --lora-scale 2 --output "$out"
expect_error "more scales than LoRAs" "2 --lora-scale for 1 --lora" "${run[@]}" --height 64 --width 64 --lora "$lora" --lora-scale 1 --lora-scale 2 --output "$out"
expect_error "LoRA scale 0" "--lora-scale 0 for" "${run[@]}" --height 64 --width 64 --lora "$lora" --lora-scale 0 --output "$out"
nine=(); for i in 1 2 3 4 5 6 7 8 9; do nine+=(--lora "$lora"); done
expect_error "nine LoRAs" "option --lora: more than 8" "${run[@]}" --height 64 --width 64 "${nine[@]}" --output "$out"
expect_error "LoRA with an empty name" "--lora: an empty file name" "${run[@]}" --height 64 --width 64 --lora "" --output "$out"
expect_error "LoRA strength that overflows the weights" "non-finite after the merge" "${run[@]}" --height 64 --width 64 --lora "$lora" --lora-scale 1e39 --output "$out"
expect_error "LoRA strength that overflows the forward" "made non-finite latents" "${run[@]}" --height 64 --width 64 --lora "$lora" --lora-scale 1e30 --output "$out"
expect_error "LoRA file missing" "none.safetensors: cannot open" "${run[@]}" --height 64 --width 64 --lora "$work/none.safetensors" --output "$out"
printf 'not a safetensors file at all\n' >"$work/notes.txt"
expect_error "LoRA is not a safetensors file" "notes.txt" "${run[@]}" --height 64 --width 64 --lora "$work/notes.txt" --output "$out"
expect_error "LoRA for another model" "a LoRA for another model" "$moedit" generate --model "$fixtures/../../models/demo" --prompt x --height 64 --width 64 --num-inference-steps 1 --quiet --lora "$lora" --output "$out"
expect_error "LoRA with random weights" "cannot go with --random-weights" "${run[@]}" --height 64 --width 64 --random-weights --lora "$lora" --output "$out"
# Two LoRAs, each with its strength: the run writes the picture.
if "${run[@]}" --height 64 --width 64 --lora "$lora" --lora-scale 0.7 --lora "$fixtures/pipeline_lora/lora_second.safetensors" \
     --lora-scale -0.4 --output "$out" 2>"$work/err" && [ -s "$out" ]; then
  echo "ok   two LoRAs with their strengths"
else
  fail "two LoRAs: $(cat "$work/err")"
fi
rm -f "$out"
finish cli_generate_errors
