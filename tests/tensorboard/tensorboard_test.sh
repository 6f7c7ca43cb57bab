# TensorBoard event files, read by the `tensorboard` package's own reader
# (EventAccumulator; pip-installed here into a cache directory), with every
# record's two CRCs checked independently:
# - `tandem train`: at every step the scalars equal metrics.jsonl (each number of
#   each event, tagged "<event>/<key>"); histograms of every MLP weight matrix and
#   of each table's row norms at every evaluation, with the right counts; the config
#   as text; checkpoint timings;
# - killed (kill -9) after step 30 and resumed: a second file, and the reader's
#   curve is one, equal to the resumed run's metrics.jsonl (no step twice);
# - `tandem meta` writes its metrics the same way; `tandem continuous` a point per
#   decision (both models' metrics, promoted or not, the retrain's size and time),
#   equal to its audit log; log.tensorboard=false writes none.
source "$(dirname "$0")/../lib.sh"
[[ ${WITH_TENSORBOARD:-1} == 1 ]] || { echo "skipped: built without TensorBoard"; exit 77; }
# Checkpoint timings, the kill and resume and `tandem continuous` need checkpoints.
[[ ${WITH_HDF5:-1} == 1 ]] || { echo "skipped: built without HDF5"; exit 77; }
py=python3
pkgs=${XDG_CACHE_HOME:-$HOME/.cache}/tandem-tests/tensorboard-2.21.0
if ! PYTHONPATH=$pkgs $py -c "import tensorboard" 2>/dev/null; then
  $py -m pip install -q --disable-pip-version-check --target "$pkgs" tensorboard==2.21.0 \
    >"$WORK/pip.log" 2>&1 || { echo "skipped: cannot pip-install tensorboard: $(tail -n 1 "$WORK/pip.log")"; exit 77; }
fi
export PYTHONPATH=$pkgs

