#!/usr/bin/env python3
"""The PyTorch peer of bench/src/benches/eval.ts: test-split evaluation of the tiny Mistral model on the CPU, written
out in plain PyTorch (no transformers) the way HF's eager Mistral computes it, on the same bf16 weights (read from the
safetensors shards, widened to f32 as dawngrad loads them) and the same prompt token ids (handed over from Node).

Both of dawngrad's evaluate() modes, batched as it batches (prompts sorted by length, stable, batches of --batch,
right-padded):
  first-token  one forward over the batch; lm_head only at each prompt's last token; argmax over the three answers'
               first tokens; with "share_prefix" the batch's common prompt prefix (the system turn) runs once and
               the rows' suffixes attend to its keys and values, as dawngrad's firstTokenScores does;
  generate     greedy generation of up to --max-new tokens with a KV cache: a prefill over the prompts stores every
               layer's post-RoPE keys and values, then each step runs one new token per row at that row's own position
               (as dawngrad's generate(): a finished row feeds token 0 at position 0, the batch stays rectangular);
  both         the trainer's default: generation, with the first-token scores read from the same prefill.

  /usr/bin/python3 bench/peers/torch_eval.py --model DIR --prompts prompts.json [--repeat 3] [--json]

prompts.json: {"prompts": [[ids...], ...], "first_tokens": [3 ids], "end_token": id, "batch": 64, "max_new": 4,
               "share_prefix": true, "modes": ["first-token", "generate", "both"]}
One thread (torch.set_num_threads(1)), as the step peer; OPENBLAS_NUM_THREADS=1 is set by the caller.
"""
import argparse
import json
import math
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

# the step peer beside this file (its main() runs only as a script): the same RMSNorm, rotate-half and BLAS probe
from torch_step import blas_in_use, rms_norm, rotate_half

NEG = torch.finfo(torch.float32).min
MIN_SHARED_PREFIX = 8  # dawngrad's MIN_SHARED_PREFIX (packages/train/src/batching.ts)


