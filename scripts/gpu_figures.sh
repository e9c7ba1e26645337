#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md and docs/node.md, on a CUDA machine WITHOUT internet (the lent device):
# installs the carried wheels (.whl/ros/*.whl: ROS 2 Kilted cp312; .whl/*: pycuda sdist + its pure deps), then
#   1. the GPU tests (CUDA slots, CUDA-graph executor)            -> $OUT/gpu_slots.json, gpu_tests.log
#   2. tools/benchmark.py --torch --executor (eager, CUDA graph, the node's executor; one run)   -> bench_torch.md
#   3. tools/benchmark_node.py with the torch backend (FP16 CUDA graph) at several rates and slot counts
# Usage: OUT=/some/dir bash scripts/gpu_figures.sh MODE, MODE one of quick|node|soak|multicam|io|floors|batchprofile|
# batchnode|batchwait|publishgil|zerocopy: quick = 1-3 (about 6 minutes), node = only 3, soak = the node's ceiling (200 Hz camera, 1 and 2 slots) and
# 5 minutes at 30 Hz (RSS after warm-up), multicam = the GPU tests, then 4 cameras through one batched node vs 4
# single-camera nodes at 1024x2048 and 512x1024 (issue #12; about 8 minutes); io = issue #16 (about 9 minutes, random
# weights, io_mode process): the GPU tests, one camera 1024x2048 offered 200 Hz against the relay (io_mode process, then
# inprocess; py-spy --gil per process each), 4 cameras at saturation (1024x2048 at 100 Hz, 512x1024 at 400 Hz) and 8
# cameras of 512x1024, batched node vs single-camera nodes; floors = only io's multi-camera runs (the pycuda build, no
# GPU tests, about 7 minutes), each with N raw-CDR relays first (the transport floor of N cameras), plus 4 cameras of
# 256x512, after one camera of 1024x2048 at 10 Hz (io_mode process: the age budget); batchprofile = floors' two 4-camera
# runs with py-spy --gil on the batched node's processes, then the torch backend alone (harness/backend_throughput.py:
# batch 4 vs 4 processes; about 8 minutes); batchnode = only those two runs (about 4 minutes; on a warm machine of an
# earlier call pycuda and the ROS wheels are not installed again); batchwait = 4 cameras of 512x1024 at 400 and 800 Hz,
# 4 of 1024x2048 at 200 Hz, 8 of 512x1024, each with the batched node's converter waits (about 8 minutes);
# publishgil = 4 cameras of 512x1024 at 400 Hz, then harness/publish_gil.py (rclpy's publish vs the node's
# ImagePublisher, 1024x2048 and 512x1024 labels), then 4 cameras of 1024x2048 at 200 Hz; with BASELINE=<folder> set,
# each camera run is followed by the same run with the files under that folder copied over the tree (e.g. the
# node's modules of an earlier commit; restored afterwards); then the first run once more with py-spy --gil (about
# 9 minutes; RUNS="4 512x1024 400" leaves out the 1024x2048 pair: about 6 minutes); zerocopy = issue #31 (frames
# uploaded straight from the page-locked camera rings): the GPU tests (test_gpu_ring_upload.py, test_gpu_slots.py),
# then per run of RUNS (default "4 1024x2048 100,4 512x1024 400") this tree and, with BASELINE set, the baseline
# right after, then the backend alone (harness/backend_throughput.py, frames copied vs from rings) at each size,
# then 8 cameras of 512x1024 at 400 Hz while time is left and RUNS is unset (about 9 minutes; the GPU tests: the
# ring, row and order ones; GPU_TESTS=0 leaves them out, ALONE="<sizes>" picks the backend-alone sizes).
# At most 8 files land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to a folder for the results}
MODE=${1:-quick}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1 ROS_DISTRO=kilted
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-37}
# the image's python3 is itself a venv holding torch: a venv of our own (the ROS wheels need one: .pth set-up)
# that also sees torch's site-packages through a .pth line
T0=$SECONDS
case $MODE in io|floors|batchprofile|batchnode|batchwait|publishgil|zerocopy) IOLIKE=1 ;; *) IOLIKE= ;; esac  # random weights, io_mode process
if [ -f /tmp/site/pycuda/__init__.py ] && [ -x /tmp/rv/bin/python ]; then  # a warm machine of an earlier call
  ( echo "pycuda build exit 0 (built by an earlier call)" | tee /tmp/pycuda_build.log > "$OUT/pycuda_build.log" ) &
  early_build=$!
