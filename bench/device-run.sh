#!/usr/bin/env bash
# The batched GPU-machine call that checks issues 16 and 17 (one device call, under 10 minutes).
# Prepare here (after npm install):
#   ../shared/gpu/pack.sh && cp -r ../shared/fixtures .gpu/fixtures
#   npm run gpu:bundle -- bench/conformance.ts bench/attention.ts bench/engine.ts bench/first-prefill.ts
#   old bundles (the pre-issue-16 kernels): git worktree add --detach ../wt-old 1811d2c, link node_modules,
#     npm run gpu:bundle -- bench/engine.ts bench/attention.ts there, copy them to .gpu/old-engine.mjs, .gpu/old-attention.mjs
# Then run (device tool, carry [".gpu"]):  bash bench/device-run.sh [quick|all]
#   quick: the conformance command of every tier only (kernels vs CPU references, golden logits, stories260k)
#   all:   + the tensor tier's attention and engine vs f32, old vs new (issue 16's +-3%), first-seen prefill
# Each step runs in its own process with a time limit (a crash in one is reported and the rest go on);
# outputs land in $OUT (one .out / .err / .json per step).
source .gpu/setup.sh >/dev/null 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run() {
  local name=$1 t=$2
  shift 2
  local s=$(date +%s)
  timeout "$t" node "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rc=$?
  echo "== $name rc=$rc $(($(date +%s) - s))s"
  tail -c 1500 "$OUT/$name.out"
  grep -v "^$" "$OUT/$name.err" | grep -iv "XDG\|deprecat\|^ *\^\|subgroupMatrix" | tail -3 | cut -c1-300
}
run conformance 150 .gpu/conformance.mjs --kernels all --quick --fixtures .gpu/fixtures --json "$OUT/conformance-quick.json"
[ "${1:-all}" = quick ] && exit 0
run attn-old 40 .gpu/old-attention.mjs --sizes 32768 --inputs structured --alphas 0.95 --iters 3 --json "$OUT/attn-old.json"
run attn-new 40 .gpu/attention.mjs --kernels f32 --sizes 32768 --inputs structured --alphas 0.95 --iters 3 --json "$OUT/attn-new.json"
run attn-tensor 40 .gpu/attention.mjs --kernels tensor --kv f16 --sizes 32768 --inputs structured --alphas 0.95 --iters 3 --json "$OUT/attn-tensor.json"
run engine-old 50 .gpu/old-engine.mjs --shapes internlm2-1.8b --formats q4 --prompt 4096 --chunk 4096 --decode 32 --repeat 1 --json "$OUT/engine-old.json"
run engine-new 90 .gpu/engine.mjs --kernels f32,f16,tensor --shapes internlm2-1.8b --formats q4 --prompt 4096 --chunk 4096 --decode 32 --repeat 1 --json "$OUT/engine-new.json"
run first-prefill 100 .gpu/first-prefill.mjs --kernels f32 --lengths 1,7,13,300,2048,8192 --json "$OUT/first-prefill.json"
