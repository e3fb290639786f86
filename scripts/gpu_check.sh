#!/usr/bin/env bash
# Exercise hnm's GPU paths in a few minutes on a machine with one (or more) CUDA GPUs:
#   1. torch / CUDA / bf16 / faiss status (installs the `gpu` extra, faiss-gpu-cu12, if missing)
#   2. a short bf16 `hnm train` with all-MiniLM-L6-v2 on the GPU, with dense hard negatives
#      mined on the GPU (faiss-gpu, or exact torch search when faiss has no GPU build)
#   3. two bf16 steps (trainer=gpu, tiny encoder) of each strategy family: a sampler (ngame),
#      a miner (dense_static), a negatives strategy (gist, the starting model as its guide)
#      and loss=cached_infonce
#   4. AdamW step time, fused vs foreach (foreach: 16-mixed with clipping; bf16-mixed is fused)
#   5. faiss-gpu vs faiss-cpu exact search on the same embeddings: same neighbours
#   6. with 2+ GPUs: a 2-GPU DDP run (cross-device negatives)
# Prints timings. On a machine without CUDA it says so and exits 0.
#   bash scripts/gpu_check.sh            # PYTHON=… to use another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
HNM="$(dirname "$PY")/hnm"
[[ -x "$HNM" ]] || HNM="$PY -m hnm.cli"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  "$PY" - <<'EOF' 2>/dev/null || echo "gpu_check: torch is not importable with $PY"
import shutil, torch
smi = "found" if shutil.which("nvidia-smi") else "not found"
print(f"gpu_check: no CUDA device visible to torch {torch.__version__} "
      f"(CUDA build: {torch.version.cuda}; nvidia-smi {smi}).")
if torch.version.cuda is None and smi == "found":
    print("gpu_check: this torch is a CPU build; install a CUDA one, e.g. "
          "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126")
EOF
  echo "gpu_check: nothing to check on this machine; exiting 0."
  exit 0
fi

OUT="${GPU_CHECK_DIR:-$(mktemp -d /tmp/hnm-gpu-check.XXXXXX)}"
step() { printf '\n== %s\n' "$*"; }
T0=$(date +%s)

step "1. status"
if ! "$PY" -c "import faiss, sys; sys.exit(0 if hasattr(faiss, 'StandardGpuResources') else 1)" 2>/dev/null; then
  echo "faiss has no GPU support here; installing the gpu extra (faiss-gpu-cu12) …"
  "$PY" -m pip install -q -e ".[gpu]" || echo "pip install .[gpu] failed: search falls back to torch/faiss-cpu"
fi
"$PY" - <<'EOF'
import torch
from hnm.index.faiss_index import faiss_available, faiss_has_gpu
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
print(f"bf16 supported: {torch.cuda.is_bf16_supported()}")
if faiss_available():
    import faiss
    print(f"faiss {faiss.__version__}: GPU build {hasattr(faiss, 'StandardGpuResources')}, "
          f"GPUs seen {faiss_has_gpu() and faiss.get_num_gpus()}")
else:
    print("faiss: not installed (exact torch search is used)")
EOF

step "2. bf16 training on the GPU: MiniLM, 256 pairs, dense hard negatives mined on the GPU"
t=$(date +%s)
$HNM train trainer=gpu data.max_train_pairs=256 +miner=dense_static logger=csv \
  eval.evaluator.max_queries=300 hydra.run.dir="$OUT/train" > "$OUT/train.log" 2>&1 \
  || { tail -40 "$OUT/train.log"; echo "gpu_check: FAILED: bf16 training"; exit 1; }
echo "hnm train (trainer=gpu, bf16-mixed): $(( $(date +%s) - t )) s; log: $OUT/train.log"
"$PY" - "$OUT/train/metrics.json" <<'EOF'
import json, math, sys
m = json.load(open(sys.argv[1]))
keys = [k for k in sorted(m) if k.endswith("ndcg@10") or k.startswith("time/")
        or k.startswith("mine/") or k == "train/steps"]
for k in keys:
    print(f"  {k:<36} {m[k]:.4f}" if isinstance(m[k], float) else f"  {k:<36} {m[k]}")
