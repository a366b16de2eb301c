#!/usr/bin/env python3
"""The PyTorch peer of bench/src/step.ts: one LoRA training step of a Mistral-shaped model on the CPU, written out
in plain PyTorch (no transformers or peft) the way their eager code computes it:

  embedding -> N x (RMSNorm, q/k/v projections, RoPE, grouped-query attention with a causal + padding mask,
  o projection, residual, RMSNorm, SwiGLU MLP, residual) -> final RMSNorm -> lm_head at the labelled rows only
  -> cross-entropy -> backward (LoRA A/B only; the base is frozen) -> clip_grad_norm_(1.0) -> AdamW.

LoRA (r 8, alpha 16) sits on every linear layer of the blocks (PEFT's all-linear: q, k, v, o, gate, up, down).
Weights are random: the time of a step does not depend on their values. Batches come from the JSON that step.ts
writes (the same token ids, lengths and answers), or are random ids of the given lengths.

  /usr/bin/python3 bench/peers/torch_step.py --config CONFIG.json --batches step-batches.json [--json]
  /usr/bin/python3 bench/peers/torch_step.py --config CONFIG.json --lengths 75,71,80 --batch 16

One thread (torch.set_num_threads(1)): the dawngrad goal is stated against a one-thread CPU step.
"""
import argparse
import json
import math
import random
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class LoraLinear(nn.Module):
    """y = x W^T + scale * B(A(x)): W frozen [out, in]; A [r, in] and B [out, r] trained (PEFT's lora.Linear)."""

    def __init__(self, n_in, n_out, r, alpha):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) * 0.02, requires_grad=False)
        self.lora_A = nn.Parameter(torch.empty(r, n_in))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        # PEFT starts B at zero; small values instead so no gradient is structurally zero (same cost either way)
        self.lora_B = nn.Parameter(torch.randn(n_out, r) * 1e-3)
        self.scale = alpha / r

    def forward(self, x):
        return F.linear(x, self.weight) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale


def rms_norm(x, w, eps):
    # HF MistralRMSNorm: x * rsqrt(mean(x^2) + eps) * w
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, cfg, r, alpha):
        super().__init__()
        C, D = cfg["hidden_size"], cfg["head_dim"]
        H, KV, I = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
        self.H, self.KV, self.D, self.eps = H, KV, D, cfg["rms_norm_eps"]
        self.input_norm = nn.Parameter(torch.ones(C), requires_grad=False)
        self.post_norm = nn.Parameter(torch.ones(C), requires_grad=False)
        self.q = LoraLinear(C, H * D, r, alpha)
        self.k = LoraLinear(C, KV * D, r, alpha)
        self.v = LoraLinear(C, KV * D, r, alpha)
        self.o = LoraLinear(H * D, C, r, alpha)
        self.gate = LoraLinear(C, I, r, alpha)
        self.up = LoraLinear(C, I, r, alpha)
        self.down = LoraLinear(I, C, r, alpha)

    def forward(self, x, cos, sin, mask):
        # x: [B, T, C]; cos, sin: [T, D]; mask: [B, 1, T, T] additive
        B, T, _ = x.shape
        H, KV, D = self.H, self.KV, self.D
        h = rms_norm(x, self.input_norm, self.eps)
        q = self.q(h).view(B, T, H, D).transpose(1, 2)  # [B, H, T, D]
        k = self.k(h).view(B, T, KV, D).transpose(1, 2)  # [B, KV, T, D]
        v = self.v(h).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # GQA: each KV head serves H / KV query heads (HF repeat_kv)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D) + mask  # [B, H, T, T]
        p = torch.softmax(scores, dim=-1)
        a = (p @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.o(a)
        h2 = rms_norm(x, self.post_norm, self.eps)
        return x + self.down(F.silu(self.gate(h2)) * self.up(h2))


class Model(nn.Module):
    def __init__(self, cfg, r=8, alpha=16):
        super().__init__()
        C, V = cfg["hidden_size"], cfg["vocab_size"]
        cfg.setdefault("head_dim", C // cfg["num_attention_heads"])
        self.cfg = cfg
        self.embed = nn.Parameter(torch.randn(V, C) * 0.02, requires_grad=False)
        self.layers = nn.ModuleList(Block(cfg, r, alpha) for _ in range(cfg["num_hidden_layers"]))
        self.norm = nn.Parameter(torch.ones(C), requires_grad=False)
        self.lm_head = nn.Parameter(torch.randn(V, C) * 0.02, requires_grad=False)
        rope = cfg.get("rope_parameters") or {}
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        D = cfg["head_dim"]
        # a buffer, so that .to(device) moves it (torch_cuda.py runs this model on the GPU)
        self.register_buffer("inv_freq", 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D)), persistent=False)

    def forward(self, ids, attn, logits_at):
        # ids, attn: [B, T]; logits_at: [N] flat rows of [B*T]
        B, T = ids.shape
        dev = ids.device
        pos = torch.arange(T, dtype=torch.float32, device=dev)
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()  # [T, D]
        causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
        allowed = causal[None, None] & attn.bool()[:, None, None, :]
        mask = torch.zeros(B, 1, T, T, device=dev).masked_fill(~allowed, torch.finfo(torch.float32).min)
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        x = x.reshape(B * T, -1)[logits_at]  # only the rows the loss reads
        return F.linear(rms_norm(x, self.norm, self.cfg["rms_norm_eps"]), self.lm_head)


