"""HF parity on a GPU: dawngrad's logits, loss and LoRA gradients against transformers + PEFT in float64 on the CPU.

A machine with a GPU but no ../shared/fixtures (nothing beyond the pack travels) has to make its own reference: this
script writes a batch, runs `dawngrad forward` on it (f32 and --precision mixed), computes the same forward and backward
with transformers (+ PEFT) in float64, and prints the worst differences. Exit 1 when f32 misses the parity bounds of the
Node tests (logits 1e-4 max-abs, LoRA gradients 1e-3 relative) or mixed misses its own (5e-3 of the logits' range, 1e-2).

  python3 scripts/gpu/parity.py --model DIR [--adapter DIR] --run "bash .gpu/run.sh" --out DIR
  python3 scripts/gpu/parity.py --build-llama DIR --run "bash .gpu/run.sh" --out DIR

--build-llama makes a model nothing in the repository was tuned on, and checks it the same way: a random
LlamaForCausalLM (tied embeddings, GQA 3:1, bf16 weights) with a random PEFT rsLoRA adapter on every linear (B drawn
non-zero, so A gets gradients too).
"""

import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file


def reference(model_dir, adapter_dir, batch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64, attn_implementation="eager")
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    model.train(False)
    out = model(input_ids=batch["input_ids"].long(), attention_mask=batch["attention_mask"].long(), labels=batch["labels"].long())
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad and p.grad is not None and "lora_" in n}
    return out.logits.detach(), out.loss.item(), grads


def build_llama(out):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=96, intermediate_size=160, num_hidden_layers=2, num_attention_heads=6,
                      num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=True, rope_theta=10000.0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(out)
    base = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32)
    lcfg = LoraConfig(r=4, lora_alpha=8, use_rslora=True, lora_dropout=0.0,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(base, lcfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)  # PEFT starts B at 0, where every gradient of A would be 0 too
    model.save_pretrained(os.path.join(out, "adapter"))
    return out, os.path.join(out, "adapter")


def relerr(a, b):
    return ((a - b).norm() / max(b.norm().item(), 1e-30)).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--build-llama", metavar="DIR", help="build a random Llama + rsLoRA adapter in DIR and check that")
    ap.add_argument("--adapter")
    ap.add_argument("--run", default="bash .gpu/run.sh", help="how to start dawngrad")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--len", type=int, default=40)
    a = ap.parse_args()
    if a.build_llama:
        a.model, a.adapter = build_llama(a.build_llama)
    if not a.model:
        ap.error("--model or --build-llama is required")
    os.makedirs(a.out, exist_ok=True)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, cfg["vocab_size"], (a.rows, a.len), generator=g, dtype=torch.int32)
    mask = torch.ones_like(ids)
    mask[1, a.len - 7 :] = 0  # a right-padded row
    labels = torch.full_like(ids, -100)
    labels[:, a.len // 2 :] = ids[:, a.len // 2 :]
    labels[mask == 0] = -100
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    batch_file = os.path.join(a.out, "parity-batch.safetensors")
    save_file(batch, batch_file)
    want_logits, want_loss, want_grads = reference(a.model, a.adapter, batch)
    rng = want_logits.abs().max().item()
    keep = mask.bool()
    rows, ok = [], True
    for precision, logit_tol, grad_tol in (("f32", 1e-4, 1e-3), ("mixed", 5e-3 * rng, 1e-2)):
        got_file = os.path.join(a.out, f"parity-{precision}.safetensors")
        cmd = f"{a.run} forward --model {a.model} --batch {batch_file} --out {got_file} --precision {precision}"
        if a.adapter:
            cmd += f" --adapter {a.adapter} --grads lora"
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        if r.returncode != 0:
            rows.append(f"{precision}: dawngrad forward failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
            ok = False
            continue
        got = load_file(got_file)
        logits = got["logits"].double()
        dl = (logits - want_logits)[keep].abs().max().item()
        loss = abs(got["loss"].item() - want_loss) / abs(want_loss)
        worst = 0.0
        for name, gw in want_grads.items():
            key = f"grad.{name}"
            if key not in got:
                rows.append(f"{precision}: no {key} in dawngrad's output")
                ok = False
                continue
            worst = max(worst, relerr(got[key].double(), gw))
        passed = dl <= logit_tol and worst <= grad_tol
        ok = ok and passed
        rows.append(f"{precision:5s} logits max|Δ| {dl:.2e} (range {rng:.2f}, bound {logit_tol:.1e})  loss rel {loss:.1e}  "
                    f"LoRA grads worst rel {worst:.2e} (bound {grad_tol:.0e})  {'ok' if passed else 'FAIL'}")
    print(f"parity vs transformers{' + PEFT' if a.adapter else ''} (float64, CPU) on {a.model}, batch [{a.rows}, {a.len}]:")
    print("\n".join(rows))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
