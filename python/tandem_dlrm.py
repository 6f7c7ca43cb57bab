"""Tandem's DLRM as a plain PyTorch module, for models exported by `tandem export`.

    import torch, tandem_dlrm
    state = torch.load("model.pt")                      # a dict of name -> tensor
    model = tandem_dlrm.TandemDLRM.from_state_dict(state)
    dense, sparse = model.read("day_0.tsv")             # as the training's [schema] says
    p = torch.sigmoid(model(dense, sparse))             # equals `tandem predict`

The module mirrors src/tandem/nn/dlrm.cpp layer for layer, under the same names,
so the exported state_dict loads as it is:
  standardize  (x - mean) * inv_std of the frozen training statistics, a missing
               value 0 (plus a 0/1 column per feature with missing indicators);
               without it a missing value enters as 0
  bottom       Linear, [BatchNorm (SyncBatchNorm in eval)], [LayerNorm], ReLU per
               layer, the last one to the embedding dimension
  tables       all tables stacked by rows; table t starts at tables.table_offsets[t];
               a sample's ids fill tables.bag_sizes[t] slots of table t (one, or
               a multi-hot list padded with -1), pooled by their sum, or their mean
               where tables.mean_bags[t]
  interaction  the dots of every pair of the F = tables + 1 vectors (bottom output
               first), the strictly lower triangle in row-major order
  top          [Dropout], Linear, [LayerNorm], ReLU per hidden layer, then the logit
The layer sizes and which optional layers exist are read from the tensors.

model.read(path) reads a data file as Tandem read the training data: the export's
"schema" entry is its [schema] (src/tandem/data/schema.h) as JSON. read_tsv applies
Tandem's input transform to Criteo TSV: log(1 + max(x, 0)) for the 13 integer
fields (NaN when empty), and the hashing of the 26 hexadecimal fields into their
tables (src/tandem/data/criteo.cpp): row 0 for an empty field, else
1 + splitmix64(value ^ (field + 1) << 56) mod (rows - 1). read_delimited does the
same for any delimited schema: dense columns as floats with their transform
(log1p, none, clip), categorical ones hashed from their bytes (FNV-1a 64) or read
as hexadecimal, then into their table as above; multi-hot fields split into ids.

Run as a script, it prints one probability per line, as `tandem predict` does:
    python3 tandem_dlrm.py model.pt data.tsv
"""
import json
import math
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


def _table_rows(values, field, rows):
    """Raw ids (uint64 array) of categorical column `field` -> rows of its table, as
    tandem::data::hash_category maps them."""
    h = _mix64(values.astype(np.uint64) ^ (np.uint64(field + 1) << np.uint64(56)))
    return 1 + (h % np.uint64(int(rows) - 1)).astype(np.int64)


def hash_rows(values, table_rows):
    """Raw categorical values [n, 26] (int64, -1 = missing) -> their table rows, as
    tandem::data::hash_category maps them."""
    rows = np.zeros_like(values)
    for t in range(values.shape[1]):
        rows[:, t] = np.where(values[:, t] < 0, 0, _table_rows(values[:, t], t, table_rows[t]))
    return rows


