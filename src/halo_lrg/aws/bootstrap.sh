#!/bin/bash
# halo-lrg @VERSION@ bootstrap: the pinned compiled dependencies for the executors' Python, on
# every node. The halo_lrg wheel itself travels with spark-submit --py-files (pure Python).
#
# Network: with a wheelhouse (WHEELHOUSE set below) the packages come from S3 only, so a
# private subnet needs just an S3 gateway endpoint; without one, pip downloads them from PyPI
# (pypi.org, files.pythonhosted.org), which needs a public subnet or a NAT gateway. dnf runs
# only if the Python below is missing, or on Graviton without a wheelhouse, and reads the
# Amazon Linux repositories.
set -euxo pipefail
PYTHON=@PYTHON@
PACKAGES=(@PACKAGES@)
WHEELHOUSE=@WHEELHOUSE@
REGION=@REGION@

name="$(basename "$PYTHON")"
if ! command -v "$PYTHON" >/dev/null; then
  sudo dnf install -y "$name" "$name-pip"
fi
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  sudo dnf install -y "$name-pip"
fi
if [ -n "$WHEELHOUSE" ]; then
  # Pinned wheels for this Python and x86_64, uploaded by `halo-lrg submit --wheelhouse`.
  wheels="$(mktemp -d /tmp/halo-lrg-wheelhouse.XXXXXX)"
  aws s3 cp --recursive --only-show-errors --region "$REGION" "$WHEELHOUSE" "$wheels"
  sudo "$PYTHON" -m pip install --no-cache-dir --no-index --find-links "$wheels" "${PACKAGES[@]}"
  rm -rf "$wheels"
else
  # fitsio ships manylinux x86_64 wheels only: Graviton (aarch64) nodes compile it.
  if [ "$(uname -m)" = "aarch64" ]; then
    sudo dnf install -y gcc "$name-devel"
  fi
  sudo "$PYTHON" -m pip install --no-cache-dir "${PACKAGES[@]}"
fi
"$PYTHON" -c "import numpy, pandas, pyarrow, fitsio, boto3; print('deps ok', fitsio.__version__)"
