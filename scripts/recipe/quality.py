#!/usr/bin/env python3
"""Issue 16's search plan, its choice rule, and its results plumbing (stdlib only; scripts/gpu/quality.sh runs it).

  quality.py plan   --out DIR [--scale full|tiny]   the proxy grid → DIR/plan.json (grid.py --plan-file) + candidates.json
  quality.py choose --dir DIR                       DIR/results.jsonl → DIR/choice.json + DIR/search-table.md (the rule below)
  quality.py collect RUNS_DIR --out quality.json [--merge quality.json]   dawngrad run directories (NAME-sSEED/summary.json)
                                                    → bench/results/quality.json, keeping --merge's other runs
  quality.py readme --quality Q.json [--search DIR|search-table.md]   fill the marked tables in scripts/recipe/README.md
                                                    and the recipe table of README.md

The choice rule, fixed before any result is seen: for each group (`best`: one epoch or more of the whole train split;
`demo`: the quick recipe's budget of 4,800 examples), every training configuration × every scoring (plain first-token,
calibrated by the content-free prior, calibrated by the validation prior) is a candidate; its score is the MEAN over
seeds of the validation macro-F1 (all 2,000 validation tweets, the best epoch's, as dawngrad keeps the best epoch's
adapter). Only configurations whose planned seeds all finished compete (if none did, those with the most seeds). The
highest mean wins; a tie goes to the cheaper one (fewer examples × epochs), then to plan order. The test split is
never read here.
"""
import argparse
import json
import math
import os
import re
import sys

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SCORINGS = {"none": "ft_f1", "content-free": "ft_f1_cf", "validation": "ft_f1_val"}
# Hugging Face PEFT, the full recipe on this base (issue 16; shared/models/tweet-mistral-tiny/README.md), seeds 0-4
PEFT_TEST_F1 = [0.527, 0.524, 0.410, 0.480, 0.488]

# the plain recipes the candidates vary (dawngrad's option names; search.py's flags in search_args)
FULL = dict(lr=1e-3, batchSize=16, maxTrain=None, epochs=1, r=8, alpha=16, schedule="linear", warmup=0.1, bucketWindow=16)
QUICK = dict(FULL, lr=2e-3, batchSize=8, maxTrain=4800)


def candidates(scale="full"):
    """{group: [(name, settings, seeds)]}, most expensive first (the deadline cuts the cheap tail, not a long run)."""
    b32 = dict(FULL, batchSize=32, lr=2e-3)
    best = [
        ("b32-lr2e-3-up", dict(b32, balance="up")),
        ("b32-lr2e-3", b32),
        ("b32-lr3e-3", dict(b32, lr=3e-3)),
        ("b32-lr2e-3-head", dict(b32, lmHead=True)),
        ("b32-lr2e-3-r16", dict(b32, r=16, alpha=32)),
        ("b32-lr2e-3-ls0.1", dict(b32, labelSmoothing=0.1)),
        ("b64-lr3e-3-ep2", dict(FULL, batchSize=64, lr=3e-3, epochs=2)),
        ("b64-lr4e-3", dict(FULL, batchSize=64, lr=4e-3)),
        ("b32-lr2e-3-down", dict(b32, balance="down")),
    ]
    demo = [
        ("quick", QUICK),
        ("quick-down", dict(QUICK, balance="down")),
        ("quick-head", dict(QUICK, lmHead=True)),
        ("quick-down-head", dict(QUICK, balance="down", lmHead=True)),
        ("quick-ls0.1", dict(QUICK, labelSmoothing=0.1)),
        ("quick-wsd-lr3e-3", dict(QUICK, schedule="wsd", lr=3e-3)),
        ("quick-lr3e-3", dict(QUICK, lr=3e-3)),
    ]
    groups = {"best": [(n, s, (0, 1)) for n, s in best], "demo": [(n, s, (0, 1, 2)) for n, s in demo]}
    if scale == "tiny":  # the plumbing on a CPU: two configurations a group, a few dozen examples, one or two seeds
        shrink = lambda s, n: dict(s, maxTrain=n, batchSize=8)
        groups = {"best": [(n, shrink(s, 48), (0, 1)) for n, s in best[1:3]], "demo": [(n, shrink(s, 24), (0,)) for n, s in demo[:2]]}
    return groups


def search_args(s):
    """search.py run flags for settings `s`."""
    a = ["--lr", repr(s["lr"]), "--batch", str(s["batchSize"]), "--examples", str(s["maxTrain"] or 0), "--epochs", str(s["epochs"]),
         "--r", str(s["r"]), "--alpha", str(s["alpha"]), "--schedule", s["schedule"], "--warmup", repr(s["warmup"]),
         "--bucket", str(s["bucketWindow"]), "--label-smoothing", repr(s.get("labelSmoothing", 0.0)), "--balance", s.get("balance", "none")]
    return a + (["--lm-head"] if s.get("lmHead") else []) + (["--rslora"] if s.get("rslora") else [])


