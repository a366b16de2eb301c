#!/usr/bin/env python3
"""The PyTorch-on-CUDA peer of the GPU benches (bench/src/gpu/): the same matmuls and the same LoRA training step as
dawngrad, on the same GPU, in the same run.

  python3 bench/peers/torch_cuda.py matmul --cases CASES.json [--budget-ms 100] [--dtypes f32,f16,bf16]
  python3 bench/peers/torch_cuda.py step --config CONFIG.json --batch 16 --seq 96 [--answer 2] [--warmup 2] [--steps 5]
                                      [--modes f32,bf16] [--impl auto|hf|plain]

matmul: op(A)·op(B) for each {"name", "M", "N", "K", "transA", "transB"} in CASES.json (a transposed operand is a
  transposed view, as cuBLAS takes it); f32 with TF32 off (what dawngrad computes), and f16 / bf16 inputs (cuBLAS's
  tensor-core paths: the half-precision peer of issue 15). Samples of `reps` back-to-back calls and one synchronize,
  `reps` sized so that a sample lasts ≥ 2 ms; the median per call.
step: the model of CONFIG.json with random weights; the forward to the loss rows (the last `answer` positions before
  the end of each sequence, lm_head on those rows only), then all-linear LoRA r 8 / alpha 16 and the training step:
  forward, cross-entropy, backward, clip_grad_norm_(1.0), AdamW(lr 1e-4, weight decay 0.01) — what `dawngrad
  bench-model --random --backward` times. Modes: f32 with TF32 off, and bf16 autocast (f32 master weights, the loss in
  f32) as PyTorch users train. The model is transformers' MistralForCausalLM with PEFT's LoRA when both import
  (--impl hf), else the plain-PyTorch model of torch_step.py beside this file (--impl plain).

The last stdout line is one JSON object; progress goes to stderr. Without CUDA (--device cuda, the default) it prints
{"skipped": "<why>"} and exits 0: the bench prints the reason. --device cpu runs the same code on the CPU (for testing
the peer on a machine without a GPU; its figures mean nothing for the GPU tables).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the bench prints the reason and goes on without the peer
    print(json.dumps({"skipped": f"python3 cannot import torch ({e})"}))
    sys.exit(0)

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def strict_f32():
    """f32 means f32: no TF32 in matmuls or convolutions (dawngrad computes every product in f32). PyTorch ≥ 2.9 has
    fp32_precision settings and refuses a mix of them with the older allow_tf32 flags: one API or the other."""
    m = torch.backends.cuda.matmul
    try:  # older torch answers an unknown attribute here with AssertionError, not AttributeError
        new_api = isinstance(m.fp32_precision, str)
    except (AttributeError, AssertionError):
        new_api = False
    if new_api:
        m.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        return f"torch.backends.cuda.matmul.fp32_precision = {m.fp32_precision!r}"
    m.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return f"torch.backends.cuda.matmul.allow_tf32 = {m.allow_tf32}"


def device_facts(device):
    facts = {"torch": torch.__version__, "device": device.type}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        facts.update(gpu=p.name, cuda=torch.version.cuda, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1))
    return facts


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device, budget_s, min_samples=3, target_s=0.002):
    """Median seconds per call: samples of `reps` calls and one synchronize, reps sized so that a sample is ≥ target_s."""
    fn()
    sync(device)  # compiles, cuBLAS handles, the caching allocator's first blocks
    t0 = time.perf_counter()
    fn()
    sync(device)
    one = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, min(256, math.ceil(target_s / one)))
    samples = []
    end = time.perf_counter() + budget_s
    while len(samples) < min_samples or time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync(device)
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples), reps, len(samples)


def run_matmul(a, device):
    with open(a.cases) as f:
        cases = json.load(f)
    dtypes = [d for d in a.dtypes.split(",") if d]
    gen = torch.Generator(device="cpu").manual_seed(0)
    results = []
    for c in cases:
        M, N, K = c["M"], c["N"], c["K"]
        row = {"name": c["name"]}
        for d in dtypes:
            try:
                A = torch.rand(*((K, M) if c.get("transA") else (M, K)), generator=gen).to(device=device, dtype=DTYPES[d])
                B = torch.rand(*((N, K) if c.get("transB") else (K, N)), generator=gen).to(device=device, dtype=DTYPES[d])
                opA = A.t() if c.get("transA") else A
                opB = B.t() if c.get("transB") else B
                sec, reps, n = time_calls(lambda: torch.matmul(opA, opB), device, a.budget_ms / 1000)
                row[d] = {"ms": sec * 1000, "tflops": 2 * M * N * K / sec / 1e12, "reps": reps, "samples": n}
                del A, B, opA, opB
            except RuntimeError as e:  # e.g. no f16 matmul on this CPU build
                row[d] = {"skipped": str(e).split("\n")[0]}
        log(f"{c['name']}: " + ", ".join(f"{d} {row[d]['ms']:.3f} ms" if "ms" in row[d] else f"{d} skipped" for d in dtypes))
        results.append(row)
    return {"peer": "torch_cuda.py matmul", **device_facts(device), "tf32": False, "results": results}


# ---- the training step ----


def build_hf(cfg, device):
    from transformers import MistralConfig, LlamaConfig, MistralForCausalLM, LlamaForCausalLM  # noqa: F401

    arch = (cfg.get("architectures") or ["MistralForCausalLM"])[0]
    Config, Model = (LlamaConfig, LlamaForCausalLM) if arch.startswith("Llama") else (MistralConfig, MistralForCausalLM)
    skip = ("architectures", "transformers_version", "torch_dtype", "dtype", "model_type")
    hf_cfg = Config(**{k: v for k, v in cfg.items() if k not in skip})
    try:
        with torch.device(device):  # initialise on the GPU: 300M parameters on the CPU take seconds
            model = Model(hf_cfg)
    except (TypeError, AttributeError):  # torch < 2.0 has no device context
        model = Model(hf_cfg).to(device)
    model.float().train()
    for p in model.parameters():
        p.requires_grad_(False)

    def rows(ids, attn, at):
        h = model.model(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state  # [B, T, C], final norm applied
        return model.lm_head(h.reshape(-1, h.shape[-1])[at])  # [N, V]

    def add_lora():
        from peft import LoraConfig, get_peft_model

        get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
        return [p for p in model.parameters() if p.requires_grad]

    attention = getattr(model.config, "_attn_implementation", None) or "default"
    impl = f"transformers {__import__('transformers').__version__} {Model.__name__} ({attention} attention) + PEFT {__import__('peft').__version__}"
    return rows, add_lora, impl


def build_plain(cfg, device):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_step  # the CPU step peer's plain-PyTorch model (LoRA on every linear of the blocks)

    model = torch_step.Model(dict(cfg)).to(device)
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    for p in lora:
        p.requires_grad_(False)  # the forward is timed without LoRA's gradients, as dawngrad times it

    def add_lora():
        for p in lora:
            p.requires_grad_(True)
        return lora

    def rows(ids, attn, at):
        return model(ids, attn, at)

    return rows, add_lora, "plain PyTorch (bench/peers/torch_step.py's model, LoRA r 8 on every block linear)"


def run_step(a, device):
    """--impl auto: transformers + PEFT when they import, and the plain model if they fail (the reason is kept)."""
    with open(a.config) as f:
        cfg = json.load(f)
    if a.impl != "auto":
        return step_with(a.impl, cfg, a, device)
    try:
        import transformers  # noqa: F401
        import peft  # noqa: F401
    except ImportError as e:
        log(f"transformers/peft not importable ({e}): the plain-PyTorch model instead")
        return step_with("plain", cfg, a, device)
    try:
        return step_with("hf", cfg, a, device)
    except Exception as e:  # a version of transformers/PEFT this script does not know: still measure something
        log(f"the transformers + PEFT step failed ({type(e).__name__}: {e}); the plain-PyTorch model instead")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {**step_with("plain", cfg, a, device), "hf_error": f"{type(e).__name__}: {e}"}


def step_with(impl, cfg, a, device):
    torch.manual_seed(0)
    rows, add_lora, described = (build_hf if impl == "hf" else build_plain)(dict(cfg), device)
    log(f"model: {described}")
    B, T, R, V = a.batch, a.seq, a.answer, cfg["vocab_size"]
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(3, V, (B, T), generator=g).to(device)
    attn = torch.ones(B, T, dtype=torch.long, device=device)
    # the loss rows: the `answer` positions before the last of each sequence, predicting the next id
    at = torch.tensor([b * T + j for b in range(B) for j in range(T - R - 1, T - 1)], device=device)
    targets = ids.reshape(-1)[at + 1]
    modes = [m for m in a.modes.split(",") if m]
    autocast = lambda m: torch.autocast(device.type, dtype=torch.bfloat16, enabled=(m == "bf16"))  # noqa: E731

    def timed(fn):
        times = []
        for i in range(a.warmup + a.steps):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if i >= a.warmup:
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times), times

    def peak_reset():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def peak():
        return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None

    out = {"peer": "torch_cuda.py step", **device_facts(device), "tf32": False, "impl": described, "B": B, "T": T, "answer": R, "modes": {}}
    for m in modes:
        def fwd():
            with torch.no_grad(), autocast(m):
                rows(ids, attn, at)

        peak_reset()
        ms, all_ms = timed(fwd)
        out["modes"][m] = {"forward_ms": ms, "forward_all_ms": all_ms, "forward_peak_bytes": peak()}
        log(f"forward {m}: {ms:.2f} ms median of {a.steps}")
    params = add_lora()
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    log(f"LoRA: {sum(p.numel() for p in params):,} trainable values in {len(params)} tensors")
    for m in modes:
        def step():
            with autocast(m):
                logits = rows(ids, attn, at)
            loss = F.cross_entropy(logits.float(), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        peak_reset()
        ms, all_ms = timed(step)
        out["modes"][m].update(step_ms=ms, step_all_ms=all_ms, step_peak_bytes=peak())
        log(f"train step {m}: {ms:.2f} ms median of {a.steps}")
    out["trainable"] = sum(p.numel() for p in params)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["matmul", "step"])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (testing the peer without a GPU)")
    ap.add_argument("--cases", help="matmul: a JSON list of {name, M, N, K, transA, transB}")
    ap.add_argument("--budget-ms", type=float, default=100, help="matmul: time per case and dtype")
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    ap.add_argument("--config", help="step: a Hugging Face config.json (Mistral/Llama)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=96)
    ap.add_argument("--answer", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--modes", default="f32,bf16", help="step: f32 (TF32 off) and/or bf16 (autocast)")
    ap.add_argument("--impl", choices=["auto", "hf", "plain"], default="auto")
    a = ap.parse_args()
    if a.what == "matmul" and not a.cases:
        ap.error("matmul needs --cases")
    if a.what == "step" and not a.config:
        ap.error("step needs --config")
    if a.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"skipped": f"torch {torch.__version__} has no CUDA device (torch.cuda.is_available() is False)"}))
        return
    device = torch.device(a.device)
    f32 = strict_f32()
    log(f"f32 without TF32: {f32}")
    out = run_matmul(a, device) if a.what == "matmul" else run_step(a, device)
    print(json.dumps({**out, "tf32_setting": f32}))


if __name__ == "__main__":
    main()
