#!/usr/bin/env bash
# Pack .gpu/ for scripts/gpu/quality.sh and device.sh: scripts/gpu/pack.sh with the tiny model and data and the token exporter
# bundled, plus the proxy's token file (the whole train split and validation, tokenised by dawngrad; ~2 MB with xz),
# so the GPU machine spends no time tokenising. Run from the repository root after scripts/bootstrap.sh.
#   bash scripts/gpu/quality-pack.sh        → .gpu/ (≤ 64 MiB with the repository; carry ".gpu" to the device)
set -euo pipefail
[ -f pnpm-workspace.yaml ] || { echo "quality-pack.sh: run it from the repository root" >&2; exit 2; }
bash scripts/gpu/pack.sh --with-model scripts/recipe/export_tokens.ts
rm -f .gpu/recipe-tokens.json.gz # an older pack's
if ! { [ -f .gpu/recipe-tokens.json.xz ] && [ .gpu/recipe-tokens.json.xz -nt scripts/recipe/export_tokens.ts ]; }; then
  pnpm exec tsx scripts/recipe/export_tokens.ts --train all --out .gpu/recipe-tokens.json
  xz -T2 -6 -f .gpu/recipe-tokens.json # → .gpu/recipe-tokens.json.xz (search.py reads it as it is)
fi
echo "quality-pack.sh: .gpu/ is $(du -sh .gpu | cut -f1); the repository's tracked files $(git ls-files -z | du -ch --files0-from=- 2>/dev/null | tail -1 | cut -f1)"