elif [ -n "$IOLIKE" ]; then  # the pycuda build first: the nodes' CUDA slots wait for it
  ( CUDA_ROOT=/usr/local/cuda python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site \
      .whl/pycuda-*.tar.gz .whl/*.whl > /tmp/pycuda_build.log 2>&1; echo "pycuda build exit $?" >> /tmp/pycuda_build.log ) &
  early_build=$!
fi
python3 -m venv /tmp/rv
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
echo "$site" > /tmp/rv/lib/python3.12/site-packages/torch_venv.pth
/tmp/rv/bin/python -c 'import rclpy' 2>/dev/null || /tmp/rv/bin/pip install -q --no-index --no-deps --no-compile \
    .whl/ros/*.whl || exit 1
[ -n "$IOLIKE" ] || [ -n "${early_build:-}" ] || ( CUDA_ROOT=/usr/local/cuda /tmp/rv/bin/pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site \
    .whl/pycuda-*.tar.gz .whl/*.whl > "$OUT/pycuda_build.log" 2>&1; echo "pycuda build exit $?" >> "$OUT/pycuda_build.log" ) &
build=$!
[ -n "${early_build:-}" ] && build=$early_build
export PYTHONPATH=/tmp/site:$PWD
PY=/tmp/rv/bin/python
LOG=$OUT/run.log
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c 'import torch, rclpy, sys; print("python", sys.version.split()[0], "torch", torch.__version__)'; } | tee "$LOG"
if [ -n "$IOLIKE" ]; then
  ckpt=/tmp/random_swiftnet.pt  # random weights: the node's timing does not depend on them
  $PY -c 'import sys, torch; from trt_segmentation.models import build_model; torch.manual_seed(0)
torch.save(build_model("single_scale", "resnet18").state_dict(), sys.argv[1])' "$ckpt"
  python3 -m pip install -q --no-index --no-deps --target /tmp/spy .whl/spy/*.whl && export PATH=/tmp/spy/bin:$PATH
  wait $build; tail -1 /tmp/pycuda_build.log | tee -a "$LOG"
  if [ "$MODE" = io ]; then
    echo "==> $((SECONDS - T0)) s: GPU tests" | tee -a "$LOG"
    GPU_SLOTS_REPORT=$OUT/gpu_slots.json timeout 150 $PY -m pytest -q -p no:cacheprovider test/test_gpu_slots.py 2>&1 \
        | tail -8 | tee -a "$LOG"
  elif [ "$MODE" = zerocopy ] && [ "${GPU_TESTS:-1}" = 1 ]; then
    echo "==> $((SECONDS - T0)) s: GPU tests" | tee -a "$LOG"
    timeout 150 $PY -m pytest -q -p no:cacheprovider test/test_gpu_ring_upload.py test/test_gpu_slots.py \
        -k "ring or rows or order" 2>&1 \
        | tee "$OUT/gpu_tests.log" | tail -8 | tee -a "$LOG"
  fi
  single() {  # io_mode [rate [profile-seconds]]: one camera 1024x2048 (200 Hz), relay then node, py-spy (5 s) on
    local rate=${2:-200} profile=${3:-5} dir=/tmp/bench/single_$1_${2:-200}  # every node process
    echo "==> $((SECONDS - T0)) s: one camera, $rate Hz, io_mode $1" | tee -a "$LOG"
    timeout -s INT -k 15 110 $PY tools/benchmark_node.py --size 1024x2048 --rate "$rate" --seconds 8 --floor-seconds 5 \
        --backend torch --precision fp16 --checkpoint "$ckpt" --engine-size 1024x2048 --slots 2 --param "io_mode=$1" \
        --profile-seconds "$profile" --out "$dir" 2>&1 | grep -v "camera: [0-9]" | tail -14 | tee -a "$LOG"
    cat "$dir/node_benchmark.md" >> "$OUT/node_bench.md"; echo >> "$OUT/node_bench.md"
    [ -f "$dir/gil_profile.md" ] && { cat "$dir/gil_profile.md" >> "$OUT/gil_profile.md"; echo >> "$OUT/gil_profile.md"; }
    grep -hE "Traceback|Error|error" "$dir"/*.log | head -5 >> "$OUT/node_errors.txt"
  }
  multi() {  # cameras size rate seconds profile-seconds
    local n=$1 size=$2 rate=$3 seconds=$4 profile=$5
    local dir=/tmp/bench/multi_${n}_${size}_${rate}  # one folder per run: batchwait runs a size at two rates
    echo "==> $((SECONDS - T0)) s: $n cameras of $size at $rate Hz each, io_mode process" | tee -a "$LOG"
    timeout -s INT -k 10 150 $PY tools/benchmark_node.py --camera-count "$n" --size "$size" --rate "$rate" \
        --seconds "$seconds" --backend torch --precision fp16 --checkpoint "$ckpt" --engine-size "$size" \
        --param io_mode=process --profile-seconds "$profile" --out "$dir" 2>&1 | tail -18 | tee -a "$LOG"
    cat "$dir/multi_camera_benchmark.md" >> "$OUT/multi_camera.md"; echo >> "$OUT/multi_camera.md"
    cat "$dir/gil_profile_batched.md" >> "$OUT/gil_profile.md" 2>/dev/null
    grep -hE "Traceback|Error|error" "$dir"/*.log | head -5 >> "$OUT/node_errors.txt"
  }
  swap() {  # on|off: the baseline's files over the tree (the tree's kept as *.now), or the tree's back
    (cd "$BASELINE" && find . -type f) | while read -r f; do
      if [ "$1" = on ]; then cp "$f" "$f.now"; cp "$BASELINE/$f" "$f"; else mv "$f.now" "$f"; fi
    done
    echo "==> $((SECONDS - T0)) s: baseline files $1: $(cd "$BASELINE" && find . -type f | tr '\n' ' ')" \
        | tee -a "$LOG" "$OUT/multi_camera.md"
  }
  if [ "$MODE" = zerocopy ]; then  # this tree, then the baseline, per run; the backend alone; 8 cameras
    IFS=, read -ra runs <<< "${RUNS:-4 1024x2048 100,4 512x1024 400}"
    for run in "${runs[@]}"; do
      [ $((SECONDS - T0)) -lt 380 ] || break
      multi $run 5 0
      if [ -n "${BASELINE:-}" ] && [ $((SECONDS - T0)) -lt 450 ]; then swap on; multi $run 5 0; swap off; fi
    done
    for size in ${ALONE-1024x2048 512x1024}; do
      [ $((SECONDS - T0)) -lt 520 ] || break
      echo "==> $((SECONDS - T0)) s: the torch backend alone, $size" | tee -a "$LOG"
      timeout 60 $PY -m harness.backend_throughput --checkpoint "$ckpt" --size $size --batch 4 --seconds 3 2>&1 \
          | tail -12 | tee -a "$OUT/backend_alone.md" "$LOG"
    done
    [ $((SECONDS - T0)) -lt 440 ] && [ -z "${RUNS:-}" ] && multi 8 512x1024 400 5 0
  elif [ "$MODE" = batchprofile ] || [ "$MODE" = batchnode ]; then  # py-spy --gil on the batched node at saturation
    multi 4 512x1024 400 6 4
    multi 4 1024x2048 100 8 4
    [ "$MODE" = batchprofile ] && for size in 512x1024 1024x2048; do  # then the backend alone
      echo "==> $((SECONDS - T0)) s: the torch backend alone, $size" | tee -a "$LOG"
      timeout 120 $PY -m harness.backend_throughput --checkpoint "$ckpt" --size $size --batch 4 --seconds 6 2>&1 \
          | tail -9 | tee -a "$OUT/backend_alone.md" "$LOG"
    done
  elif [ "$MODE" = batchwait ]; then  # the converter's waits per batch at the offered rates so far and at rates
    multi 4 512x1024 400 5 0        # above what the batched node can take (the backend alone: ~485 batches/s of 4 at
    multi 4 512x1024 800 5 0        # 512x1024, ~142 at 1024x2048 on an H100), then 8 cameras
    [ $((SECONDS - T0)) -lt 380 ] && multi 4 1024x2048 200 5 0
    [ $((SECONDS - T0)) -lt 480 ] && multi 8 512x1024 400 5 0
  elif [ "$MODE" = publishgil ]; then  # the label publishing outside the interpreter lock, then before/after
    IFS=, read -ra runs <<< "${RUNS:-4 512x1024 400,4 1024x2048 200}"  # RUNS="4 512x1024 400": a shorter call
    for run in "${runs[@]}"; do  # each size: this tree, then the baseline right after
      [ $((SECONDS - T0)) -lt 420 ] || break
      multi $run 5 0
      if [ -n "${BASELINE:-}" ] && [ $((SECONDS - T0)) -lt 480 ]; then swap on; multi $run 5 0; swap off; fi
      [ "$run" = "4 512x1024 400" ] && for size in 1024x2048 512x1024; do  # the publish paths alone
        timeout 60 $PY -m harness.publish_gil --size $size --seconds 3 2>&1 | tail -8 | tee -a "$OUT/publish_gil.md" "$LOG"
      done
    done
    [ $((SECONDS - T0)) -lt 470 ] && multi 4 512x1024 400 5 4
  elif [ "$MODE" = floors ]; then
    single process 10 0
    multi 4 1024x2048 100 8 0
    multi 4 512x1024 400 6 0
    [ $((SECONDS - T0)) -lt 360 ] && multi 8 512x1024 400 5 0
    [ $((SECONDS - T0)) -lt 470 ] && multi 4 256x512 1000 4 0
  else
    single process
    single inprocess
    [ $((SECONDS - T0)) -lt 360 ] && multi 4 1024x2048 100 8 4
    [ $((SECONDS - T0)) -lt 420 ] && multi 4 512x1024 400 6 0
    [ $((SECONDS - T0)) -lt 460 ] && multi 8 512x1024 400 5 0
  fi
  echo "==> $((SECONDS - T0)) s: done" | tee -a "$LOG"; ls "$OUT"
  exit 0
fi
wait $build; tail -1 "$OUT/pycuda_build.log" | tee -a "$LOG"; mv "$OUT/pycuda_build.log" /tmp/
ckpt=trt_segmentation/assets/swiftnet_ss_rn18_streets.pt
node_bench() {  # name rate seconds slots [extra args]
  local name=$1 rate=$2 seconds=$3 slots=$4; shift 4
  echo "==> node benchmark $name: ${rate} Hz, ${seconds} s, ${slots} slot(s)" | tee -a "$LOG"
  $PY tools/benchmark_node.py --size 1024x2048 --rate "$rate" --seconds "$seconds" --backend torch --precision fp16 \
      --checkpoint "$ckpt" --engine-size 1024x2048 --slots "$slots" --out "/tmp/bench/$name" "$@" 2>&1 \
      | grep -v "camera: [0-9]" | tail -16 | tee -a "$LOG"
  cat "/tmp/bench/$name/node_benchmark.md" >> "$OUT/node_bench.md"; echo >> "$OUT/node_bench.md"
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({sys.argv[2]: d}))' \
      "/tmp/bench/$name/node_benchmark.json" "$name" >> "$OUT/node_bench.jsonl"
  grep -E "cannot|Traceback|error" "/tmp/bench/$name/node.log" | head -5 | tee -a "$LOG"
}
if [ "$MODE" = soak ]; then  # the most the node sustains (camera at 200 Hz), then 5 minutes at 30 Hz
  node_bench n200_s1 200 10 1 --floor-seconds 5
  node_bench n200_s2 200 10 2 --floor-seconds 5
  node_bench n30_s2_5min 30 300 2 --floor-seconds 5
  cp /tmp/bench/n30_s2_5min/node_benchmark.png "$OUT/node_benchmark_soak.png"
  exit 0
fi
if [ "$MODE" = multicam ]; then  # one batched node (batch 4) vs four single-camera nodes, same run, two sizes
  GPU_SLOTS_REPORT=$OUT/gpu_slots.json $PY -m pytest -q -p no:cacheprovider test/test_gpu_slots.py 2>&1 | tail -5 \
      | tee -a "$LOG"
  for size in 1024x2048 512x1024; do
    echo "==> multi-camera benchmark: 4 cameras of $size, 60 Hz each" | tee -a "$LOG"
    $PY tools/benchmark_node.py --camera-count 4 --size "$size" --rate 60 --seconds 20 --backend torch --precision fp16 \
        --checkpoint "$ckpt" --engine-size "$size" --out "/tmp/bench/multi_$size" 2>&1 | tail -20 | tee -a "$LOG"
    cat "/tmp/bench/multi_$size/multi_camera_benchmark.md" >> "$OUT/multi_camera.md"; echo >> "$OUT/multi_camera.md"
  done
  exit 0
fi
if [ "$MODE" = quick ]; then
echo "==> GPU tests"
GPU_SLOTS_REPORT=$OUT/gpu_slots.json $PY -m pytest -q -p no:cacheprovider test/test_gpu_slots.py 2>&1 | tail -5 | tee -a "$LOG"
echo "==> benchmark: eager, CUDA graph, node executor"
$PY tools/benchmark.py --torch --executor --model swiftnet_ss_rn18 --size 1024x2048 --dtypes fp32 fp16 2>&1 | tee "$OUT/bench_torch.md" | tail -8
fi
node_bench n10_s2 10 15 2
node_bench n100_s2 100 10 2
node_bench n100_s1 100 10 1
[ "$MODE" = node ] && node_bench n100_s3 100 10 3
cp /tmp/bench/n10_s2/node_benchmark.png "$OUT/node_benchmark_gpu_10hz.png"
ls "$OUT"
