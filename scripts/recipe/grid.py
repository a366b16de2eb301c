#!/usr/bin/env python3
"""Many `search.py run`s side by side on one GPU, to choose the `quick` recipe on the VALIDATION split.

On this 2-core machine one proxy run of 300 steps takes ~7 minutes; on the device tool's GPU a worker process does one in
seconds, and a dozen workers share the card. Phase 1 runs the plan below (one seed each, first-token F1 on all 2,000
validation tweets); phase 2 reruns the best quick-budget recipes with two more seeds and greedy generation, because one
seed's F1 on this plateau moves by ±0.02–0.05. Everything stops at --deadline seconds; what finished is in the results.

  python3 scripts/recipe/grid.py --tokens .recipe/tokens.json --out DIR [--workers 12] [--deadline 420] [--device cuda]
        (RECIPE_MODEL_DIR=.recipe/model when ../shared is not beside the checkout)
  python3 scripts/recipe/grid.py --plan smoke --device cpu --workers 2 --top 1 --eval subset ...   # the plumbing, on a CPU
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))

def plan_quick(examples="4800"):  # the quick recipe's examples: 300 steps × 16, what ~12 minutes of our engine trains here
    """(tag, search.py run arguments), most informative first (a deadline cuts the tail)."""
    p = []
    add = lambda tag, *args: p.append((tag, ["--examples", examples, *args]))
    for s in (0, 1, 2):
        add(f"base-s{s}", "--lr", "3e-3", "--seed", str(s))
    for lr in ("1e-3", "1.5e-3", "2e-3", "2.5e-3", "3.5e-3", "4e-3"):
        add(f"lr{lr}", "--lr", lr)
    for alpha in ("8", "32", "64"):
        for lr in ("1e-3", "2e-3", "3e-3"):
            add(f"a{alpha}-lr{lr}", "--alpha", alpha, "--lr", lr)
    for r in ("4", "16", "32"):
        for lr in ("2e-3", "3e-3"):
            add(f"r{r}-lr{lr}", "--r", r, "--lr", lr)
    for wu in ("0", "0.03", "0.2", "0.3"):
        add(f"wu{wu}", "--lr", "3e-3", "--warmup", wu)
    for lr in ("2e-3", "3e-3"):
        add(f"cos-lr{lr}", "--lr", lr, "--schedule", "cosine")
    for lr in ("1e-3", "2e-3"):
        add(f"const-lr{lr}", "--lr", lr, "--schedule", "constant")
    for lr in ("1e-3", "2e-3", "3e-3"):
        add(f"b8-lr{lr}", "--batch", "8", "--lr", lr)
    for lr in ("3e-3", "5e-3"):
        add(f"b32-lr{lr}", "--batch", "32", "--lr", lr)
    add("b4-lr1e-3", "--batch", "4", "--lr", "1e-3")
    for lr in ("3e-3", "6e-3"):
        add(f"attn-lr{lr}", "--targets", "q_proj,k_proj,v_proj,o_proj", "--lr", lr)
    add("mlp-lr3e-3", "--targets", "gate_proj,up_proj,down_proj", "--lr", "3e-3")
    add("qv-lr6e-3", "--targets", "q_proj,v_proj", "--lr", "6e-3")
    add("head-lr3e-3", "--lm-head", "--lr", "3e-3")
    add("wd0", "--lr", "3e-3", "--weight-decay", "0")
    add("clip0.5", "--lr", "3e-3", "--clip", "0.5")
    add("clip5", "--lr", "3e-3", "--clip", "5")
    for ex in ("5600", "6400"):
        p.append((f"base-ex{ex}", ["--examples", ex, "--lr", "3e-3"]))
    # how many examples 0.45 needs: the curve of longer runs (validation every 100 steps)
    for ex, lr in (("9600", "3e-3"), ("16000", "3e-3"), ("16000", "2e-3"), ("24000", "1e-3")):
        p.append((f"curve-ex{ex}-lr{lr}", ["--examples", ex, "--lr", lr, "--eval-every", "100"]))
    return p


def plan_smoke():
    return [("base-s0", ["--examples", "64", "--lr", "3e-3"]), ("b8", ["--examples", "64", "--lr", "1e-3", "--batch", "8"])]


def worker(q, a, results, errors):
    sys.path.insert(0, HERE)
    import search  # noqa: E402  (after the path; each process reads the weights and tokens once)

    quiet = open(os.devnull, "w")
    while True:
        item = q.get()
        if item is None:
            return
        tag, args = item
        sys.stdout, sys.stderr = quiet, quiet  # the per-step lines of a dozen workers would bury the results
        try:
            search.main(["run", "--device", a.device, "--tokens", a.tokens, "--out", results, "--eval", a.eval, "--tag", tag, *args])
        except BaseException:  # SystemExit too: one bad recipe must not stop the worker
            with open(errors, "a") as f:
                f.write(json.dumps({"tag": tag, "error": traceback.format_exc()}) + "\n")


def read_results(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def show(d):
    gen = f" gen {d['gen_f1']:.4f} inv {100 * d['invalid']:.1f}%" if "gen_f1" in d else ""
    curve = " curve " + " ".join(f"{e['step']}:{e['ft_f1']:.3f}" for e in d["evals"]) if d.get("evals") else ""
    cal = f" (best epoch: ft {d['best']['ft_f1']:.4f} cf {d['best']['ft_f1_cf']:.4f} val {d['best']['ft_f1_val']:.4f})" if "best" in d else ""
    return f"{d['tag']:28s} ft {d['ft_f1']:.4f}{gen} preds {d['ft_pred_counts']}{cal} loss50 {d['final_loss50']:.3f} {d['train_s']:.0f}s{curve}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True, help="directory for results.jsonl and errors.jsonl")
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--deadline", type=float, default=420, help="seconds until every worker is stopped")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--plan", default="quick", choices=["quick", "smoke"])
    ap.add_argument("--plan-file", help="a JSON list of [tag, [search.py run arguments]] instead of --plan; no phase 2")
    ap.add_argument("--eval", default="full", choices=["full", "subset"], help="validation: all 2,000 or the 1,000 subset")
    ap.add_argument("--top", type=int, default=6, help="phase 2: rerun this many best quick-budget recipes (and base) with seeds 0, 1, 2")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    results, errors = os.path.join(a.out, "results.jsonl"), os.path.join(a.out, "errors.jsonl")
    if a.plan_file:
        with open(a.plan_file) as f:
            plan = [(tag, args) for tag, args in json.load(f)]
    else:
        plan = plan_quick() if a.plan == "quick" else plan_smoke()
    quick_examples = int(dict(plan).get("base-s0", ["", "4800"])[1])  # the budget phase 2 ranks on
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    q = ctx.Queue()
    for item in plan:
        q.put(item)
    procs = [ctx.Process(target=worker, args=(q, a, results, errors)) for _ in range(a.workers)]
    for p in procs:
        p.start()
    t0 = time.time()
    queued = {tag for tag, _ in plan}
    phase2 = bool(a.plan_file)  # True once nothing is left to queue
    seen = 0
    while time.time() - t0 < a.deadline:
        done = read_results(results)
        for d in done[seen:]:
            print(f"{time.time() - t0:6.0f}s {show(d)}", flush=True)
        seen = len(done)
        tags = {d["tag"] for d in done} | {e["tag"] for e in read_results(errors)}  # a failed run counts as finished
        if not phase2 and {t for t in queued if not t.startswith("curve")} <= tags:  # the long curves may still run
            phase2 = True
            quick = [d for d in done if d["examples"] == quick_examples and d["seed"] == 0 and not d["tag"].startswith("base-s")]
            quick.sort(key=lambda d: -d["ft_f1"])
            best = [(d["tag"], dict(plan)[d["tag"]]) for d in quick[: a.top]] + [("base", dict(plan)["base-s0"])]
            for tag, args in best:
                for s in (0, 1, 2):
                    item = (f"{tag}+gen-s{s}", [*args, "--seed", str(s), "--generate"])
                    queued.add(item[0])
                    q.put(item)
            print(f"phase 2: {[t for t, _ in best]} × seeds 0, 1, 2 with generation", flush=True)
        if phase2 and queued <= tags:
            break
        time.sleep(2)
    for p in procs:
        p.terminate()
    done = read_results(results)
    missing = sorted(queued - {d["tag"] for d in done})
    print(f"\n{len(done)} runs in {time.time() - t0:.0f} s; not finished: {missing}")
    for e in read_results(errors)[:3]:
        print(f"error in {e['tag']}:\n{e['error'][-1500:]}")
    print("\nby first-token F1 (quick budget, all seeds):")
    for d in sorted((d for d in done if d["examples"] == quick_examples), key=lambda d: -d["ft_f1"]):
        print("  " + show(d))


if __name__ == "__main__":
    main()