def dawngrad_flags(s, calibration):
    """`dawngrad train` flags that reproduce settings `s` whatever the named recipes say (every value explicit)."""
    f = ["--recipe", "full" if s["maxTrain"] is None else "quick", "--lr", repr(s["lr"]), "--batch-size", str(s["batchSize"]),
         "--epochs", str(s["epochs"]), "--r", str(s["r"]), "--alpha", str(s["alpha"]), "--schedule", s["schedule"],
         "--warmup", repr(s["warmup"]), "--bucket-window", str(s["bucketWindow"])]
    if s["maxTrain"] is not None:
        f += ["--max-train", str(s["maxTrain"])]
    if s.get("labelSmoothing"):
        f += ["--label-smoothing", repr(s["labelSmoothing"])]
    # the knobs a named recipe may set are given even when off (the quick recipe calibrates)
    f += ["--balance", s.get("balance", "none"), "--targets", ",".join(ALL_LINEAR + ["lm_head"]) if s.get("lmHead") else "all-linear"]
    if s.get("rslora"):
        f += ["--rslora"]
    return f + ["--calibrate", calibration]


def recipe_literal(s, calibration):
    """The RECIPES entry for packages/train/src/options.ts, as TypeScript."""
    o = {"targets": ALL_LINEAR + ["lm_head"] if s.get("lmHead") else "all-linear", "r": s["r"], "alpha": s["alpha"], "lr": s["lr"],
         "batchSize": s["batchSize"], "epochs": s["epochs"], "schedule": s["schedule"], "warmup": s["warmup"], "bucketWindow": s["bucketWindow"]}
    if s["maxTrain"] is not None:
        o.update(maxTrain=s["maxTrain"], maxEval=400)
    for k, off in (("labelSmoothing", 0), ("balance", "none"), ("rslora", False)):
        if s.get(k, off) != off:
            o[k] = s[k]
    if calibration != "none":
        o["calibrate"] = calibration
    return "{ " + ", ".join(f"{k}: {json.dumps(v).replace(chr(34), chr(39))}" for k, v in o.items()) + " }"


def tag(group, name, seed):
    return f"{group}:{name}:s{seed}"


def plan(a):
    os.makedirs(a.out, exist_ok=True)
    groups = candidates(a.scale)
    jobs = [(tag(g, n, seed), search_args(s) + ["--seed", str(seed)], s) for g, cs in groups.items() for n, s, seeds in cs for seed in seeds]
    cost = lambda s: math.ceil((s["maxTrain"] or 45615) * (1.36 if s.get("balance") == "up" else 0.47 if s.get("balance") == "down" else 1) / s["batchSize"]) * s["epochs"]
    jobs.sort(key=lambda j: -cost(j[2]))  # longest first: the deadline cuts the cheap tail (stable: plan order within a cost)
    with open(os.path.join(a.out, "plan.json"), "w") as f:
        json.dump([[t, args] for t, args, _ in jobs], f, indent=0)
    with open(os.path.join(a.out, "candidates.json"), "w") as f:
        json.dump({g: [{"name": n, "settings": s, "seeds": list(seeds)} for n, s, seeds in cs] for g, cs in groups.items()}, f, indent=1)
    print(f"plan: {len(jobs)} runs ({', '.join(f'{g} {sum(len(x[2]) for x in cs)}' for g, cs in groups.items())}); "
          f"{sum(cost(s) for _, _, s in jobs)} optimizer steps in all → {a.out}/plan.json")