def make_batch(ids_rows, lengths, prompt_lengths, answers):
    """As dawngrad's trainBatch: right-padded ids, mask, loss rows = the positions just before each answer token."""
    B, T = len(ids_rows), len(ids_rows[0])
    ids = torch.tensor(ids_rows, dtype=torch.long)
    attn = torch.zeros(B, T, dtype=torch.long)
    at, targets = [], []
    for b in range(B):
        attn[b, : lengths[b]] = 1
        for j, t in enumerate(answers[b]):
            at.append(b * T + prompt_lengths[b] - 1 + j)
            targets.append(t)
    return ids, attn, torch.tensor(at, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def random_batch(rng, B, T, V):
    lengths = [T] + [rng.randint(max(8, T // 2), T) for _ in range(B - 1)]
    rows = [[rng.randrange(3, V) for _ in range(n)] + [0] * (T - n) for n in lengths]
    answers = [[rng.randrange(3, V), 2] for _ in range(B)]
    return make_batch(rows, lengths, [n - 2 for n in lengths], answers)


def blas_in_use():
    """The BLAS shared object torch actually loaded (Debian's torch links libblas.so.3, an alternatives link)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if re.search(r"blas|mkl", line)})
        return ", ".join(libs) or "none found"
    except OSError:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="a Hugging Face config.json (Mistral/Llama)")
    ap.add_argument("--batches", help="step-batches.json written by bench/src/step.ts")
    ap.add_argument("--lengths", help="comma-separated padded lengths T, one per step (random ids)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: the file's, else 2)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.config) as f:
        cfg = json.load(f)
    if a.batches:
        with open(a.batches) as f:
            data = json.load(f)
        batches = [make_batch(b["input_ids"], b["lengths"], b["prompt_lengths"], b["answers"]) for b in data["batches"]]
        warmup = a.warmup if a.warmup is not None else data.get("warmup", 2)
    elif a.lengths:
        rng = random.Random(0)
        lengths = [int(t) for t in a.lengths.split(",")]
        batches = [random_batch(rng, a.batch, T, cfg["vocab_size"]) for T in lengths]
        warmup = a.warmup if a.warmup is not None else 2
        batches = [random_batch(rng, a.batch, lengths[0], cfg["vocab_size"]) for _ in range(warmup)] + batches
    else:
        ap.error("give --batches or --lengths")

    model = Model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    blas = next((m.group(1) for m in [re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())] if m), "unknown")
    loaded = blas_in_use()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), BLAS_INFO={blas}, loaded: {loaded}", file=sys.stderr)
    print(f"trainable {sum(p.numel() for p in params):,} values in {len(params)} tensors", file=sys.stderr)

    times, cpu = [], []
    for i, (ids, attn, at, targets) in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        logits = model(ids, attn, at)
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ms = (time.perf_counter() - t0) * 1000
        cpu_ms = (time.process_time() - c0) * 1000  # this process's CPU time: less sensitive to a loaded machine
        if i >= warmup:
            times.append(ms)
            cpu.append(cpu_ms)
            print(f"step {len(times)}: {ms:.1f} ms (CPU {cpu_ms:.1f} ms), T {ids.shape[1]}, loss {loss.item():.4f}")
        else:
            print(f"warm-up: {ms:.1f} ms, T {ids.shape[1]}")
    med = statistics.median(times)
    print(f"median {med:.1f} ms/step (CPU {statistics.median(cpu):.1f} ms) over {len(times)} steps (batch {batches[0][0].shape[0]})")
    if a.json:
        print(json.dumps({"median_ms": med, "ms": times, "median_cpu_ms": statistics.median(cpu), "cpu_ms": cpu, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "blas": blas, "blas_loaded": loaded}))


if __name__ == "__main__":
    main()
