#!/usr/bin/env bash
# Packs the peer benchmark (bench/peer/llama.ts) for the GPU machine into .gpu/
# (ignored; made by ../shared/gpu/pack.sh, which must run first):
#   .gpu/peer-llama.mjs          the benchmark as one ES module (externals: playwright-core, Node built-ins)
#   .gpu/peer/sieve-chat.js      the built <sieve-chat> component (npm run build)
#   .gpu/peer/wllama/index.js    wllama 3.8.1's ES module, and its wasm gzipped (the script unzips it in memory)
# The models are not packed: the script synthesizes them and writes the GGUF there.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d .gpu ] || { echo "pack.sh: .gpu/ missing: run ../shared/gpu/pack.sh first" >&2; exit 1; }
npm run build >/dev/null
mkdir -p .gpu/peer/wllama
cp dist/sieve-chat.js .gpu/peer/
cp node_modules/@wllama/wllama/esm/index.js .gpu/peer/wllama/
gzip -9 -c node_modules/@wllama/wllama/esm/wasm/wllama.wasm > .gpu/peer/wllama/wllama.wasm.gz
npm run --silent bench -- bench/peer/llama.ts --bundle .gpu/peer-llama.mjs
du -sh .gpu/peer .gpu/peer-llama.mjs .gpu
