#!/usr/bin/env bash
# The whole growth loop on BANKING77, on one store, as a user runs it: train v1 and v2, serve both as an
# experiment, let bounded simulated users give thumbs and corrections, analyse, decide, retrain v3, compare,
# report. Budgets are counted in steps so the same script gives the same models on a quiet or a loaded machine.
#
#   bash examples/loop/walkthrough.sh [WORK_DIR]      (reads ${GROWTHCURVE_SHARED_DATA:-../shared/data}/banking77)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GC=${GC:-$ROOT/.venv/bin/growthcurve}
PY=${PY:-$ROOT/.venv/bin/python}
DATA=$(cd "${GROWTHCURVE_SHARED_DATA:-$ROOT/../shared/data}/banking77" && pwd)
WORK=${1:-$ROOT/runs/loop-demo}
PORT=${PORT:-8765}
V1_STEPS=${V1_STEPS:-150}
V2_STEPS=${V2_STEPS:-600}
mkdir -p "$WORK" && cd "$WORK"
export GROWTHCURVE_STORE="sqlite:///$WORK/growthcurve.db"   # the one store every command below uses
say() { printf '\n$ %s\n' "$*"; }

# Users ask questions the models were not trained on: 20% of train is kept aside as their pool.
"$PY" - "$DATA" <<'EOF'
import csv, random, sys
rows = list(csv.DictReader(open(f"{sys.argv[1]}/train.csv", encoding="utf-8")))
random.Random(0).shuffle(rows)
cut = len(rows) // 5
for name, part in (("pool.csv", rows[:cut]), ("train.csv", rows[cut:])):
    with open(name, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["text", "category"])
        w.writeheader()
        w.writerows({"text": r["text"], "category": r["category"]} for r in part)
print(f"train {len(rows) - cut} rows, user pool {cut} rows")
EOF
COMMON=(--set name=banking77 --set data.train="$WORK/train.csv" --set data.test="$DATA/test.csv"
        --set data.label_column=category --set data.dev_fraction=0 --set train.learning_rate=3e-4 -q)
say growthcurve finetune "${COMMON[@]}" --set train.max_steps="$V1_STEPS" --set output_dir=v1
"$GC" finetune "${COMMON[@]}" --set train.max_steps="$V1_STEPS" --set output_dir=v1 | tail -n 3
say growthcurve finetune "${COMMON[@]}" --set train.max_steps="$V2_STEPS" --set output_dir=v2
"$GC" finetune "${COMMON[@]}" --set train.max_steps="$V2_STEPS" --set output_dir=v2 | tail -n 3
say growthcurve models show banking77
COLUMNS=80 "$GC" models show banking77

say growthcurve serve banking77@v1 banking77@v2 --experiment v2-test --port "$PORT"
"$GC" serve banking77@v1 banking77@v2 --experiment v2-test --port "$PORT" > serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat serve.log; exit 1; }
  sleep 0.5
done
cat serve.log
say python examples/loop/simulated_users.py --users 250 --per-user 2 --data pool.csv --label-column category
"$PY" "$ROOT/examples/loop/simulated_users.py" --url "http://127.0.0.1:$PORT" --data pool.csv \
  --label-column category --users 250 --per-user 2 --silent 0.2 --seed 0
kill $SERVER; wait $SERVER 2>/dev/null || true

say growthcurve ab analyze v2-test
COLUMNS=80 "$GC" ab analyze v2-test --out ab-v2-test --no-report
say growthcurve decide v2-test --ship banking77@v2 --why "..."
COLUMNS=80 "$GC" decide v2-test --ship banking77@v2 --why "more right answers and thumbs up, SRM ok"
say growthcurve retrain banking77@v2 --out v3 --set train.epochs=1
COLUMNS=80 "$GC" retrain banking77@v2 --out v3 --set train.epochs=1 -q || true
say growthcurve runs compare banking77@v2 banking77@v3
COLUMNS=80 "$GC" runs compare banking77@v2 banking77@v3 2>&1 | head -n 30 || true
say growthcurve models list
COLUMNS=80 "$GC" models list
say growthcurve decisions list
COLUMNS=80 "$GC" decisions list
say growthcurve report --out report.html
"$GC" report --out report.html