def fnv1a(data):
    """FNV-1a, 64 bits, of bytes: how Tandem hashes a categorical string."""
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def read_delimited(path, schema, table_rows):
    """A delimited file under a Tandem [schema] (the export's JSON) -> (dense
    [n, dense columns] float32, NaN = missing; sparse [n, id slots] int64 table
    rows, -1 = an unused multi-hot slot), parsed and hashed as Tandem does. A
    malformed line raises ValueError naming path:line and the column."""
    delim = schema["delimiter"].encode()
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
    first = 1
    names = []
    if schema["header"]:
        if not lines:
            raise ValueError(f"{path}: empty; the schema expects a header line")
        names = [n.decode() for n in lines[0].removeprefix(b"\xef\xbb\xbf").split(delim)]
        first = 2
    columns = len(names) if schema["header"] else schema["columns"]

    def column(ref):
        if ref in names:
            return names.index(ref)
        if ref.isdigit() and 1 <= int(ref) <= columns:
            return int(ref) - 1
        raise ValueError(f"{path}: column '{ref}' is not in the header line")

    label = column(schema["label"])
    dense = [(column(d["column"]), d) for d in schema["dense"]]
    cats = [(column(c["column"]), c) for c in schema["categorical"]]
    slots = sum(c["max_ids"] for _, c in cats)
    n = len(lines) - (first - 1)
    x = np.empty((n, len(dense)), dtype=np.float64)
    raw = np.zeros((n, slots), dtype=np.uint64)
    state = np.zeros((n, slots), dtype=np.int8)  # 1 = an id, 0 = row 0, -1 = no id
    for i, line in enumerate(lines[first - 1:]):
        no = i + first
        f = line.split(delim)
        if len(f) != columns:
            raise ValueError(f"{path}:{no}: expected {columns} fields, found {len(f)}")
        if f[label] not in (b"0", b"1"):
            raise ValueError(f"{path}:{no}: label {f[label]!r} is not 0 or 1")
        for k, (c, d) in enumerate(dense):
            if not f[c]:
                x[i, k] = math.nan
                continue
            v = float(f[c])
            if not math.isfinite(v):
                raise ValueError(f"{path}:{no}: field {d['column']} is not a finite number")
            if d["transform"] == "log1p":
                v = math.log1p(max(v, 0.0))
            elif d["transform"] == "clip":
                v = min(max(v, d["lo"]), d["hi"])
            if abs(v) > np.finfo(np.float32).max and math.isinf(np.float32(v)):
                raise ValueError(f"{path}:{no}: field {d['column']} is beyond float32's range")
            x[i, k] = v
        s = 0
        for c, spec in cats:
            ids = f[c].split(spec["separator"].encode()) if spec["separator"] and f[c] else [f[c]]
            if spec["separator"] and len(ids) > spec["max_ids"]:
                raise ValueError(f"{path}:{no}: field {spec['column']} has more than its "
                                 f"max={spec['max_ids']} ids")
            for j in range(spec["max_ids"]):
                if j >= len(ids) or (spec["separator"] and not f[c]):
                    state[i, s + j] = -1
                elif ids[j]:
                    if spec["encoding"] == "hex":
                        if len(ids[j]) > 16 or ids[j].strip(b"0123456789abcdefABCDEF"):
                            raise ValueError(f"{path}:{no}: field {spec['column']} "
                                             f"{ids[j]!r} is not hexadecimal")
                        raw[i, s + j] = int(ids[j], 16)
                    else:
                        raw[i, s + j] = fnv1a(ids[j])
                    state[i, s + j] = 1
                elif spec["separator"]:
                    raise ValueError(f"{path}:{no}: field {spec['column']} has an empty id")
            s += spec["max_ids"]
    rows = np.where(state < 0, -1, 0).astype(np.int64)
    s = 0
    for t, (_, spec) in enumerate(cats):
        for j in range(s, s + spec["max_ids"]):
            rows[:, j] = np.where(state[:, j] == 1, _table_rows(raw[:, j], t, table_rows[t]),
                                  rows[:, j])
        s += spec["max_ids"]
    x = np.where(np.isnan(x), np.nan, x).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(rows)


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
    def __init__(self, table_rows, dim, bag_sizes, mean_bags):
        super().__init__()
        rows = torch.tensor(table_rows, dtype=torch.long)
        self.weight = nn.Parameter(torch.zeros(int(rows.sum()), dim))
        self.register_buffer("table_offsets", torch.cumsum(rows, 0) - rows)
        self.register_buffer("table_sizes", rows)
        self.register_buffer("bag_sizes", torch.as_tensor(bag_sizes, dtype=torch.long))
        self.register_buffer("mean_bags", torch.as_tensor(mean_bags, dtype=torch.bool))
        slot_table = torch.repeat_interleave(torch.arange(len(table_rows)), self.bag_sizes)
        self.register_buffer("slot_table", slot_table, persistent=False)

    def forward(self, sparse):
        """sparse [n, slots] -> the pooled vectors [n, tables, dim]."""
        present = sparse != -1
        rows = torch.where(present, sparse, torch.zeros_like(sparse))
        vectors = self.weight[rows + self.table_offsets[self.slot_table]]  # [n, slots, dim]
        w = present.to(vectors.dtype)
        count = torch.zeros(sparse.shape[0], len(self.table_sizes), dtype=w.dtype)
        count.index_add_(1, self.slot_table, w)
        mean = self.mean_bags[self.slot_table]
        w = torch.where(mean, w / count[:, self.slot_table].clamp(min=1), w)
        pooled = torch.zeros(sparse.shape[0], len(self.table_sizes), vectors.shape[2],
                             dtype=vectors.dtype)
        return pooled.index_add_(1, self.slot_table, vectors * w.unsqueeze(2))


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
        tables = len(self.table_rows)
        self.tables = Tables(self.table_rows, state["tables.weight"].shape[1],
                             state.get("tables.bag_sizes", torch.ones(tables, dtype=torch.long)),
                             state.get("tables.mean_bags", torch.zeros(tables, dtype=torch.bool)))
        # The data's [schema] (exports before it was saved read Criteo TSV).
        self.schema = (json.loads(bytes(state["schema"].tolist()).decode()) if "schema" in state
                       else {"format": "criteo"})
        self.top = _mlp(state, "top", trailing_relu=False)
        f = len(self.table_rows) + 1
        i, j = torch.tril_indices(f, f, offset=-1)
        self.register_buffer("pairs", i * f + j, persistent=False)

    @classmethod
    def from_state_dict(cls, state):
        model = cls(state)
        tables = len(model.table_rows)
        state = {"tables.bag_sizes": torch.ones(tables, dtype=torch.long),
                 "tables.mean_bags": torch.zeros(tables, dtype=torch.bool), **state}
        model.load_state_dict({k: v for k, v in state.items() if k != "schema"})
        return model.eval()

    def read(self, path):
        """(dense, sparse) of a data file, read as the training read its data."""
        if self.schema["format"] == "criteo":
            return read_tsv(path, self.table_rows)
        return read_delimited(path, self.schema, self.table_rows)

    def forward(self, dense, sparse):
        x = self.standardize(dense) if self.standardize is not None else torch.nan_to_num(dense, 0.0)
        x = self.bottom(x)
        stacked = torch.cat([x.unsqueeze(1), self.tables(sparse)], 1)  # [n, F, dim]
        dots = torch.bmm(stacked, stacked.transpose(1, 2)).flatten(1).index_select(1, self.pairs)
        return self.top(torch.cat([x, dots], 1)).squeeze(1)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: python3 tandem_dlrm.py MODEL.pt DATA")
    # In float64: the scores then differ from Tandem's float32 ones by Tandem's
    # rounding alone.
    model = TandemDLRM.from_state_dict(torch.load(argv[1])).double()
    dense, sparse = model.read(argv[2])
    with torch.no_grad():
        p = torch.sigmoid(model(dense.double(), sparse))
    sys.stdout.write("".join(f"{v:.9g}\n" for v in p.tolist()))


if __name__ == "__main__":
    main(sys.argv)
