"""Peer for bench/src/benches/autograd.ts: forward+backward of single ops in PyTorch on the CPU (1 thread).
Reads {"budget_ms", "cases": [...]} on stdin, prints {"torch", "blas", "results": [{"p50_ms", "min_ms", "samples"}]}."""
import json, sys, time, statistics
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
spec = json.load(sys.stdin)
budget = spec['budget_ms'] / 1000


def case_fn(c):
    op = c['op']
    if op == 'matmul_dx':  # y = x·Wᵀ with frozen W: backward computes dx = dy·W only
        x = torch.randn(c['M'], c['K'], requires_grad=True); w = torch.randn(c['N'], c['K']); g = torch.randn(c['M'], c['N'])
        return lambda: torch.autograd.grad(x @ w.t(), x, g)
    if op == 'attention':
        B, T, H, KV, D = c['B'], c['T'], c['H'], c['KV'], c['D']
        q = torch.randn(B, H, T, D, requires_grad=True); k = torch.randn(B, KV, T, D, requires_grad=True); v = torch.randn(B, KV, T, D, requires_grad=True)
        mask = torch.full((T, T), float('-inf')).triu(1)
        g = torch.randn(B, H, T, D)
        def run():
            kk = k.repeat_interleave(H // KV, 1); vv = v.repeat_interleave(H // KV, 1)
            p = torch.softmax(q @ kk.transpose(-1, -2) / D ** 0.5 + mask, -1)
            return torch.autograd.grad(p @ vv, (q, k, v), g)
        return run
    if op == 'rmsnorm':
        x = torch.randn(c['rows'], c['cols'], requires_grad=True); w = torch.randn(c['cols'], requires_grad=True); g = torch.randn(c['rows'], c['cols'])
        def run():
            y = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
            return torch.autograd.grad(y, (x, w), g)
        return run
    if op == 'cross_entropy':
        x = torch.randn(c['rows'], c['cols'], requires_grad=True); t = torch.randint(0, c['cols'], (c['rows'],))
        return lambda: torch.autograd.grad(F.cross_entropy(x, t), x)
    raise ValueError(op)


results = []
for c in spec['cases']:
    f = case_fn(c)
    f()
    times = []
    t_end = time.perf_counter() + budget
    while len(times) < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter(); f(); times.append((time.perf_counter() - t0) * 1000)
    results.append({'p50_ms': statistics.median(times), 'min_ms': min(times), 'samples': len(times)})
import os
# Debian builds torch against the generic BLAS interface; the library behind it is chosen by update-alternatives
blas = os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3')
print(json.dumps({'torch': torch.__version__, 'blas': blas, 'results': results}))
