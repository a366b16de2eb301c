#!/usr/bin/env python3
"""A PyTorch (CPU) proxy of `dawngrad train`, to choose the `quick` recipe on the VALIDATION split fast.

The model, LoRA, data order, schedule and loss mirror our trainer step for step (proxy.py says how).
Evaluation as evaluate.ts: first-token scoring (argmax over the three label words' first tokens) and greedy
generation (≤ 4 tokens, stop at <|im_end|>, first word parsed; anything else is invalid and counts as wrong);
macro-F1 over the three classes.

  /usr/bin/python3 scripts/recipe/search.py check                      # vs the HF fixture (and dawngrad's loss)
  /usr/bin/python3 scripts/recipe/search.py table                      # the results file as a markdown table
  /usr/bin/python3 scripts/recipe/search.py run --lr 3e-3 --examples 6000 [--schedule linear|cosine|constant|wsd
        --warmup 0.1 --batch 16 --r 8 --alpha 16 --rslora --seed 0 --epochs 1 --label-smoothing 0 --balance none|down|up
        --eval subset|full --generate --tag NAME --out /tmp/recipe-results.jsonl --weight-decay 0.01 --clip 1
        --device cpu|cuda --share-prefix auto|on|off]        (grid.py runs many of these on a GPU)
Every evaluation also reports first-token scoring calibrated two ways (dawngrad's --calibrate): dividing out the label
prior the model shows on content-free prompts ("", "N/A", "[MASK]"), or on the evaluated validation set itself.
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
from torch import nn
from proxy import (  # noqa: E402  (after the BLAS thread settings above)
    conf, MODEL_DIR, FIXTURE_DIR, LABELS, dev, read_safetensors, read_model_weights, epoch_batches, lr_factor,
    warmup_steps, Mistral, split_rows, train_loss,
)


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
    conf.device = torch.device(a.device)
    conf.share_prefix = a.share_prefix == "on" or (a.share_prefix == "auto" and conf.device.type == "cpu")
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
        conf.share_prefix = False  # the GPU path: no shared-prefix pass, the same loss
        ok &= cmp("base loss without the prefix pass", train_loss(m, p16, a16).item(), ours["baseLoss"], 1e-5)
        conf.share_prefix = True
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
