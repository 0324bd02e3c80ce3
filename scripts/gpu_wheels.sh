#!/usr/bin/env bash
# Wheels for scripts/gpu_check.sh, made here for the GPU machine's Python 3.12 (x86-64), into
# .whl/ (git-ignored), which `carry` takes along. The device image has torch, torchvision, numpy,
# scipy, scikit-image, scikit-learn, opencv, matplotlib, tqdm, pygments, typing-extensions and
# mypy-extensions; these are what `import saliency_widgets` (its widget module) and the
# benchmark's peers add, at the versions the project's venv uses. Pure-Python ones are built or
# fetched with `pip wheel` (grad-cam 1.5.7 is an sdist only); psygnal has compiled wheels, so its
# wheel for CPython 3.12 manylinux is downloaded. About 2 MB in all.
set -euo pipefail
PY=${PY:-python3}
rm -rf .whl && mkdir -p .whl
$PY -m pip wheel -q --no-deps -w .whl \
  captum==0.9.0 grad-cam==1.5.7 ttach==0.0.3 zennit==0.5.1 torchcam==0.5.0 saliency==0.2.1 \
  anywidget==0.11.0 ipywidgets==8.1.9 comm==0.2.3 traitlets==5.16.1 ipython==9.18.1
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl psygnal==0.16.1
ls .whl
du -sh .whl
