#!/usr/bin/env bash
# Every GPU check greenai has, for a session that is lent an NVIDIA GPU, in two parts that
# each fit in a 10-minute call. Results land in $OUT (or ./gpu-results): copy their tables
# into the docs pages named below, with the device and the date.
#
#   bash benchmarks/gpu_session.sh 1   # sensor, accuracy, bench --check-gpu, native, NCCL (~7.5 min)
#   bash benchmarks/gpu_session.sh 2   # process attribution, FLOPs on CUDA, compression sweep, bench full suite
#   bash benchmarks/gpu_session.sh 3   # serving: greenai bench serve on vLLM (GPU) with the tiny model, proxy overhead (~8 min)
#
# Packages the GPU image lacks travel as wheels in .whl/ (codecarbon for its data files,
# torchao for the compression rows); see docs/dev-notes.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 GREENAI_NO_PROGRESS=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
python3 setup.py build_ext --inplace -q >"$out/build.log" 2>&1 || echo "native build failed: see build.log"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
step() {  # name, then the command; a failing check never stops the others
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s"
  tail -n 40 "$out/$name.log"
}
case "${1:-1}" in
  1)
    # First: does the energy counter integrate every instant? (~75 s; issue 17 part 4)
    step sensor python3 benchmarks/gpu_accuracy.py --sensor-only --out "$out/sensor.md"  # docs/accuracy.md
    # accuracy.md includes "Calibration against the counter" (issue 23): coverage and width
    step accuracy python3 benchmarks/gpu_accuracy.py --skip-sensor --out "$out/accuracy.md"  # docs/accuracy.md
    step bench-check python3 -m greenai bench --check-gpu --device cuda:0 --no-store   # docs/benchmarks.md
    # Do the GPUs update their counters in phase? (~5 s; devices add linearly until known)
    step phases python3 benchmarks/gpu_phases.py --seconds 3 --out "$out/phases.md"  # docs/accuracy.md
    step native python3 benchmarks/gpu_native_sampler.py --seconds 5 --load --out "$out/native.md"  # docs/sampling.md
    step nccl python3 -m torch.distributed.run --nproc_per_node=1 \
      benchmarks/gpu_distributed_nccl.py --out "$out/nccl.md"                        # docs/distributed.md
    ;;
  2)
    step attribution python3 benchmarks/gpu_attribution.py --seconds 10 --out "$out/attribution.md"  # docs/devices.md
    step shared python3 benchmarks/gpu_shared.py --seconds 8 --out "$out/shared.md"  # docs/cluster.md
    step flops-cuda python3 -m pytest tests/flops/test_flops_cuda.py -ra -q -p no:cacheprovider  # docs/efficiency.md
    step compression python3 benchmarks/gpu_compression.py --out "$out/compression.md"  # docs/compression.md
    step bench-full python3 -m greenai bench --suite full --device cuda:0 --no-store --json
    ;;
  3)
    # Energy per request and per token on a real vLLM server on the GPU (docs/serving.md).
    # Needs vllm importable (the GPU image's, or wheels in .whl/); the model is built here.
    if python3 -c "import vllm, aiohttp" >/dev/null 2>&1; then
      step tiny-llm python3 tests/serving/make_tiny_llm.py /tmp/tiny-llm
      step serve python3 -m greenai bench serve --upstream http://127.0.0.1:18765 \
        --concurrency 1,4,16,64 --warmup 5 --duration 30 --baseline 5 \
        --json "$out/serve.json" --html "$out/serve.html" -- \
        python3 -m vllm.entrypoints.openai.api_server --model /tmp/tiny-llm --host 127.0.0.1 \
        --port 18765 --max-model-len 256 --dtype bfloat16 --gpu-memory-utilization 0.3  # docs/serving.md
    else
      echo "=== serve: vllm or aiohttp is not importable here: nothing run"
    fi
    # The proxy's added latency and throughput at 64 streams on a machine with cores to spare
    # (its targets are asserted there; a shared 2-core VM cannot tell): docs/serving.md.
    if python3 -c "import aiohttp, pytest_benchmark" >/dev/null 2>&1; then
      step proxy-overhead python3 -m pytest benchmarks/test_serving_proxy.py -s -q \
        -p no:cacheprovider -p no:randomly  # docs/serving.md "What the proxy adds"
    else
      echo "=== proxy-overhead: aiohttp or pytest-benchmark is not importable here: nothing run"
    fi
    ;;
  *) echo "usage: gpu_session.sh 1|2|3" >&2; exit 2 ;;
esac
