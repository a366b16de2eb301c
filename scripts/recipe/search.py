#!/usr/bin/env python3
"""A PyTorch (CPU) proxy of `dawngrad train`, to choose the `quick` recipe on the VALIDATION split fast.

It computes what our trainer computes, step for step:
  rows = prompt ‖ answer (ids from export_tokens.ts, i.e. our own tokenizer and PromptFormat), right-padded with 0;
  Mistral forward (RMSNorm, RoPE, grouped-query attention, SwiGLU) with LoRA on q,k,v,o,gate,up,down
  (A ~ U(±1/√in) from our mulberry32 stream in our layer order, B = 0, scale alpha/r, dropout 0);
  loss = mean cross-entropy over the answer tokens (logits at t predict token t+1);
  clip_grad_norm_(1.0) + AdamW(0.9, 0.999, eps 1e-8, wd 0.01); lr schedule = optim/schedule.ts;
  data order = batching.ts epochBatches (seeded shuffle, length bucketing), with our mulberry32.
Evaluation as evaluate.ts: first-token scoring (argmax over the three label words' first tokens) and greedy
generation (≤ 4 tokens, stop at <|im_end|>, first word parsed; anything else is invalid and counts as wrong);
macro-F1 over the three classes.

One speed trick that changes no number beyond float rounding: every prompt starts with the same ~25 tokens (<s> +
system turn + user header), so each batch runs that shared prefix once (batch 1) and attends to its keys/values from
every row (autograd sums the rows' gradients through the broadcast).

  /usr/bin/python3 scripts/recipe/search.py check                      # vs the HF fixture (and dawngrad's loss)
  /usr/bin/python3 scripts/recipe/search.py table                      # the results file as a markdown table
  /usr/bin/python3 scripts/recipe/search.py run --lr 3e-3 --examples 6000 [--schedule linear|cosine|constant|wsd
        --warmup 0.1 --batch 16 --r 8 --alpha 16 --rslora --seed 0 --epochs 1 --label-smoothing 0 --balance none|down|up
        --eval subset|full --generate --tag NAME --out /tmp/recipe-results.jsonl --weight-decay 0.01 --clip 1
        --device cpu|cuda --share-prefix auto|on|off]        (grid.py runs many of these on a GPU)
Every evaluation also reports first-token scoring calibrated two ways (dawngrad's --calibrate): dividing out the label
prior the model shows on content-free prompts ("", "N/A", "[MASK]"), or on the evaluated validation set itself.

Weights are read from the bf16 safetensors shards with numpy (8-byte header length, JSON header, raw bytes).
"""
import argparse
import gzip
import json
import lzma
import math
import os
import sys
import time

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
DEV = torch.device("cpu")  # `run --device cuda` moves the search to a GPU (grid.py); tensors are built on the CPU, then moved


def dev(x):
    return x.to(DEV)


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


SHARE_PREFIX = True  # run --share-prefix: off on a GPU, where the prefix pass costs more kernel launches than it saves


def split_rows(rows, keep_after):
    """rows → (prefix ids, suffix ids [B,S], mask [B,S], P). keep_after[b]: the first position of row b that must be in
    the suffix (its logits are needed), so P ≤ min(keep_after). P = 0 when SHARE_PREFIX is off (same numbers)."""
    P = shared_prefix(rows, min(keep_after)) if SHARE_PREFIX else 0
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
def macro_f1(labels, preds):
    """Mean F1 over the three classes; a prediction of -1 (invalid) is wrong for every class (metrics.ts)."""
    f1s = []
    for c in range(3):
        tp = sum(1 for y, p in zip(labels, preds) if y == c and p == c)
        fp = sum(1 for y, p in zip(labels, preds) if y != c and p == c)
        fn = sum(1 for y, p in zip(labels, preds) if y == c and p != c)
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / 3


def make_decoder(pieces):
    """The tokenizer's decoder: ▁ → space, <0xNN> byte fallback, fuse, strip one leading space."""

    def decode(ids):
        out = bytearray()
        for i in ids:
            p = pieces[i]
            if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
                out.append(int(p[3:5], 16))
            else:
                out.extend(p.replace("\u2581", " ").encode("utf-8"))
        s = out.decode("utf-8", errors="replace")
        return s[1:] if s.startswith(" ") else s

    return decode