# ---------------------------------------------------------------------------------------------------- safetensors
def read_safetensors(path):
    """{name: f32 tensor}: 8-byte little-endian header length, JSON header, raw little-endian bytes (bf16 widened)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        raw = bytearray(f.read())
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, not handled")
        x = torch.frombuffer(raw, dtype=dt, count=(b - a) // torch.tensor([], dtype=dt).element_size(), offset=a)
        out[name] = x.float().reshape(info["shape"]).clone()  # bf16 -> f32 is exact
    return out


def read_model(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    shards = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    w = {}
    for s in shards:
        w.update(read_safetensors(os.path.join(model_dir, s)))
    return w


# ------------------------------------------------------------------------------------------------------- the model
class Mistral:
    def __init__(self, cfg, w):
        self.C, self.H, self.KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or self.C // self.H
        self.eps = cfg["rms_norm_eps"]
        self.embed, self.norm, self.lm_head = w["model.embed_tokens.weight"], w["model.norm.weight"], w["lm_head.weight"]
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            self.layers.append({
                "in_norm": w[p + "input_layernorm.weight"], "post_norm": w[p + "post_attention_layernorm.weight"],
                **{n: w[p + "self_attn." + n + ".weight"] for n in ("q_proj", "k_proj", "v_proj", "o_proj")},
                **{n: w[p + "mlp." + n + ".weight"] for n in ("gate_proj", "up_proj", "down_proj")},
            })
        rope = cfg.get("rope_parameters") or {}
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.D, 2, dtype=torch.float32) / self.D))

    def rope(self, pos):
        # pos: [B, S] -> cos, sin [B, 1, S, D]
        f = pos.float()[..., None] * self.inv_freq
        e = torch.cat((f, f), dim=-1)[:, None]
        return e.cos(), e.sin()

    def run(self, ids, pos, key_mask, cache=None, write_at=None):
        """ids, pos: [B, S]; key_mask: [B, L] 1 where a key position holds a token (L = S without a cache).
        Without a cache: causal attention over the S tokens; with one: the S new tokens' k/v are written at cache
        positions write_at [B, S] first, then attention runs over the cache's first L positions (keys masked by
        key_mask, and causally: a query at position p sees keys 0..p). Returns the final-normed hidden states [B, S, C]."""
        B, S = ids.shape
        H, KV, D = self.H, self.KV, self.D
        cos, sin = self.rope(pos)
        L = key_mask.shape[1]
        allowed = key_mask.bool()[:, None, None, :] & (torch.arange(L) <= pos[:, None, :, None])  # [B, 1, S, L]
        mask = torch.zeros(B, 1, S, L).masked_fill(~allowed, NEG)
        x = F.embedding(ids, self.embed)
        rows = torch.arange(B)[:, None].expand(B, S)
        for i, l in enumerate(self.layers):
            h = rms_norm(x, l["in_norm"], self.eps)
            q = F.linear(h, l["q_proj"]).view(B, S, H, D).transpose(1, 2)
            k = F.linear(h, l["k_proj"]).view(B, S, KV, D).transpose(1, 2)
            v = F.linear(h, l["v_proj"]).view(B, S, KV, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache is not None:
                ck, cv = cache[i]  # [B, KV, Lmax, D]
                ck.transpose(1, 2)[rows, write_at] = k.transpose(1, 2)  # row b, token s -> cache position write_at[b, s]
                cv.transpose(1, 2)[rows, write_at] = v.transpose(1, 2)
                k, v = ck[:, :, :L], cv[:, :, :L]
            k = k.repeat_interleave(H // KV, dim=1)  # GQA (HF repeat_kv)
            v = v.repeat_interleave(H // KV, dim=1)
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + mask, dim=-1)
            x = x + F.linear((p @ v).transpose(1, 2).reshape(B, S, H * D), l["o_proj"])
            h2 = rms_norm(x, l["post_norm"], self.eps)
            x = x + F.linear(F.silu(F.linear(h2, l["gate_proj"])) * F.linear(h2, l["up_proj"]), l["down_proj"])
        return rms_norm(x, self.norm, self.eps)


# ------------------------------------------------------------------------------------------------------ evaluation
def pad(rows):
    B, T = len(rows), max(len(r) for r in rows)
    ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = 1
    return ids, mask, torch.arange(T)[None].expand(B, T)


def shared_prefix_length(rows):
    """dawngrad's sharedPrefixLength: the rows' common leading ids, kept ≥ 1 token short of the shortest row."""
    P = min(len(r) for r in rows) - 1
    for r in rows:
        i = 0
        while i < P and r[i] == rows[0][i]:
            i += 1
        P = i
    return P if len(rows) >= 2 and P >= MIN_SHARED_PREFIX else 0


def first_token_batch(model, rows, first, share_prefix):
    """As dawngrad's firstTokenScores: the common prefix (the system turn) runs once, batch 1, into a K/V cache the
    rows' suffixes then attend to; without it every row runs whole."""
    B = len(rows)
    P = shared_prefix_length(rows) if share_prefix else 0
    ids, mask, pos = pad([r[P:] for r in rows])
    if P == 0:
        h = model.run(ids, pos, mask)
    else:
        S = ids.shape[1]
        kv = lambda b, n: [(torch.zeros(b, model.KV, n, model.D), torch.zeros(b, model.KV, n, model.D)) for _ in model.layers]
        pre, cache = kv(1, P), kv(B, P + S)
        ppos = torch.arange(P)[None]
        model.run(torch.tensor([rows[0][:P]]), ppos, torch.ones(1, P, dtype=torch.long), pre, ppos)
        for (ck, cv), (pk, pv) in zip(cache, pre):
            ck[:, :, :P] = pk
            cv[:, :, :P] = pv
        h = model.run(ids, pos + P, torch.cat([torch.ones(B, P, dtype=torch.long), mask], dim=1), cache, pos + P)
    last = h[torch.arange(B), torch.tensor([len(r) - P - 1 for r in rows])]  # [B, C]: lm_head only there
    return F.linear(last, model.lm_head)[:, first].argmax(-1).tolist()


