#!/usr/bin/env bash
# The whole GPU check in one call of a GPU machine that reaches no package registry: install the
# carried wheelhouse, check that every dependency imports (one line and exit 2 if not), then run
# analysis.gpu_check, printing every figure as it goes and writing its JSON and log under $OUT.
#
# Here, once (PyPI reachable):  python -m analysis.wheelhouse build .whl
# There, from the repo root:    launchers/gpu_check.sh [analysis.gpu_check's flags]
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg WANDB_MODE=disabled
OUT=${OUT:-bench_results}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/musweep-site}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"

if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "error: no wheels in $WHEELS; build them where pip reaches PyPI: python -m analysis.wheelhouse build $WHEELS"
    exit 2
fi
start=$(date +%s)
if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl >"$OUT/install.log" 2>&1; then
    echo "error: the wheelhouse did not install: $(tail -n 1 "$OUT/install.log")"
    exit 2
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -m analysis.wheelhouse imports || exit 2
echo "wheelhouse installed and imported in $(( $(date +%s) - start )) s"
"$PYTHON" -m analysis.gpu_check --out "$OUT/gpu_check.json" "$@" 2>&1 | tee "$OUT/gpu_check.log"