# check_run RUN_DIR [METRICS_ONLY]: the event files against metrics.jsonl.
check_run() {
  $py - "$1" "${2:-}" <<'PY'
import glob, json, struct, sys
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
run, metrics_only = sys.argv[1], sys.argv[2] == "metrics_only"
files = sorted(glob.glob(run + "/tb/events.out.tfevents.*"))
assert files, "no event file"
for f in files:  # TFRecord framing: length, its CRC, data, its CRC
    data, at, records = open(f, "rb").read(), 0, 0
    while at < len(data):
        head = data[at:at + 8]
        (n,), (crc,) = struct.unpack("<Q", head), struct.unpack("<I", data[at + 8:at + 12])
        assert crc == masked_crc32c(head), f"{f}: bad length CRC at byte {at}"
        body = data[at + 12:at + 12 + n]
        assert struct.unpack("<I", data[at + 12 + n:at + 16 + n])[0] == masked_crc32c(body), \
            f"{f}: bad data CRC at byte {at}"
        at, records = at + 16 + n, records + 1
    assert at == len(data) and records > 1, f"{f}: {records} records"
ea = EventAccumulator(run + "/tb", size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
ea.Reload()
scalars = {t: {e.step: e.value for e in ea.Scalars(t)} for t in ea.Tags()["scalars"]}
for t in ea.Tags()["scalars"]:
    if t.startswith("checkpoint/"):  # the last step may be saved twice (every_steps, at_end)
        continue
    steps = [e.step for e in ea.Scalars(t)]
    assert steps == sorted(set(steps)), f"{t}: steps {steps} repeat or go back"
expected = 0
for line in open(run + "/metrics.jsonl"):
    e = json.loads(line)
    x = "step" if "step" in e else "iteration"  # meta logs iterations
    for k, v in e.items():
        if k == x or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        tag, expected = f"{e['event']}/{k}", expected + 1
        got = scalars.get(tag, {}).get(e[x])
        assert got is not None and got == np.float32(v), f"{tag} @ {e[x]}: {got} != {v}"
n_metric_scalars = sum(len(s) for t, s in scalars.items() if not t.startswith("checkpoint/"))
assert n_metric_scalars == expected, f"{n_metric_scalars} scalars for {expected} numbers"
if metrics_only:
    print(f"ok: {run}: {expected} scalars = metrics.jsonl, CRCs ok in {len(files)} file(s)")
    sys.exit()
config = ea.Tensors("config")[0].tensor_proto.string_val[0].decode()
assert config == "```\n" + open(run + "/config.ini").read() + "```", "config text"
evals = [e["step"] for e in map(json.loads, open(run + "/metrics.jsonl"))
         if e["event"] in ("eval", "final")]
hist = ea.Tags()["histograms"]
want = {"weights/bottom.0.weight": 32 * 13, "weights/top.4.weight": 16}
want.update({f"embedding_row_norm/table_{t}": 400 for t in range(26)})
for tag, count in want.items():
    assert tag in hist, f"no histogram {tag}: {hist}"
    h = ea.Histograms(tag)
    assert [x.step for x in h] == evals, f"{tag}: steps {[x.step for x in h]} != evals {evals}"
    for x in h:
        v = x.histogram_value
        assert v.num == count and sum(v.bucket) == count, f"{tag}: {v.num}, {sum(v.bucket)} != {count}"
        assert v.min <= v.max and len(v.bucket) == len(v.bucket_limit)
assert scalars.get("checkpoint/save_seconds"), "no checkpoint timing"
print(f"ok: {run}: {expected} scalars = metrics.jsonl, {len(want)} histograms x {len(evals)} "
      f"evaluations, config text, CRCs ok in {len(files)} file(s)")
PY
}

"$TANDEM" generate --rows 4000 --seed 5 --cardinalities 400 --out "$WORK/train.tsv" >/dev/null
small_config "$WORK/train.tsv" "$WORK/run" >"$WORK/c.ini"
train() {
  "$TANDEM" train --config "$WORK/c.ini" --model.embedding_rows=400 --train.steps=60 \
    --train.eval_every=20 --train.log_every=10 --ckpt.every_steps=10 "$@"
}
train --run.dir="$WORK/run" >"$WORK/run.log" 2>&1 || fail "train: $(tail -n 3 "$WORK/run.log")"
check_run "$WORK/run" || fail "train's event file"
pass "train: scalars = metrics.jsonl, histograms, config text, CRCs"

rc=0
TANDEM_KILL_AFTER_STEP=35 train --run.dir="$WORK/killed" >"$WORK/killed.log" 2>&1 || rc=$?
[[ $rc == 137 ]] || fail "the kill: exit $rc"
sleep 1  # the resumed process's file gets a later name
train --run.dir="$WORK/killed" --resume auto >"$WORK/resumed.log" 2>&1 ||
  fail "resume: $(tail -n 3 "$WORK/resumed.log")"
grep -q "resume: .*step-000000030.h5" "$WORK/resumed.log" || fail "did not resume at step 30"
[[ $(ls "$WORK/killed/tb" | wc -l) == 2 ]] || fail "expected 2 event files: $(ls "$WORK/killed/tb")"
check_run "$WORK/killed" metrics_only || fail "resumed run's event files"
pass "kill -9 and resume: a second file, one curve equal to metrics.jsonl"

"$TANDEM" meta --config "$REPO/configs/maml_sinusoid.ini" --run.threads=1 --meta.iterations=40 \
  --meta.eval_every=20 --meta.eval_tasks=20 --meta.log_every=10 --ckpt.at_end=false \
  --run.dir="$WORK/meta" >"$WORK/meta.log" 2>&1 || fail "meta: $(tail -n 3 "$WORK/meta.log")"
check_run "$WORK/meta" metrics_only || fail "meta's event file"
# tandem continuous: a point per decision, the audit log's figures.
mkdir -p "$WORK/in"
"$TANDEM" generate --rows 4000 --seed 8 --cardinalities 400 --out "$WORK/in/part-001.tsv" >/dev/null
{ cat "$WORK/c.ini"; printf '[continuous]\nincoming = %s\ndir = %s\ninitial = %s\n' "$WORK/in" \
  "$WORK/cont" "$WORK/run/checkpoints/step-000000060.h5"; } >"$WORK/cont.ini"
timeout 300 "$TANDEM" continuous --config "$WORK/cont.ini" --model.embedding_rows=400 \
  --train.log_every=0 --continuous.poll_s=0.1 --continuous.settle_s=0 --continuous.max_polls=1 \
  --continuous.min_new_rows=1000 >"$WORK/cont.log" 2>&1 || fail "continuous: $(tail -n 3 "$WORK/cont.log")"
$py - "$WORK/cont" <<'PY' || fail "continuous's event file"
import json, sys
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
d = sys.argv[1]
audit = [json.loads(l) for l in open(d + "/audit.jsonl")]
ev = [e for e in audit if e["event"] == "evaluation"]
dec = [e for e in audit if e["event"] in ("promotion", "rejection")]
assert len(ev) == len(dec) == 1, [e["event"] for e in audit]
ea = EventAccumulator(d + "/tb", size_guidance={"scalars": 0})
ea.Reload()
s = lambda tag: [(e.step, e.value) for e in ea.Scalars(tag)]
seq = dec[0]["seq"]
for who in ("challenger", "champion"):
    for k in ("ne", "auc", "logloss"):
        assert s(f"{who}/{k}") == [(seq, np.float32(ev[0][who + "_metrics"][k]))], (who, k, s(f"{who}/{k}"))
assert s("decision/promoted") == [(seq, float(dec[0]["event"] == "promotion"))], s("decision/promoted")
print(f"ok: continuous: decision {seq} ({dec[0]['event']}) in TensorBoard")
PY
train --run.dir="$WORK/off" --log.tensorboard=false >/dev/null 2>&1 || fail "log.tensorboard=false"
[[ ! -e $WORK/off/tb ]] || fail "log.tensorboard=false wrote $WORK/off/tb"
pass "meta and continuous write theirs too; log.tensorboard=false writes nothing"
echo "1 passed, 0 failed"