def parse_answer(decode, ids, end_token):
    """prompts.ts parseAnswer: the first word, lower-cased, stripped of . , ! — else -1."""
    text = decode([t for t in ids if t != 0 and t != end_token])
    words = text.strip().split()
    word = (words[0] if words else "").lower().strip(".,!")
    return LABELS.index(word) if word in LABELS else -1


def calibrate(scores, prior):
    """evaluate.ts calibratedPredictions: argmax_k of log softmax(s)_k − log prior_k, i.e. of s_k − log prior_k
    (contextual calibration, Zhao et al. 2021: divide out the label prior). scores: [n, 3] logits."""
    return [int(k) for k in np.argmax(np.asarray(scores, dtype=np.float64) - np.log(np.asarray(prior, dtype=np.float64)), axis=1)]


def label_prior(scores):
    """evaluate.ts labelPrior: the mean over rows of softmax over the three label logits (float64)."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).mean(axis=0).tolist()


@torch.no_grad()
def first_token_logits(model, prompts, tok):
    """The three label words' first-token logits after each prompt, [n, 3] (one batch)."""
    rows = [list(p) for p in prompts]
    prefix, ids, attn, P = split_rows(rows, [len(r) - 1 for r in rows])
    h = model.hidden(prefix, ids, attn)
    last = h[dev(torch.arange(len(rows))), dev(torch.tensor([len(r) - 1 - P for r in rows]))]
    return model.head(last)[:, dev(torch.tensor(tok["firstTokens"]))].float().cpu().numpy()


@torch.no_grad()
def evaluate(model, data, tok, generate=False, batch_size=64):
    """First-token scoring always, raw and calibrated by the content-free and by this set's own label prior; greedy
    generation (≤ 4 tokens) when asked. Rows sorted by length into batches."""
    prompts, labels = data["prompts"], data["labels"]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    first = dev(torch.tensor(tok["firstTokens"]))
    end = tok["endToken"]
    ft = [-1] * len(prompts)
    scores = np.zeros((len(prompts), 3), dtype=np.float32)
    gen = [-1] * len(prompts)
    decode = make_decoder(tok["pieces"])
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        seqs = [list(prompts[i]) for i in idx]
        outs = [[] for _ in idx]
        live = list(range(len(idx)))
        for step in range(4 if generate else 1):
            rows = [seqs[k] for k in live]
            prefix, ids, attn, P = split_rows(rows, [len(r) - 1 for r in rows])
            h = model.hidden(prefix, ids, attn)
            last = h[dev(torch.arange(len(rows))), dev(torch.tensor([len(r) - 1 - P for r in rows]))]  # [n, C]
            full = model.head(last)  # [n, V]
            if step == 0:
                sc = full[:, first]  # [n, 3]
                scores[idx] = sc.float().cpu().numpy()
                for k, i in enumerate(idx):
                    ft[i] = int(sc[k].argmax())
            if not generate:
                break
            nxt = full.argmax(-1).tolist()  # greedy over the whole vocabulary
            still = []
            for k, t in zip(live, nxt):
                outs[k].append(t)
                seqs[k] = seqs[k] + [t]
                if t != end:
                    still.append(k)
            live = still
            if not live:
                break
        if generate:
            for k, i in enumerate(idx):
                gen[i] = parse_answer(decode, outs[k], end)
    res = {"n": len(prompts), "ft_f1": macro_f1(labels, ft), "ft_pred_counts": [ft.count(c) for c in range(3)]}
    for name, prior in (("cf", label_prior(first_token_logits(model, tok["contentFree"], tok))), ("val", label_prior(scores))):
        pred = calibrate(scores, prior)
        res.update({f"ft_f1_{name}": macro_f1(labels, pred), f"ft_pred_counts_{name}": [pred.count(c) for c in range(3)], f"prior_{name}": prior})
    if generate:
        res.update(gen_f1=macro_f1(labels, gen), invalid=gen.count(-1) / len(gen), gen_pred_counts=[gen.count(c) for c in range(-1, 3)])
    return res


# ----------------------------------------------------------------------------------------------------------- train
_CACHE = {}  # grid.py runs many recipes in one process: read the weights and the token file once


