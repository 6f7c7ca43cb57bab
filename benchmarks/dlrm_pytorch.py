"""The anchors of Tandem's throughput benchmarks: the same DLRM-style model, data and
hashing in PyTorch eager, data-parallel with DDP over gloo when --ranks > 1.
With --device cuda the model and the whole parsed data set live on the GPU before
timing (PyTorch's best case: no input pipeline at all).

--embedding chooses how the 26 tables are built, the ways PyTorch users build them:
  dense     one nn.EmbeddingBag per table, dense gradients, torch.optim.Adagrad
  sparse    the same with sparse gradients (Adagrad takes both)
  stacked   one nn.EmbeddingBag holding all tables (ids offset per table), sparse
  tbe       FBGEMM's table-batched embedding (fbgemm-gpu-cpu), exact row-wise
            Adagrad fused into the backward: Tandem's row-wise math
  torchrec  TorchRec's FusedEmbeddingBagCollection (a TBE underneath), row-wise
            Adagrad
The dense layers use torch.optim.Adagrad in every variant. tbe and torchrec run on
one rank only: their fused update would let replicated tables drift apart under DDP.

The TSV is parsed once into memory before timing, so PyTorch is timed on training
steps alone, while Tandem streams and parses its input during its steps.
Prints one JSON line: {"ranks", "batch", "threads", "embedding", "samples_per_s",
"first_loss", "last_loss", "eval_logloss", ...}: the losses are the mean training
loss over the first and the last tenth of all steps, and the log loss on --eval.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

NUM_DENSE, NUM_CAT = 13, 26
# Tandem's hashing of categorical values, from the PyTorch module of exported models.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from tandem_dlrm import hash_rows  # noqa: E402


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
    rows = hash_rows(np.array(cats, dtype=np.int64), [rows_per_table] * NUM_CAT)
    return (torch.tensor(np.array(dense, dtype=np.float32)), torch.tensor(rows),
            torch.tensor(np.array(labels, dtype=np.float32)))


def mlp(sizes, last_relu):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if last_relu or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Tables(nn.Module):
    """The 26 tables, per --embedding: forward(cats [B, 26]) -> [B, 26, dim]."""

    def __init__(self, kind, rows, dim, lr):
        super().__init__()
        self.kind, self.rows, self.dim = kind, rows, dim
        bound = (1.0 / rows) ** 0.5
        if kind in ("dense", "sparse"):
            self.tables = nn.ModuleList(
                nn.EmbeddingBag(rows, dim, mode="sum", sparse=kind == "sparse")
                for _ in range(NUM_CAT))
            for t in self.tables:
                nn.init.uniform_(t.weight, -bound, bound)
        elif kind == "stacked":
            self.table = nn.EmbeddingBag(NUM_CAT * rows, dim, mode="sum", sparse=True)
            nn.init.uniform_(self.table.weight, -bound, bound)
            self.register_buffer("base", torch.arange(NUM_CAT).view(1, NUM_CAT) * rows)
        elif kind == "tbe":
            from fbgemm_gpu.split_embedding_configs import EmbOptimType
            from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
            from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
                ComputeDevice, SplitTableBatchedEmbeddingBagsCodegen)
            self.tbe = SplitTableBatchedEmbeddingBagsCodegen(
                [(rows, dim, EmbeddingLocation.HOST, ComputeDevice.CPU)] * NUM_CAT,
                optimizer=EmbOptimType.EXACT_ROWWISE_ADAGRAD, learning_rate=lr, eps=1e-8)
            with torch.no_grad():
                for w in self.tbe.split_embedding_weights():
                    w.uniform_(-bound, bound)
        elif kind == "torchrec":
            from torchrec import EmbeddingBagConfig
            from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
            from torchrec.optim import RowWiseAdagrad
            self.keys = [f"f{i}" for i in range(NUM_CAT)]
            self.ebc = FusedEmbeddingBagCollection(
                tables=[EmbeddingBagConfig(name=f"t{i}", embedding_dim=dim, num_embeddings=rows,
                                           feature_names=[k], weight_init_min=-bound,
                                           weight_init_max=bound)
                        for i, k in enumerate(self.keys)],
                optimizer_type=RowWiseAdagrad, optimizer_kwargs={"lr": lr, "eps": 1e-8},
                device=torch.device("cpu"))
        else:
            raise ValueError(f"--embedding {kind}")

    # The variants whose optimizer runs inside the backward (no parameters to step).
    @property
    def fused(self):
        return self.kind in ("tbe", "torchrec")

    def forward(self, cats):
        b = cats.shape[0]
        if self.kind in ("dense", "sparse"):
            offsets = torch.arange(b, device=cats.device)
            return torch.stack([t(cats[:, i].contiguous(), offsets)
                                for i, t in enumerate(self.tables)], 1)
        if self.kind == "stacked":
            return self.table((cats + self.base).view(-1, 1)).view(b, NUM_CAT, self.dim)
        # Table-major ids, one per bag: offsets 0..26B.
        ids = cats.t().reshape(-1)
        offsets = torch.arange(ids.numel() + 1, device=cats.device)
        if self.kind == "tbe":
            return self.tbe(ids, offsets).view(b, NUM_CAT, self.dim)
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
        kjt = KeyedJaggedTensor.from_offsets_sync(keys=self.keys, values=ids, offsets=offsets)
        return self.ebc(kjt).values().view(b, NUM_CAT, self.dim)


class DLRM(nn.Module):
    def __init__(self, bottom, top, rows, dim, embedding, lr):
        super().__init__()
        self.bottom = mlp([NUM_DENSE] + bottom + [dim], last_relu=True)
        self.tables = Tables(embedding, rows, dim, lr)
        f = NUM_CAT + 1
        self.register_buffer("pairs", torch.tensor([i * f + j for i in range(f) for j in range(i)]))
        self.top = mlp([dim + len(self.pairs)] + top + [1], last_relu=False)

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        s = torch.cat([x.unsqueeze(1), self.tables(sparse)], 1)
        z = torch.bmm(s, s.transpose(1, 2)).flatten(1).index_select(1, self.pairs)
        return self.top(torch.cat([x, z], 1)).squeeze(1)


def run(rank, args, data, eval_data):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    if args.ranks > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                                rank=rank, world_size=args.ranks)
    device = torch.device(args.device)
    model = DLRM(args.bottom, args.top, args.rows, args.dim, args.embedding, args.lr).to(device)
    fused = model.tables.fused
    if args.ranks > 1:
        model = nn.parallel.DistributedDataParallel(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adagrad(params, lr=args.lr) if args.optim == "adagrad"
           else torch.optim.SGD(params, lr=args.lr))
    loss_fn = nn.BCEWithLogitsLoss()
    dense, cats, labels = (t.to(device) for t in data)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    n, local = labels.shape[0], args.batch // args.ranks
    steps_per_epoch = n // args.batch
    losses = []

    def step(s):
        first = (s % steps_per_epoch) * args.batch + rank * local
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(dense[first:first + local], cats[first:first + local]),
                       labels[first:first + local])
        loss.backward()
        opt.step()
        losses.append(loss.detach())

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
        tenth = max(1, len(losses) // 10)
        out = {"impl": "pytorch", "torch": torch.__version__, "ranks": args.ranks,
               "batch": args.batch, "threads": args.threads, "embedding": args.embedding,
               "sparse": args.embedding != "dense", "fused": fused, "device": args.device,
               "optim": args.optim, "steps": args.steps,
               "samples_per_s": args.steps * args.batch / secs,
               "first_loss": torch.stack(losses[:tenth]).mean().item(),
               "last_loss": torch.stack(losses[-tenth:]).mean().item()}
        if eval_data is not None:
            ed, ec, el = (t.to(device) for t in eval_data)
            with torch.no_grad():
                # The module itself: DDP's forward would broadcast to the other ranks.
                core = model.module if args.ranks > 1 else model
                logits = torch.cat([core(ed[i:i + 8192], ec[i:i + 8192])
                                    for i in range(0, el.shape[0], 8192)])
                out["eval_logloss"] = nn.functional.binary_cross_entropy_with_logits(
                    logits, el).item()
        print(json.dumps(out), flush=True)
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
    p.add_argument("--embedding", default="dense",
                   choices=["dense", "sparse", "stacked", "tbe", "torchrec"])
    p.add_argument("--sparse", action="store_true", help="the same as --embedding sparse")
    p.add_argument("--eval", help="held-out TSV: its log loss is reported")
    p.add_argument("--eval-limit", type=int, default=20000)
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    args.bottom = [int(v) for v in args.bottom.split(",")]
    args.top = [int(v) for v in args.top.split(",")]
    if args.sparse:
        args.embedding = "sparse"
    if args.ranks > 1 and args.embedding in ("tbe", "torchrec"):
        p.error(f"--embedding {args.embedding} runs on one rank (its update is fused)")
    data = load(args.data, args.rows, args.rows_limit)
    eval_data = load(args.eval, args.rows, args.eval_limit) if args.eval else None
    if args.ranks == 1:
        run(0, args, data, eval_data)
    else:
        mp.spawn(run, args=(args, data, eval_data), nprocs=args.ranks)


if __name__ == "__main__":
    main()
