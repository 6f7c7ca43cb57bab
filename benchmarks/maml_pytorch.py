#!/usr/bin/env python3
"""The anchor for `benchmarks/meta_bench.sh`: second-order MAML on the sinusoid
task family in PyTorch eager, the way Python MAML code is written (the
paper's code, learn2learn, higher): a loop over the meta-batch, each task
adapted on a functional copy of the parameters with create_graph=True.
--batched adapts all tasks of a meta-batch at once with batched matmuls (the
same formulation Tandem uses), to show how much is algorithm and how much is
language. Prints one JSON line: meta-iterations per second.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def init(gen):
    params = []
    for fan_in, fan_out in [(1, 40), (40, 40), (40, 1)]:
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
        params += [w.requires_grad_(), b.requires_grad_()]
    return params


def forward(params, x):
    h = x
    for i in range(0, len(params), 2):
        h = F.linear(h, params[i], params[i + 1])
        if i + 2 < len(params):
            h = F.relu(h)
    return h


def forward_batched(params, x):  # params [T, ...], x [T, N, 1]
    h = x
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1].unsqueeze(1), h, params[i].transpose(1, 2))
        if i + 2 < len(params):
            h = F.relu(h)
    return h


def sample(gen, tasks, n):
    amp = torch.rand(tasks, 1, 1, generator=gen) * 4.9 + 0.1
    phase = torch.rand(tasks, 1, 1, generator=gen) * math.pi
    x = torch.rand(tasks, n, 1, generator=gen) * 10 - 5
    return x, amp * torch.sin(x - phase)


def step_loop(params, opt, gen, args):
    xs, ys = sample(gen, args.meta_batch, args.shots)
    xq, yq = sample(gen, args.meta_batch, args.shots)
    opt.zero_grad()
    total = 0
    for t in range(args.meta_batch):
        fast = params
        for _ in range(args.inner_steps):
            loss = F.mse_loss(forward(fast, xs[t]), ys[t])
            grads = torch.autograd.grad(loss, fast, create_graph=True)
            fast = [p - args.inner_lr * g for p, g in zip(fast, grads)]
        total = total + F.mse_loss(forward(fast, xq[t]), yq[t])
    (total / args.meta_batch).backward()
    opt.step()


def step_batched(params, opt, gen, args):
    xs, ys = sample(gen, args.meta_batch, args.shots)
    xq, yq = sample(gen, args.meta_batch, args.shots)
    opt.zero_grad()
    fast = [p.expand(args.meta_batch, *p.shape) for p in params]
    for _ in range(args.inner_steps):
        loss = ((forward_batched(fast, xs) - ys) ** 2).mean(dim=(1, 2)).sum()
        grads = torch.autograd.grad(loss, fast, create_graph=True)
        fast = [p - args.inner_lr * g for p, g in zip(fast, grads)]
    query = ((forward_batched(fast, xq) - yq) ** 2).mean(dim=(1, 2))
    (query.sum() / args.meta_batch).backward()
    opt.step()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--inner-steps", type=int, default=1)
    ap.add_argument("--inner-lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batched", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    params = init(gen)
    opt = torch.optim.Adam(params, lr=0.001)
    step = step_batched if args.batched else step_loop
    for _ in range(10):  # warm-up
        step(params, opt, gen, args)
    start = time.perf_counter()
    for _ in range(args.iterations):
        step(params, opt, gen, args)
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch-batched" if args.batched else "pytorch-loop",
                      "torch": torch.__version__, "inner_steps": args.inner_steps,
                      "iterations_per_s": args.iterations / seconds}))


if __name__ == "__main__":
    main()