def choose(a):
    with open(os.path.join(a.dir, "candidates.json")) as f:
        groups = json.load(f)
    runs = {}
    path = os.path.join(a.dir, "results.jsonl")
    for line in open(path) if os.path.exists(path) else []:
        if line.strip():
            d = json.loads(line)
            runs[d["tag"]] = d
    choice, lines = {}, ["| group | configuration | scoring | seeds | validation macro-F1 per seed | mean | examples × epochs |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for g, cs in groups.items():
        rows = []
        for order, c in enumerate(cs):
            done = [runs[tag(g, c["name"], s)] for s in c["seeds"] if tag(g, c["name"], s) in runs]
            s = c["settings"]
            for cal, key in SCORINGS.items():
                f1s = [d["best"][key] for d in done]
                mean = sum(f1s) / len(f1s) if f1s else float("nan")
                rows.append(dict(name=c["name"], calibration=cal, f1s=f1s, n=len(f1s), planned=len(c["seeds"]), mean=mean, settings=s,
                                 cost=(s["maxTrain"] or 45615) * s["epochs"], order=order))
        full = [r for r in rows if r["n"] == r["planned"]]
        most = max((r["n"] for r in rows), default=0)
        pool = full or [r for r in rows if r["n"] == most and most > 0]
        pool.sort(key=lambda r: (-r["mean"], r["cost"], r["order"]))
        for r in sorted(rows, key=lambda r: -r["mean"] if r["n"] else 1):
            mark = " **(chosen)**" if pool and r is pool[0] else ""
            lines.append(f"| {g} | {r['name']}{mark} | {r['calibration']} | {r['n']}/{r['planned']} | {' / '.join(f'{x:.4f}' for x in r['f1s']) or '—'} | "
                         f"{r['mean']:.4f} | {r['cost']:,} |" if r["n"] else f"| {g} | {r['name']} | {r['calibration']} | 0/{r['planned']} | — | — | {r['cost']:,} |")
        if pool:
            w = pool[0]
            choice[g] = {"configuration": w["name"], "calibration": w["calibration"], "validation_f1": w["f1s"], "mean": w["mean"],
                         "settings": w["settings"], "dawngrad_flags": dawngrad_flags(w["settings"], w["calibration"]),
                         "recipe": recipe_literal(w["settings"], w["calibration"]), "complete": bool(full)}
    with open(os.path.join(a.dir, "choice.json"), "w") as f:
        json.dump(choice, f, indent=1)
    with open(os.path.join(a.dir, "search-table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    for g, c in choice.items():
        print(f"\n{g}: {c['configuration']} scored by {c['calibration']}: mean validation macro-F1 {c['mean']:.4f} over {len(c['validation_f1'])} seed(s)"
              f"\n  dawngrad train {' '.join(c['dawngrad_flags'])}\n  RECIPES entry: {c['recipe']}")
    if not choice:
        sys.exit(f"choose: no finished run in {path}")


# ---------------------------------------------------------------------------------------------- the seeds' results
def mean_sd(xs):
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def collect(a):
    """Every run directory under RUNS_DIR (NAME-sSEED/summary.json) → one record each, and mean ± sd per NAME."""
    runs = []
    for d in sorted(os.listdir(a.runs)):
        p = os.path.join(a.runs, d, "summary.json")
        if not os.path.isdir(os.path.join(a.runs, d)):
            continue
        if not os.path.exists(p):
            print(f"collect: {d}: no summary.json (the run did not finish)", file=sys.stderr)
            continue
        with open(p) as f:
            s = json.load(f)
        m = re.match(r"(.+)-s(\d+)$", d)
        after = s["after"]
        pick = lambda e, k: round(e[k]["macroF1"], 4) if e.get(k) else None
        head = after.get("calibrated") or after.get("generate") or after.get("firstToken")
        runs.append({
            "name": m.group(1) if m else d, "run": d, "seed": s["options"]["seed"], "command": s["command"], "adapter": s["hardware"]["adapter"],
            "wall_s": round(s["wallSeconds"], 1), "train_s": round(s["trainSeconds"], 1), "steps": s["steps"], "techniques": s.get("techniques", []),
            "validation_f1": round(max(v["macroF1"] for v in s["validation"]), 4) if s["validation"] else None,
            "test_f1": round(head["macroF1"], 4), "test_f1_generate": pick(after, "generate"), "test_f1_first_token": pick(after, "firstToken"),
            "test_f1_calibrated": pick(after, "calibrated"), "calibration": (after.get("calibrated") or {}).get("method"),
            "invalid_rate": round(after["generate"]["invalidRate"], 4) if after.get("generate") else None,
            "test_n": after["n"], "test_per_class_f1": [round(c["f1"], 4) for c in head["metrics"]["perClass"]],
            "test_confusion": head["metrics"]["matrix"]["counts"],
        })
    if a.merge and os.path.exists(a.merge):  # keep the runs measured elsewhere (the CPU demo) unless rerun here
        with open(a.merge) as f:
            runs += [r for r in json.load(f)["runs"] if r["run"] not in {x["run"] for x in runs}]
    groups = {}
    for r in runs:
        groups.setdefault(r["name"], []).append(r)
    summary = {}
    for name, rs in groups.items():
        entry = {"runs": len(rs), "seeds": [r["seed"] for r in rs]}
        for k in ("test_f1", "test_f1_generate", "test_f1_calibrated", "validation_f1"):
            xs = [r[k] for r in rs if r[k] is not None]
            if xs:
                m, sd = mean_sd(xs)
                entry[k] = {"mean": round(m, 4), "sd": round(sd, 4), "values": xs}
        summary[name] = entry
    pm, psd = mean_sd(PEFT_TEST_F1)
    out = {"about": "issue 16: dawngrad runs on the TweetEval test split (scripts/recipe/quality.py collect); test_f1 is the headline "
                    "(calibrated first-token scoring when the run calibrates, else generation)",
           "peft": {"test_f1": PEFT_TEST_F1, "mean": round(pm, 4), "sd": round(psd, 4), "note": "HF transformers + PEFT, full recipe, seeds 0-4 (issue 16)"},
           "summary": summary, "runs": runs}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(seeds_table(out))
    print(f"\nwrote {a.out}: {len(runs)} runs")


def seeds_table(q):
    lines = ["| run | seed | validation F1 | test F1 (headline) | by generation | calibrated | invalid | per class (neg/neu/pos) | wall s | GPU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    f = lambda x: "—" if x is None else f"{x:.4f}"
    for r in q["runs"]:
        invalid = "—" if r["invalid_rate"] is None else f"{100 * r['invalid_rate']:.1f}%"
        cal = f" ({r['calibration']})" if r["calibration"] else ""
        per_class = " / ".join(f"{x:.3f}" for x in r["test_per_class_f1"])
        lines.append(f"| {r['run']} | {r['seed']} | {f(r['validation_f1'])} | {f(r['test_f1'])} | {f(r['test_f1_generate'])} | "
                     f"{f(r['test_f1_calibrated'])}{cal} | {invalid} | {per_class} | {r['wall_s']:.0f} | {r['adapter']} |")
    lines += ["", "| recipe | runs | test macro-F1 mean ± sd (headline) | by generation | validation mean |", "| --- | --- | --- | --- | --- |"]
    ms = lambda e, k: f"{e[k]['mean']:.3f} ± {e[k]['sd']:.3f}" if k in e else "—"
    for name, e in q["summary"].items():
        lines.append(f"| {name} (dawngrad) | {e['runs']} | {ms(e, 'test_f1')} | {ms(e, 'test_f1_generate')} | {ms(e, 'validation_f1')} |")
    p = q["peft"]
    lines.append(f"| full (HF PEFT) | {len(p['test_f1'])} | {p['mean']:.3f} ± {p['sd']:.3f} ({' / '.join(f'{x:.3f}' for x in p['test_f1'])}) | same | — |")
    return "\n".join(lines)


def replace_between(text, key, body):
    """Replace what lies between <!-- KEY --> and <!-- /KEY --> (the markers stay)."""
    pat = re.compile(rf"(<!-- {re.escape(key)} -->)(.*?)(<!-- /{re.escape(key)} -->)", re.S)
    if not pat.search(text):
        sys.exit(f"readme: no <!-- {key} --> … <!-- /{key} --> markers")
    return pat.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def readme(a):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(a.quality) as f:
        q = json.load(f)
    path = os.path.join(here, "README.md")
    text = replace_between(open(path).read(), "quality:seeds", "\n" + seeds_table(q) + "\n")
    if a.search:  # the search's table: search-table.md itself or the folder quality.sh search wrote it to
        table = a.search if a.search.endswith(".md") else os.path.join(a.search, "search-table.md")
        text = replace_between(text, "quality:search", "\n" + open(table).read())
    open(path, "w").write(text)
    top = os.path.join(here, "../../README.md")
    t = open(top).read()
    ms = lambda x: f"{x['mean']:.3f} ± {x['sd']:.3f}"
    full, best = q["summary"].get("full"), q["summary"].get("best")
    if full and "test_f1_generate" in full:  # the reference recipe is scored as PEFT scores it: by generation
        cal = f"; calibrated by the validation prior {ms(full['test_f1_calibrated'])}" if "test_f1_calibrated" in full else ""
        t = replace_between(t, "quality:full", f"{full['runs']} seeds on an H200: test macro-F1 by generation **{ms(full['test_f1_generate'])}** "
                                               f"(HF PEFT: {ms(q['peft'])}){cal}")
    if best and "test_f1" in best:
        t = replace_between(t, "quality:best", f"{best['runs']} seeds on an H200: test macro-F1 **{ms(best['test_f1'])}** ({best['test_f1']['values']})")
    open(top, "w").write(t)
    print(f"filled the tables in {path} and {os.path.normpath(top)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("plan")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="full", choices=["full", "tiny"])
    p = sub.add_parser("choose")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("collect")
    p.add_argument("runs")
    p.add_argument("--out", required=True)
    p.add_argument("--merge", help="an earlier quality.json whose runs to keep (those not rerun here)")
    p = sub.add_parser("readme")
    p.add_argument("--quality", required=True)
    p.add_argument("--search")
    a = ap.parse_args()
    {"plan": plan, "choose": choose, "collect": collect, "readme": readme}[a.what](a)


if __name__ == "__main__":
    main()