assert all(math.isfinite(v) for v in m.values() if isinstance(v, float)), "non-finite metric"
EOF
grep -Ei "faiss search runs on CPU|CUDA is not available|falls? back" "$OUT/train.log" | sort -u || true

step "3. one short bf16 run (trainer=gpu, experiment=smoke, 2 steps) per strategy family"
# gist needs a guide (it refuses to start without one): the starting model, ${encoder}
for family in "+sampler=ngame" "+miner=dense_static" "+negatives=gist negatives.gist.guide=\${encoder}" \
    "loss=cached_infonce"; do
  name="${family%% *}"; name="${name#+}"; name="${name//=/_}"
  t=$(date +%s)
  # a family may be several overrides: split on purpose
  # shellcheck disable=SC2086
  $HNM train experiment=smoke trainer=gpu trainer.max_steps=2 logger=none $family \
    eval.zero_shot=false hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1 \
    || { tail -40 "$OUT/$name.log"; echo "gpu_check: FAILED: trainer=gpu $family"; exit 1; }
  echo "  hnm train experiment=smoke trainer=gpu $family: $(( $(date +%s) - t )) s," \
    "$(grep -o '"train/steps": [0-9.]*' "$OUT/$name/metrics.json" || echo 'no train/steps')"
done

step "4. AdamW on MiniLM-sized parameters: fused vs foreach (16-mixed + clipping)"
"$PY" scripts/bench_optimizer.py --device cuda --steps 20

step "5. faiss-gpu vs faiss-cpu exact search (200k x 384 docs, 2,000 queries, k=100)"
"$PY" - <<'EOF'
import time
import numpy as np
from hnm.index import DocIndex
from hnm.index.faiss_index import faiss_has_gpu

rng = np.random.default_rng(0)
docs = rng.standard_normal((200_000, 384), dtype=np.float32)
docs /= np.linalg.norm(docs, axis=1, keepdims=True)
queries = docs[rng.choice(len(docs), 2000, replace=False)] + 0.1 * rng.standard_normal(
    (2000, 384), dtype=np.float32)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
results = {}
for name, kw in (("faiss-cpu", dict(backend="faiss", device="cpu")),
                 ("faiss-gpu", dict(backend="faiss", device="cuda")),
                 ("torch-gpu", dict(backend="torch", device="cuda"))):
    t = time.perf_counter()
    index = DocIndex(docs, **kw)
    built = time.perf_counter() - t
    t = time.perf_counter()
    results[name] = index.search(queries, 100)
    print(f"  {name:<10} backend={index.backend} device={index.device}: build {built:.2f} s, "
          f"search {time.perf_counter() - t:.3f} s")
ref_s, ref_i = results["faiss-cpu"]
for name in ("faiss-gpu", "torch-gpu"):
    s, i = results[name]
    same = float((i == ref_i).mean())
    print(f"  {name} vs faiss-cpu: identical ids {same:.5f}, max |score diff| "
          f"{np.abs(s - ref_s).max():.2e}")
    assert same > 0.999 and np.abs(s - ref_s).max() < 1e-3, f"{name} disagrees with faiss-cpu"
if not faiss_has_gpu():
    print("  (faiss has no GPU build here: 'faiss-gpu' above ran on the CPU, as logged)")
EOF

if [[ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]]; then
  step "6. DDP on 2 GPUs: cross-device negatives (global batch 2 x 32)"
  t=$(date +%s)
  $HNM train trainer=ddp trainer.devices=2 data.max_train_pairs=512 +sampler=ngame logger=none \
    eval.evaluator.max_queries=300 hydra.run.dir="$OUT/ddp" > "$OUT/ddp.log" 2>&1 \
    || { tail -40 "$OUT/ddp.log"; echo "gpu_check: FAILED: DDP training"; exit 1; }
  echo "hnm train trainer=ddp devices=2: $(( $(date +%s) - t )) s; log: $OUT/ddp.log"
  grep -h '"test/.*ndcg@10"' "$OUT/ddp/metrics.json" || true
else
  step "6. DDP: skipped (one GPU)"
fi

printf '\ngpu_check: all GPU checks passed in %d s; outputs in %s\n' "$(( $(date +%s) - T0 ))" "$OUT"
