"""The anchor of Tandem's throughput benchmark: the same DLRM-style model, data and
hashing in PyTorch eager, data-parallel with DDP over gloo when --ranks > 1.
With --device cuda the model and the whole parsed data set live on the GPU before
timing (PyTorch's best case: no input pipeline at all).

The TSV is parsed once into memory before timing, so PyTorch is timed on training
steps alone, while Tandem streams and parses its input during its steps.
Prints one JSON line: {"ranks", "batch", "threads", "sparse", "samples_per_s", ...}.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

NUM_DENSE, NUM_CAT = 13, 26
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x):
    """splitmix64 finaliser, as tandem::data::hash_category uses it."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def load(path, rows_per_table, limit):
    labels, dense, cats = [], [], []
    with open(path) as f:
        for n, line in enumerate(f):
            if n >= limit:
                break
            parts = line.rstrip("\r\n").split("\t")
            labels.append(float(parts[0]))
            dense.append([np.log1p(max(int(v), 0)) if v else 0.0 for v in parts[1:14]])
            cats.append([int(v, 16) if v else -1 for v in parts[14:40]])
    cats = np.array(cats, dtype=np.int64)
    missing = cats < 0
    rows = np.empty_like(cats)
    for i in range(NUM_CAT):
        salt = np.uint64(i + 1) << np.uint64(56)
        h = mix64(cats[:, i].astype(np.uint64) ^ salt)
        rows[:, i] = 1 + (h % np.uint64(rows_per_table - 1)).astype(np.int64)
    rows[missing] = 0
    return (torch.tensor(np.array(dense, dtype=np.float32)), torch.tensor(rows),
            torch.tensor(np.array(labels, dtype=np.float32)))


class DLRM(nn.Module):
    def __init__(self, bottom, top, rows, dim, sparse):
        super().__init__()
        layers, d = [], NUM_DENSE
        for h in bottom + [dim]:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.bottom = nn.Sequential(*layers)
        self.tables = nn.ModuleList(
            nn.EmbeddingBag(rows, dim, mode="sum", sparse=sparse) for _ in range(NUM_CAT))
        for t in self.tables:
            nn.init.uniform_(t.weight, -(1.0 / rows) ** 0.5, (1.0 / rows) ** 0.5)
        f = NUM_CAT + 1
        self.register_buffer("pairs", torch.tensor([i * f + j for i in range(f) for j in range(i)]))
        layers, d = [], dim + len(self.pairs)
        for h in top:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.top = nn.Sequential(*layers)

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        offsets = torch.arange(dense.shape[0], device=dense.device)
        vecs = [x] + [t(sparse[:, i].contiguous(), offsets) for i, t in enumerate(self.tables)]
        s = torch.stack(vecs, 1)
        z = torch.bmm(s, s.transpose(1, 2)).flatten(1).index_select(1, self.pairs)
        return self.top(torch.cat([x, z], 1)).squeeze(1)


def run(rank, args, data):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    if args.ranks > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                                rank=rank, world_size=args.ranks)
    device = torch.device(args.device)
    model = DLRM(args.bottom, args.top, args.rows, args.dim, args.sparse).to(device)
    if args.ranks > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = (torch.optim.Adagrad(model.parameters(), lr=args.lr) if args.optim == "adagrad"
           else torch.optim.SGD(model.parameters(), lr=args.lr))
    loss_fn = nn.BCEWithLogitsLoss()
    dense, cats, labels = (t.to(device) for t in data)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    n, local = labels.shape[0], args.batch // args.ranks
    steps_per_epoch = n // args.batch

    def step(s):
        first = (s % steps_per_epoch) * args.batch + rank * local
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(dense[first:first + local], cats[first:first + local]),
                       labels[first:first + local])
        loss.backward()
        opt.step()

    for s in range(args.warmup):
        step(s)
    sync()
    if args.ranks > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for s in range(args.warmup, args.warmup + args.steps):
        step(s)
    sync()
    if args.ranks > 1:
        dist.barrier()
    secs = time.perf_counter() - t0
    if rank == 0:
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "ranks": args.ranks,
                          "batch": args.batch, "threads": args.threads, "sparse": args.sparse,
                          "device": args.device,
                          "optim": args.optim, "steps": args.steps,
                          "samples_per_s": args.steps * args.batch / secs}), flush=True)
    if args.ranks > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--rows-limit", type=int, default=100000)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--batch", type=int, default=256, help="global batch")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rows", type=int, default=20000, help="rows per embedding table")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--bottom", default="64,32")
    p.add_argument("--top", default="64,32")
    p.add_argument("--optim", default="adagrad", choices=["adagrad", "sgd"])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--sparse", action="store_true", help="sparse embedding gradients")
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    args.bottom = [int(v) for v in args.bottom.split(",")]
    args.top = [int(v) for v in args.top.split(",")]
    data = load(args.data, args.rows, args.rows_limit)
    if args.ranks == 1:
        run(0, args, data)
    else:
        mp.spawn(run, args=(args, data), nprocs=args.ranks)


if __name__ == "__main__":
    main()