def load_model():
    if "weights" not in _CACHE:
        with open(os.path.join(MODEL_DIR, "config.json")) as f:
            _CACHE["weights"] = (json.load(f), read_model_weights(MODEL_DIR))
    return Mistral(*_CACHE["weights"])


def load_tokens(path):
    if _CACHE.get("tokens_path") != path:
        opener = gzip.open if path.endswith(".gz") else lzma.open if path.endswith(".xz") else open
        with opener(path, "rt") as f:
            _CACHE["tokens"], _CACHE["tokens_path"] = json.load(f), path
    return _CACHE["tokens"]


def balance_rows(labels, mode, n, file_counts):
    """batching.ts balanceRows: which train rows an epoch uses, as indices into `labels` (the file's rows in order).
    none: the first n. down: the first k rows of each class, k = min(n // 3, the rarest class's rows in the whole file),
    interleaved (class 0, 1, 2, 0, 1, 2, …). up: the first n rows, each class repeated cyclically up to the largest
    class's count among them, interleaved the same way."""
    if mode == "none":
        return list(range(n))
    if mode == "up":
        by = [[i for i in range(n) if labels[i] == c] for c in range(3)]
        m = max(len(b) for b in by)
        return [by[c][j % len(by[c])] for j in range(m) for c in range(3) if by[c]]
    k = min(n // 3, min(file_counts))
    by = [[i for i, y in enumerate(labels) if y == c][:k] for c in range(3)]
    if any(len(b) < k for b in by):
        sys.exit(f"--balance down needs the first {k} rows of each class: export more train rows (export_tokens.ts --train)")
    return [by[c][j] for j in range(k) for c in range(3)]


def run(a):
    global DEV, SHARE_PREFIX
    DEV = torch.device(a.device)
    SHARE_PREFIX = a.share_prefix == "on" or (a.share_prefix == "auto" and DEV.type == "cpu")
    torch.set_num_threads(a.threads)
    tok = load_tokens(a.tokens)
    model = load_model()
    targets = a.targets.split(",") if a.targets else None
    alpha = a.alpha or 2 * a.r
    params = model.inject_lora(a.r, alpha, a.seed, targets, a.lm_head, a.rslora)
    # LoRA+ (Hayou et al. 2024): B learns lr_ratio × faster than A; group 0 = every A, group 1 = every B
    groups = [{"params": params[0::2], "mult": 1.0}, {"params": params[1::2], "mult": a.lora_plus}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)
    pool = len(tok["train"]["prompts"])
    total_rows = tok.get("trainTotal", pool)
    n = a.examples or total_rows  # 0: the whole train split (no --max-train)
    if n > pool:
        sys.exit(f"--examples {n} > the {pool} exported train rows (export_tokens.ts --train)")
    pick = balance_rows(tok["train"]["labels"], a.balance, n, tok.get("trainClassCounts") or [tok["train"]["labels"].count(c) for c in range(3)])
    prompts, labels = [tok["train"]["prompts"][i] for i in pick], [tok["train"]["labels"][i] for i in pick]
    answers = tok["answers"]
    lengths = [len(p) + len(answers[l]) for p, l in zip(prompts, labels)]
    per_epoch = math.ceil(len(pick) / a.batch)
    total = per_epoch * a.epochs
    warm = warmup_steps(total, a.warmup)
    data = tok["validation"] if a.eval == "full" else tok["validationSubset"]
    t0 = time.time()
    losses, evals, epochs = [], [], []
    step = 0
    for epoch in range(a.epochs):
        for b in epoch_batches(lengths, epoch, a.batch, a.seed, a.bucket):
            for g in opt.param_groups:
                g["lr"] = a.lr * g["mult"] * lr_factor(a.schedule, total, warm, step)
            loss = train_loss(model, [prompts[i] for i in b], [answers[labels[i]] for i in b], a.label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, a.clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if step % 50 == 0 or step == total:
                print(f"step {step}/{total}: loss(50) {np.mean(losses[-50:]):.4f}  {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
            if a.eval_every and step % a.eval_every == 0 and step % per_epoch != 0:
                e = evaluate(model, data, tok)
                evals.append({"step": step, **e})
                print(f"  eval @ {step}: ft F1 {e['ft_f1']:.4f} preds {e['ft_pred_counts']}", file=sys.stderr, flush=True)
        # the trainer validates at each epoch end and keeps the best adapter (by the calibrated F1 when it calibrates)
        last = epoch + 1 == a.epochs
        e = evaluate(model, data, tok, generate=a.generate and last)
        epochs.append({"epoch": epoch + 1, "step": step, **e})
        print(f"  epoch {epoch + 1}: ft F1 {e['ft_f1']:.4f} (content-free {e['ft_f1_cf']:.4f}, validation prior {e['ft_f1_val']:.4f})", file=sys.stderr, flush=True)
    train_s = time.time() - t0
    # per scoring, the best epoch's validation F1: what dawngrad's best-adapter choice would keep
    best = {k: max(x[k] for x in epochs) for k in ("ft_f1", "ft_f1_cf", "ft_f1_val")}
    rec = {
        "tag": a.tag, "lr": a.lr, "schedule": a.schedule, "warmup": a.warmup, "examples": n, "rows": len(pick), "batch": a.batch, "r": a.r,
        "alpha": alpha, "rslora": a.rslora, "seed": a.seed, "epochs": a.epochs, "label_smoothing": a.label_smoothing, "balance": a.balance,
        "lora_plus": a.lora_plus, "lm_head": a.lm_head, "targets": a.targets, "bucket": a.bucket, "weight_decay": a.weight_decay, "clip": a.clip,
        "steps": total, "eval": a.eval, **epochs[-1], "best": best,
        "final_loss50": float(np.mean(losses[-50:])), "train_s": round(train_s, 1), "evals": evals, "epoch_evals": epochs,
    }
    print(json.dumps(rec))
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


# ----------------------------------------------------------------------------------------------------------- check
def check(a):
    """The proxy against Hugging Face's float64 reference (hf-tiny): base loss, LoRA loss, 3 clipped AdamW steps; then,
    with a token file, against dawngrad itself (base_loss.ts's numbers, the parity probes of export_tokens.ts)."""
    global SHARE_PREFIX
    torch.set_num_threads(a.threads)
    with open(os.path.join(FIXTURE_DIR, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(FIXTURE_DIR, "reference.json")) as f:
        ref = json.load(f)
    model = Mistral(cfg, read_safetensors(os.path.join(FIXTURE_DIR, "model.safetensors")))
    r = read_safetensors(os.path.join(FIXTURE_DIR, "reference.safetensors"))
    ids, attn, lab = r["input_ids"], r["attention_mask"], r["labels"]
    # rows → (prompt, answer): the answer is the labelled span; labels[t] is predicted at t − 1
    prompts, answers = [], []
    for b in range(ids.shape[0]):
        pos = [t for t in range(ids.shape[1]) if lab[b, t] != -100]
        assert pos == list(range(pos[0], pos[-1] + 1)) and attn[b, : pos[-1] + 1].all()
        prompts.append(ids[b, : pos[0]].tolist())
        answers.append(ids[b, pos[0] : pos[-1] + 1].tolist())
    worst = 0.0

    def cmp(name, ours, theirs, tol=1e-4):
        nonlocal worst
        rel = abs(ours - theirs) / abs(theirs)
        worst = max(worst, rel)
        print(f"{name:28s} ours {ours:.7f}  reference {theirs:.7f}  rel {rel:.2e}  {'ok' if rel < tol else 'FAIL'}")
        return rel < tol

    ok = cmp("base loss", train_loss(model, prompts, answers).item(), ref["base.loss"])
    # the fixture's adapter (k_proj, v_proj, r 4, alpha 8, B ≠ 0)
    with open(os.path.join(FIXTURE_DIR, "adapter/adapter_config.json")) as f:
        acfg = json.load(f)
    ad = read_safetensors(os.path.join(FIXTURE_DIR, "adapter/adapter_model.safetensors"))
    params, names = [], []
    for i, layer in enumerate(model.layers):
        for n in acfg["target_modules"]:
            key = f"base_model.model.model.layers.{i}.self_attn.{n}"
            layer[n].add_lora(ad[key + ".lora_A.weight"], ad[key + ".lora_B.weight"], acfg["lora_alpha"] / acfg["r"])
            params += [layer[n].A, layer[n].B]
    ok &= cmp("lora loss", train_loss(model, prompts, answers).item(), ref["lora.loss"])
    adam = ref["adamw"]
    opt = torch.optim.AdamW(params, lr=adam["lr"], betas=tuple(adam["betas"]), eps=adam["eps"], weight_decay=adam["weight_decay"])
    for k in range(3):
        loss = train_loss(model, prompts, answers)
        ok &= cmp(f"lora step{k} loss", loss.item(), ref[f"lora.step{k}.loss"])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, adam["clip_max_norm"])
        ok &= cmp(f"lora step{k} grad norm", norm.item(), ref[f"lora.step{k}.grad_norm"])
        opt.step()
        opt.zero_grad(set_to_none=True)
    last = train_loss(model, prompts, answers).item()
    print(f"loss after 3 steps: {last:.7f}")
    # the weights after the steps
    for i, layer in enumerate(model.layers):
        for n in acfg["target_modules"]:
            for ab, p in (("A", layer[n].A), ("B", layer[n].B)):
                key = f"lora.after_step2.base_model.model.model.layers.{i}.self_attn.{n}.lora_{ab}.default.weight"
                if key in r:
                    d = (p.detach() - torch.from_numpy(r[key])).abs().max().item()
                    if d > 1e-5:
                        ok = False
                        print(f"{key}: max |diff| {d:.2e} FAIL")
    print(f"worst relative difference {worst:.2e}: {'PASS' if ok else 'FAIL'}")
    # the real model: the base loss of the first 16 train rows, for scripts/recipe/base_loss.ts to compare with
    if os.path.exists(a.tokens):
        tok = load_tokens(a.tokens)
        m = load_model()
        p16, l16 = tok["train"]["prompts"][:16], tok["train"]["labels"][:16]
        a16 = [tok["answers"][l] for l in l16]
        ours = {"baseLoss": train_loss(m, p16, a16).item(), "smoothedLoss": train_loss(m, p16, a16, 0.1).item(),
                "contentFreeLogits": first_token_logits(m, tok["contentFree"], tok).tolist()}
        print(f"tweet-mistral-tiny base loss, first 16 train rows: {ours['baseLoss']:.7f} (label smoothing 0.1: {ours['smoothedLoss']:.7f})")
        SHARE_PREFIX = False  # the GPU path: no shared-prefix pass, the same loss
        ok &= cmp("base loss without the prefix pass", train_loss(m, p16, a16).item(), ours["baseLoss"], 1e-5)
        SHARE_PREFIX = True
        if os.path.exists(a.dawngrad):  # scripts/recipe/base_loss.ts: dawngrad's own numbers on lavapipe
            with open(a.dawngrad) as f:
                dg = json.load(f)
            ok &= cmp("base loss vs dawngrad", ours["baseLoss"], dg["baseLoss"])
            ok &= cmp("smoothed loss vs dawngrad", ours["smoothedLoss"], dg["smoothedLoss"])
            d = np.abs(np.ravel(ours["contentFreeLogits"]) - np.ravel(dg["contentFreeLogits"])).max()
            print(f"content-free first-token logits vs dawngrad: max |diff| {d:.1e}  {'ok' if d < 1e-3 else 'FAIL'}")
            ok &= d < 1e-3
        else:
            print(f"(no {a.dawngrad}: run scripts/recipe/base_loss.ts to compare with dawngrad's numbers)")
        if "parity" in tok:
            ok &= check_ports(tok["parity"])
        # our data order, ported: the TS batches of the probe must come out the same
        pr = tok["orderProbe"]
        lens = [len(p) + len(tok["answers"][l]) for p, l in zip(tok["train"]["prompts"][: pr["n"]], tok["train"]["labels"][: pr["n"]])]
        same = epoch_batches(lens, 0, pr["batchSize"], pr["seed"], pr["bucketWindow"]) == pr["batches"]
        print(f"data order matches batching.ts epochBatches: {same}")
        ok &= same
    sys.exit(0 if ok else 1)


def check_ports(par):
    """search.py's ports against dawngrad's functions on the probes export_tokens.ts wrote: balance_rows, lr_factor
    (every schedule), label_prior + calibrate. Exact for the integer ones, 1e-12 for the floating ones."""
    ok = True
    b = par["balance"]
    counts = [b["labels"].count(c) for c in range(3)]
    for mode, n in (("down", 450), ("up", 300)):
        same = balance_rows(b["labels"], mode, n, counts) == b[mode]
        print(f"balance_rows {mode} matches batching.ts balanceRows: {same}")
        ok &= same
    worst = 0.0
    for sch in par["schedules"]:
        warm = warmup_steps(sch["total"], sch["warmup"])
        worst = max([worst] + [abs(lr_factor(sch["name"], sch["total"], warm, k) - f) for k, f in enumerate(sch["factors"])])
    print(f"lr_factor matches schedule.ts lrFactor for {sorted({s['name'] for s in par['schedules']})}: max |diff| {worst:.1e}")
    ok &= worst < 1e-12
    c = par["calibration"]
    scores = np.asarray(c["scores"]).reshape(-1, 3)
    dp = max(abs(x - y) for x, y in zip(label_prior(scores), c["prior"]))
    same = calibrate(scores, c["prior"]) == c["predictions"]
    print(f"label_prior / calibrate match evaluate.ts labelPrior / calibratedPredictions: max |diff| {dp:.1e}, predictions {same}")
    return ok and same and dp < 1e-12


def table(a):
    """The results file as a markdown table, in the order the runs finished."""
    cols = "| tag | steps | examples | batch | r | lr | schedule | warm-up | seed | eval on | first-token F1 | generation F1 | invalid | first-token predictions (neg/neu/pos) | last-50 loss | train s |"
    print(cols)
    print("|" + " --- |" * (cols.count("|") - 1))
    with open(a.out) as f:
        for line in f:
            d = json.loads(line)
            gen = f"{d['gen_f1']:.4f}" if "gen_f1" in d else "—"
            inv = f"{100 * d['invalid']:.1f}%" if "invalid" in d else "—"
            ev = "val 2,000" if d["eval"] == "full" else "val subset 1,000"
            print(f"| {d['tag']} | {d['steps']} | {d['examples']} | {d['batch']} | {d['r']} | {d['lr']:g} | {d['schedule']} | {d['warmup']:g} | "
                  f"{d['seed']} | {ev} | {d['ft_f1']:.4f} | {gen} | {inv} | {'/'.join(map(str, d['ft_pred_counts']))} | {d['final_loss50']:.3f} | {d['train_s']:.0f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["check", "run", "table"])
    ap.add_argument("--tokens", default="/tmp/recipe-tokens.json")
    ap.add_argument("--dawngrad", default="/tmp/recipe-dawngrad.json", help="check: dawngrad's numbers (scripts/recipe/base_loss.ts)")
    ap.add_argument("--out", default="/tmp/recipe-results.jsonl")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", default="linear", choices=["constant", "linear", "cosine", "wsd"])
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--examples", type=int, default=6000, help="the first N train rows (--max-train N); 0: the whole split")
    ap.add_argument("--epochs", type=int, default=1, help="validation at each epoch end; the record keeps every epoch and the best")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=None, help="default 2r (scale 2)")
    ap.add_argument("--rslora", action="store_true", help="scale the update by alpha/√r (rsLoRA) instead of alpha/r")
    ap.add_argument("--label-smoothing", type=float, default=0.0, help="ε of the cross-entropy over the vocabulary (PyTorch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bucket", type=int, default=16, help="length-bucketing window in batches (the quick recipe: 16)")
    ap.add_argument("--eval", default="subset", choices=["subset", "full"])
    ap.add_argument("--generate", action="store_true")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--lora-plus", type=float, default=1.0, help="lr of every lora_B = this × lr (LoRA+; 1 = plain)")
    ap.add_argument("--lm-head", action="store_true", help="LoRA on lm_head too")
    ap.add_argument("--balance", default="none", choices=["none", "down", "up"], help="class-balanced rows (balance_rows)")
    ap.add_argument("--targets", default="", help="comma-separated module names (default all linear)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--device", default="cpu", help="cuda: run on a GPU (the device tool; see grid.py)")
    ap.add_argument("--share-prefix", default="auto", choices=["auto", "on", "off"], help="run the shared system turn once per batch (auto: on a CPU only)")
    a = ap.parse_args(argv)
    {"check": check, "run": run, "table": table}[a.what](a)


if __name__ == "__main__":
    main()
