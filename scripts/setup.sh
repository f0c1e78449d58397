#!/usr/bin/env bash
# Installs what the project needs from the system and prepares the demo's
# bundled default model. Safe to run again; does nothing that is already done.
#  - Debian's chromium (the browser the Playwright tests drive, and the
#    SwiftShader Vulkan driver that Dawn uses on machines without a GPU);
#  - libvulkan1 (the Vulkan loader Dawn's Node binding opens);
#  - copies ../shared/fixtures/stories260k (the default model) into
#    demo/public/models/, an ignored folder the app serves.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need+=(libvulkan1)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "setup: installing ${need[*]} with sudo"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need[*]}." >&2
    echo "       Install them as root: apt-get install ${need[*]}  (chromium brings SwiftShader, a CPU WebGPU for tests)" >&2
    exit 1
  fi
fi

src=../shared/fixtures/stories260k
dst=demo/public/models/stories260k
if [ -d "$src" ]; then
  mkdir -p "$dst"
  for f in "$src"/*; do
    b=$(basename "$f")
    [ "$dst/$b" -nt "$f" ] || cp "$f" "$dst/$b"
  done
else
  echo "setup: $src not found; the demo's default model will be missing" >&2
fi
