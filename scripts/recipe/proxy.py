#!/usr/bin/env python3
"""The PyTorch mirror of dawngrad's trainer that search.py drives: the model, LoRA, data order, schedule and loss.

It computes what our trainer computes, step for step:
  rows = prompt ‖ answer (ids from export_tokens.ts, i.e. our own tokenizer and PromptFormat), right-padded with 0;
  Mistral forward (RMSNorm, RoPE, grouped-query attention, SwiGLU) with LoRA on q,k,v,o,gate,up,down
  (A ~ U(±1/√in) from our mulberry32 stream in our layer order, B = 0, scale alpha/r, dropout 0);
  loss = mean cross-entropy over the answer tokens (logits at t predict token t+1);
  clip_grad_norm_(1.0) + AdamW(0.9, 0.999, eps 1e-8, wd 0.01); lr schedule = optim/schedule.ts;
  data order = batching.ts epochBatches (seeded shuffle, length bucketing), with our mulberry32.

One speed trick that changes no number beyond float rounding: every prompt starts with the same ~25 tokens (<s> +
system turn + user header), so each batch runs that shared prefix once (batch 1) and attends to its keys/values from
every row (autograd sums the rows' gradients through the broadcast).

Weights are read from the bf16 safetensors shards with numpy (8-byte header length, JSON header, raw bytes).
"""
import json
import math
import os
import sys

# one BLAS thread: on this 2-core, shared machine OpenBLAS's own threads make a step 10× slower (measured); must be
# set before numpy/torch load OpenBLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "../../../shared"))
MODEL_DIR = os.environ.get("RECIPE_MODEL_DIR") or os.path.join(SHARED, "models/tweet-mistral-tiny")
FIXTURE_DIR = os.path.join(SHARED, "fixtures/hf-tiny")
LABELS = ["negative", "neutral", "positive"]


class conf:  # set by `search.py run` for everything below
    device = torch.device("cpu")  # `run --device cuda` moves the search to a GPU (grid.py); tensors are built on the CPU, then moved
    share_prefix = True  # run --share-prefix: off on a GPU, where the prefix pass costs more kernel launches than it saves


def dev(x):
    return x.to(conf.device)


