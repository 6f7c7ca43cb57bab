"""Tandem's DLRM as a plain PyTorch module, for models exported by `tandem export`.

    import torch, tandem_dlrm
    state = torch.load("model.pt")                      # a dict of name -> tensor
    model = tandem_dlrm.TandemDLRM.from_state_dict(state)
    model.load_state_dict(state)
    dense, sparse = tandem_dlrm.read_tsv("day_0.tsv", model.table_rows)
    p = torch.sigmoid(model(dense, sparse))             # equals `tandem predict`

The module mirrors src/tandem/nn/dlrm.cpp layer for layer, under the same names,
so the exported state_dict loads as it is:
  standardize  (x - mean) * inv_std of the frozen training statistics, a missing
               value 0 (plus a 0/1 column per feature with missing indicators);
               without it a missing value enters as 0
  bottom       Linear, [BatchNorm (SyncBatchNorm in eval)], [LayerNorm], ReLU per
               layer, the last one to the embedding dimension
  tables       all tables stacked by rows; table t starts at tables.table_offsets[t]
  interaction  the dots of every pair of the F = tables + 1 vectors (bottom output
               first), the strictly lower triangle in row-major order
  top          [Dropout], Linear, [LayerNorm], ReLU per hidden layer, then the logit
The layer sizes and which optional layers exist are read from the tensors.

read_tsv applies Tandem's input transform to Criteo TSV: log(1 + max(x, 0)) for
the 13 integer fields (NaN when empty), and the hashing of the 26 hexadecimal
fields into their tables (src/tandem/data/criteo.cpp): row 0 for an empty field,
else 1 + splitmix64(value ^ (field + 1) << 56) mod (rows - 1).

Run as a script, it prints one probability per line, as `tandem predict` does:
    python3 tandem_dlrm.py model.pt data.tsv
"""
import re
import sys

import numpy as np
import torch
import torch.nn as nn

NUM_DENSE, NUM_CAT = 13, 26
_EPS = 1e-5  # Tandem's LayerNorm and SyncBatchNorm


