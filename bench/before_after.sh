#!/usr/bin/env bash
# Two revisions of lang-sam, measured alternately in one run, so that a refactor's figures carry the
# same machine noise on both sides: bench_pipeline (vit_b:swin_t), bench_amg (vit_b, Meta's defaults
# and "keep all") and bench_clicks (vit_b), fp32, each measurement in its own process, the reference
# once per benchmark. Each revision is checked out into a temporary worktree and run with this
# checkout's Python environment.
#
#     bash bench/before_after.sh e145628 HEAD      # from the repository root, with .venv built
set -eu
BEFORE=${1:?give the revision before}; AFTER=${2:?give the revision after}
PY=${PYTHON:-$(pwd)/.venv/bin/python}
TREES=$(mktemp -d)
trap 'git worktree remove --force "$TREES/before" 2>/dev/null; git worktree remove --force "$TREES/after" 2>/dev/null; rm -rf "$TREES"' EXIT
git worktree add -q --detach "$TREES/before" "$BEFORE"
git worktree add -q --detach "$TREES/after" "$AFTER"
worker() { (cd "$TREES/$1" && PYTHONPATH="$TREES/$1" "$PY" "${@:2}" 2>/dev/null | tail -1); }
echo "before: $(git rev-parse --short "$BEFORE"), after: $(git rev-parse --short "$AFTER"), $(date -u)"
echo "== bench_pipeline vit_b:swin_t fp32 (first_s, second_s)"
echo "reference: $(worker after bench/bench_pipeline.py --worker reference vit_b:swin_t float32)"
for round in 1 2; do
  for tree in before after; do
    echo "lang_sam $tree: $(worker $tree bench/bench_pipeline.py --worker lang_sam vit_b:swin_t float32)"
  done
done
echo "== bench_amg vit_b fp32 (seconds, peak_mib, masks)"
echo "reference defaults: $(worker after bench/bench_amg.py --worker reference vit_b float32 defaults)"
for setting in defaults "keep all"; do
  for tree in before after; do
    echo "lang_sam $setting $tree: $(worker $tree bench/bench_amg.py --worker lang_sam vit_b float32 "$setting")"
  done
done
echo "== bench_clicks vit_b"
for round in 1 2; do
  for tree in before after; do
    echo "-- $tree"
    (cd "$TREES/$tree" && PYTHONPATH="$TREES/$tree" "$PY" bench/bench_clicks.py 2>/dev/null | tail -3)
  done
done