def generate_batch(model, rows, first, end, max_new, score_first):
    B = len(rows)
    ids, mask, pos = pad(rows)
    T = ids.shape[1]
    Lmax = T + max(0, max_new - 1)
    cache = [(torch.zeros(B, model.KV, Lmax, model.D), torch.zeros(B, model.KV, Lmax, model.D)) for _ in model.layers]
    key_mask = torch.zeros(B, Lmax, dtype=torch.long)
    key_mask[:, :T] = mask
    h = model.run(ids, pos, key_mask[:, :T], cache, pos)
    logits = F.linear(h[torch.arange(B), torch.tensor([len(r) - 1 for r in rows])], model.lm_head)  # [B, V]
    ft = logits[:, first].argmax(-1).tolist() if score_first else None
    nxt = logits.argmax(-1).tolist()
    lens = [len(r) for r in rows]
    out = [[] for _ in rows]
    done = [False] * B
    for step in range(max_new):
        fed, at = [0] * B, [0] * B
        for b in range(B):
            if done[b]:
                continue
            out[b].append(nxt[b])
            done[b] = nxt[b] == end
            fed[b], at[b] = nxt[b], lens[b]
            lens[b] += 1
        if step + 1 == max_new or all(done):
            break
        at_t = torch.tensor(at)[:, None]
        key_mask[torch.arange(B), at_t[:, 0]] = 1
        L = max(lens)  # keys up to the furthest filled position
        h = model.run(torch.tensor(fed)[:, None], at_t, key_mask[:, :L], cache, at_t)
        nxt = F.linear(h[:, 0], model.lm_head).argmax(-1).tolist()
    return out, ft


def evaluate(model, prompts, first, end, batch, max_new, mode, share_prefix):
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # stable, as Array.prototype.sort
    ft = [-1] * len(prompts)
    gen = [[] for _ in prompts]
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        rows = [prompts[i] for i in idx]
        if mode == "first-token":
            for i, p in zip(idx, first_token_batch(model, rows, first, share_prefix)):
                ft[i] = p
        else:
            outs, f = generate_batch(model, rows, first, end, max_new, mode == "both")
            for k, i in enumerate(idx):
                gen[i] = outs[k]
                if f is not None:
                    ft[i] = f[k]
    return ft, gen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a Hugging Face Mistral directory (config.json + safetensors)")
    ap.add_argument("--prompts", required=True, help="the JSON eval.ts writes (prompt ids, answers' first tokens, ...)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per mode (the median is reported)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    spec = json.load(open(a.prompts))
    prompts, first, end = spec["prompts"], spec["first_tokens"], spec["end_token"]
    batch, max_new, share = spec["batch"], spec["max_new"], spec.get("share_prefix", False)
    t0 = time.perf_counter()
    model = Mistral(cfg, read_model(a.model))
    blas = next((m.group(1) for m in [re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())] if m), "unknown")
    loaded = blas_in_use()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), BLAS_INFO={blas}, loaded: {loaded}; "
          f"weights read in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas, "blas_loaded": loaded, "modes": {}}
    with torch.inference_mode():
        # warm-up: one batch of each path (allocator, BLAS and kernel first-touch), untimed
        warm = prompts[:batch]
        evaluate(model, warm, first, end, batch, max_new, "first-token", share)
        evaluate(model, warm, first, end, batch, max_new, "both", share)
        for mode in spec["modes"]:
            # a pass takes seconds here, so one load spike on the shared cores moves it a lot: the median of --repeat
            times = []
            for _ in range(a.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                ft, gen = evaluate(model, prompts, first, end, batch, max_new, mode, share)
                times.append((time.perf_counter() - t0, time.process_time() - c0))
            s, cpu = sorted(times)[len(times) // 2]
            print(f"{mode}: {len(prompts)} tweets in {s:.2f} s (CPU {cpu:.2f} s; median of {a.repeat}: "
                  f"{', '.join(f'{t:.2f}' for t, _ in times)} s): {len(prompts) / s:.1f} tweets/s")
            res["modes"][mode] = {"seconds": s, "cpu_seconds": cpu, "all_seconds": [t for t, _ in times],
                                  "first_token": ft if mode != "generate" else None,
                                  "generated": gen if mode != "first-token" else None}
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