def _mix64(x):
    """splitmix64's finaliser (src/tandem/util/hash.h) on uint64 arrays."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_rows(values, table_rows):
    """Raw categorical values [n, 26] (int64, -1 = missing) -> their table rows, as
    tandem::data::hash_category maps them."""
    rows = np.zeros_like(values)
    for t in range(values.shape[1]):
        salt = np.uint64(t + 1) << np.uint64(56)
        h = _mix64(values[:, t].astype(np.uint64) ^ salt)
        rows[:, t] = np.where(values[:, t] < 0, 0,
                              1 + (h % np.uint64(int(table_rows[t]) - 1)).astype(np.int64))
    return rows


def read_tsv(path, table_rows):
    """Criteo TSV -> (dense [n, 13] float32 with NaN = missing, sparse [n, 26] int64
    table rows), transformed and hashed as Tandem does."""
    dense, cats = [], []
    with open(path) as f:
        for no, line in enumerate(f, 1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 1 + NUM_DENSE + NUM_CAT:
                raise ValueError(f"{path}:{no}: expected 40 tab-separated fields, found {len(fields)}")
            dense.append([float(v) if v else np.nan for v in fields[1:1 + NUM_DENSE]])
            cats.append([int(v, 16) if v else -1 for v in fields[1 + NUM_DENSE:]])
    d = np.array(dense, dtype=np.float64).reshape(-1, NUM_DENSE)
    d = np.where(np.isnan(d), np.nan, np.log1p(np.maximum(d, 0))).astype(np.float32)
    rows = hash_rows(np.array(cats, dtype=np.int64).reshape(-1, NUM_CAT), table_rows)
    return torch.from_numpy(d), torch.from_numpy(rows)


class Standardize(nn.Module):
    def __init__(self, features, missing_indicator):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("inv_std", torch.ones(features))
        self.missing_indicator = missing_indicator

    def forward(self, x):
        missing = torch.isnan(x)
        z = torch.where(missing, torch.zeros_like(x), (x - self.mean) * self.inv_std)
        return torch.cat([z, missing.to(x.dtype)], 1) if self.missing_indicator else z


class Tables(nn.Module):
    def __init__(self, table_rows, dim):
        super().__init__()
        rows = torch.tensor(table_rows, dtype=torch.long)
        self.weight = nn.Parameter(torch.zeros(int(rows.sum()), dim))
        self.register_buffer("table_offsets", torch.cumsum(rows, 0) - rows)
        self.register_buffer("table_sizes", rows)

    def forward(self, sparse):
        return self.weight[sparse + self.table_offsets]  # [n, tables, dim]


def _mlp(state, prefix, trailing_relu):
    """The nn.Sequential whose parameters are state's `prefix.N.*`: a 2-D weight is a
    Linear, running statistics a BatchNorm, any other weight a LayerNorm; an index
    without tensors is a ReLU after a layer, or a Dropout (identity here) before a
    Linear that follows a ReLU or starts the sequence."""
    keys = {}
    for k, v in state.items():
        m = re.fullmatch(re.escape(prefix) + r"\.(\d+)\.(\w+)", k)
        if m:
            keys.setdefault(int(m[1]), {})[m[2]] = v
    last = max(keys)
    layers = []
    for i in range(last + 1):
        t = keys.get(i)
        if t is not None and t["weight"].dim() == 2:
            layers.append(nn.Linear(t["weight"].shape[1], t["weight"].shape[0]))
        elif t is not None and "running_mean" in t:
            layers.append(nn.BatchNorm1d(t["weight"].numel(), eps=_EPS))
        elif t is not None:
            layers.append(nn.LayerNorm(t["weight"].numel(), eps=_EPS))
        else:
            before_linear = i + 1 in keys and keys[i + 1]["weight"].dim() == 2
            after_relu = i == 0 or isinstance(layers[-1], nn.ReLU)
            layers.append(nn.Identity() if before_linear and after_relu else nn.ReLU())
    if trailing_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TandemDLRM(nn.Module):
    def __init__(self, state):
        super().__init__()
        first = state["bottom.0.weight"]
        self.standardize = None
        if "standardize.mean" in state:
            features = state["standardize.mean"].numel()
            self.standardize = Standardize(features, first.shape[1] == 2 * features)
        self.bottom = _mlp(state, "bottom", trailing_relu=True)
        self.table_rows = state["tables.table_sizes"].tolist()
        self.tables = Tables(self.table_rows, state["tables.weight"].shape[1])
        self.top = _mlp(state, "top", trailing_relu=False)
        f = len(self.table_rows) + 1
        i, j = torch.tril_indices(f, f, offset=-1)
        self.register_buffer("pairs", i * f + j, persistent=False)

    @classmethod
    def from_state_dict(cls, state):
        model = cls(state)
        model.load_state_dict(state)
        return model.eval()

    def forward(self, dense, sparse):
        x = self.standardize(dense) if self.standardize is not None else torch.nan_to_num(dense, 0.0)
        x = self.bottom(x)
        stacked = torch.cat([x.unsqueeze(1), self.tables(sparse)], 1)  # [n, F, dim]
        dots = torch.bmm(stacked, stacked.transpose(1, 2)).flatten(1).index_select(1, self.pairs)
        return self.top(torch.cat([x, dots], 1)).squeeze(1)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: python3 tandem_dlrm.py MODEL.pt DATA.tsv")
    # In float64: the scores then differ from Tandem's float32 ones by Tandem's
    # rounding alone.
    model = TandemDLRM.from_state_dict(torch.load(argv[1])).double()
    dense, sparse = read_tsv(argv[2], model.table_rows)
    with torch.no_grad():
        p = torch.sigmoid(model(dense.double(), sparse))
    sys.stdout.write("".join(f"{v:.9g}\n" for v in p.tolist()))


if __name__ == "__main__":
    main(sys.argv)