# ---------------------------------------------------------------------------------------------------- safetensors
def read_safetensors(path):
    """{name: float32 numpy array}: 8-byte little-endian header length, JSON header, raw little-endian bytes."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        raw = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = raw[a:b]
        dt = info["dtype"]
        if dt == "BF16":  # bf16 is the high half of an f32: shift it into the top 16 bits
            x = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "F32":
            x = np.frombuffer(buf, dtype="<f4")
        elif dt == "F64":
            x = np.frombuffer(buf, dtype="<f8").astype(np.float32)
        elif dt == "I32":
            x = np.frombuffer(buf, dtype="<i4")
        elif dt == "I64":
            x = np.frombuffer(buf, dtype="<i8")
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dt}, not handled")
        out[name] = x.reshape(info["shape"]).copy()
    return out


def read_model_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    w = {}
    for s in shards:
        w.update(read_safetensors(os.path.join(model_dir, s)))
    return w


# ----------------------------------------------------------------------------------------- our PRNG (rng.ts port)
def mulberry32(seed):
    """@dawngrad/tensor's mulberry32, bit for bit (all arithmetic mod 2^32)."""
    a = (seed ^ (seed // 2**32)) & 0xFFFFFFFF
    M = 0xFFFFFFFF

    def imul(x, y):
        return (x * y) & M

    def rng():
        nonlocal a
        a = (a + 0x6D2B79F5) & M
        t = a
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M
        return ((t ^ (t >> 14)) & M) / 4294967296

    return rng


def shuffle_in_place(items, rng):
    for i in range(len(items) - 1, 0, -1):
        j = math.floor(rng() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def epoch_batches(lengths, epoch, batch_size, seed, bucket_window=0):
    """batching.ts epochBatches: seeded shuffle, sort by length inside windows of batches, shuffle the batches."""
    rand = mulberry32((seed * 1_000_003 + epoch) & 0xFFFFFFFF)
    idx = shuffle_in_place(list(range(len(lengths))), rand)
    win = bucket_window * batch_size
    if win > 0:
        for s in range(0, len(idx), win):
            idx[s : s + win] = sorted(idx[s : s + win], key=lambda i: lengths[i])  # stable, like Array.sort
    batches = [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]
    if win > 0:
        shuffle_in_place(batches, rand)
    return batches


def lr_factor(name, total, warm, step):
    """optim/schedule.ts lrFactor (step is 0-based)."""
    up = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    if name == "constant":
        return up
    if name == "wsd":  # warm-up, stable, then a linear decay to 0 over the last WSD_DECAY of the steps
        return min(up, (total - step) / max(1, math.floor(total * WSD_DECAY)))
    if name == "linear":
        down = max(0.0, (total - step) / max(1, total - warm))
        return min((step + 1) / warm, down) if warm > 0 else min(1.0, down)
    if step < warm:
        return up
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.5 * (1 + math.cos(math.pi * progress))


WSD_DECAY = 0.2  # schedule.ts WSD_DECAY


def warmup_steps(total, fraction):
    return 0 if fraction <= 0 else max(1, math.floor(total * fraction))


# ------------------------------------------------------------------------------------------------------- the model
class LoraLinear(nn.Module):
    """y = x W^T + scale · (x A^T) B^T; W frozen [out, in], A [r, in], B [out, r] (PEFT's lora.Linear, dropout 0)."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight  # frozen tensor, not a parameter
        self.A = None
        self.B = None
        self.scale = 0.0

    def add_lora(self, a, b, scale):
        self.A = nn.Parameter(dev(torch.as_tensor(a).reshape(-1, self.weight.shape[1]).clone()))
        self.B = nn.Parameter(dev(torch.as_tensor(b).reshape(self.weight.shape[0], -1).clone()))
        self.scale = scale

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.A is not None:
            y = y + F.linear(F.linear(x, self.A), self.B) * self.scale
        return y


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Mistral(nn.Module):
    LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # our linears() order

    def __init__(self, cfg, w):
        super().__init__()
        self.cfg = cfg
        t = lambda n: dev(torch.from_numpy(w[n]))
        self.C, self.H, self.KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or self.C // self.H
        self.eps = cfg["rms_norm_eps"]
        self.embed = t("model.embed_tokens.weight")
        self.norm = t("model.norm.weight")
        self.lm_head = t("lm_head.weight")
        self.head = LoraLinear(self.lm_head)  # lm_head as a module, so it can carry LoRA too (--lm-head)
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            layer = {
                "in_norm": t(p + "input_layernorm.weight"),
                "post_norm": t(p + "post_attention_layernorm.weight"),
            }
            for n in self.LINEARS:
                sub = "self_attn." if n in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp."
                layer[n] = LoraLinear(t(p + sub + n + ".weight"))
            self.layers.append(layer)
        rope = cfg.get("rope_parameters") or {}
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        self.inv_freq = dev(1.0 / (theta ** (torch.arange(0, self.D, 2, dtype=torch.float32) / self.D)))
        self.mods = nn.ModuleList([l[n] for l in self.layers for n in self.LINEARS])

    def linears(self):
        """(path, LoraLinear) in dawngrad's model.linears() order: layer by layer, q,k,v,o,gate,up,down."""
        return [(f"layers.{i}.{n}", l[n]) for i, l in enumerate(self.layers) for n in self.LINEARS]

    def inject_lora(self, r, alpha, seed, targets=None, lm_head=False, rslora=False):
        """lora.ts inject(): A ~ (2u − 1)/√in from mulberry32(seed) in linears() order (lm_head last), B = 0;
        the update scaled by alpha/r, or alpha/√r with rsLoRA (PEFT's use_rslora)."""
        rng = mulberry32(seed)
        for path, lin in self.linears() + ([("lm_head", self.head)] if lm_head else []):
            if targets is not None and path.split(".")[-1] not in targets:
                continue
            out_f, in_f = lin.weight.shape
            bound = math.sqrt(3) * (math.sqrt(2 / 6) / math.sqrt(in_f))
            a = np.array([(2 * rng() - 1) * bound for _ in range(r * in_f)], dtype=np.float32)
            lin.add_lora(a, np.zeros(out_f * r, dtype=np.float32), alpha / math.sqrt(r) if rslora else alpha / r)
        return [p for _, lin in self.linears() + [("lm_head", self.head)] if lin.A is not None for p in (lin.A, lin.B)]

    def rope(self, start, n):
        freqs = torch.outer(dev(torch.arange(start, start + n, dtype=torch.float32)), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()  # [n, D]

    def hidden(self, prefix, ids, attn):
        """Final-normed hidden states of the suffix rows.

        prefix: [P] ids shared by every row (P may be 0); ids, attn: [B, S] the rest of each row, right-padded.
        Returns [B, S, C]; position s of row b is absolute position P + s.
        """
        B, S = ids.shape
        P = prefix.shape[0]
        H, KV, D = self.H, self.KV, self.D
        rep = H // KV
        cos_p, sin_p = self.rope(0, P)
        cos_s, sin_s = self.rope(P, S)
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        allowed = causal[None, None] & attn.bool()[:, None, None, :]  # [B, 1, S, S]
        allowed = torch.cat([torch.ones(B, 1, S, P, dtype=torch.bool), allowed], dim=-1)  # the prefix is always visible
        mask = dev(torch.zeros(B, 1, S, P + S).masked_fill(~allowed, torch.finfo(torch.float32).min))
        mask_p = dev(torch.zeros(1, 1, P, P).masked_fill(~torch.ones(P, P, dtype=torch.bool).tril(), torch.finfo(torch.float32).min))
        xs = F.embedding(ids, self.embed)  # [B, S, C]
        xp = F.embedding(prefix[None], self.embed)  # [1, P, C]

        def qkv(layer, h, cos, sin):
            n, T = h.shape[0], h.shape[1]
            q = layer["q_proj"](h).view(n, T, H, D).transpose(1, 2)
            k = layer["k_proj"](h).view(n, T, KV, D).transpose(1, 2)
            v = layer["v_proj"](h).view(n, T, KV, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            return q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)

        def attend(q, k, v, m):
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + m, dim=-1)
            return (p @ v).transpose(1, 2).reshape(q.shape[0], q.shape[2], H * D)

        def mlp(layer, x):
            h = rms_norm(x, layer["post_norm"], self.eps)
            return x + layer["down_proj"](F.silu(layer["gate_proj"](h)) * layer["up_proj"](h))

        for layer in self.layers:
            hs = rms_norm(xs, layer["in_norm"], self.eps)
            qs, ks, vs = qkv(layer, hs, cos_s, sin_s)
            if P > 0:
                hp = rms_norm(xp, layer["in_norm"], self.eps)
                qp, kp, vp = qkv(layer, hp, cos_p, sin_p)
                ks = torch.cat([kp.expand(B, -1, -1, -1), ks], dim=2)
                vs = torch.cat([vp.expand(B, -1, -1, -1), vs], dim=2)
                xp = mlp(layer, xp + layer["o_proj"](attend(qp, kp, vp, mask_p)))
            xs = mlp(layer, xs + layer["o_proj"](attend(qs, ks, vs, mask)))
        return rms_norm(xs, self.norm, self.eps)


def shared_prefix(rows, limit):
    """Length of the common prefix of `rows`, at most `limit`."""
    n = 0
    first = rows[0]
    while n < limit and all(len(r) > n and r[n] == first[n] for r in rows):
        n += 1
    return n


def split_rows(rows, keep_after):
    """rows → (prefix ids, suffix ids [B,S], mask [B,S], P). keep_after[b]: the first position of row b that must be in
    the suffix (its logits are needed), so P ≤ min(keep_after). P = 0 when conf.share_prefix is off (same numbers)."""
    P = shared_prefix(rows, min(keep_after)) if conf.share_prefix else 0
    S = max(len(r) for r in rows) - P
    ids = torch.zeros(len(rows), S, dtype=torch.long)
    attn = torch.zeros(len(rows), S, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r) - P] = torch.tensor(r[P:])
        attn[b, : len(r) - P] = 1
    return dev(torch.tensor(rows[0][:P], dtype=torch.long)), dev(ids), attn, P


def train_loss(model, prompts, answers, label_smoothing=0.0):
    """Mean CE over the answer tokens of rows prompt ‖ answer (trainBatch + forwardBackward's loss); with label
    smoothing ε each row's target is (1 − ε)·one-hot + ε/V (PyTorch's and loss.ts's definition)."""
    rows = [list(p) + list(a) for p, a in zip(prompts, answers)]
    prefix, ids, attn, P = split_rows(rows, [len(p) - 1 for p in prompts])
    h = model.hidden(prefix, ids, attn)  # [B, S, C]
    S = ids.shape[1]
    at, targets = [], []
    for b, (p, a) in enumerate(zip(prompts, answers)):
        for j, t in enumerate(a):
            at.append(b * S + len(p) - 1 + j - P)
            targets.append(t)
    logits = model.head(h.reshape(-1, h.shape[-1])[dev(torch.tensor(at))])
    targets = dev(torch.tensor(targets))
    if os.environ.get("SPLIT_LOSS"):  # diagnostic: CE of the label word and of the end token separately
        ce = F.cross_entropy(logits.detach(), targets, reduction="none")
        print(f"    label CE {ce[0::2].mean():.3f}  end CE {ce[1::2].mean():.3f}", file=sys.stderr)
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


# --------------------------------------------------------------------------------------------------------- metrics
