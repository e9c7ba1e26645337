"""tools/check_on_target.py here (no TensorRT): runs the ONNX Runtime reference and the TensorRT-RTX parse check,
then says exactly that TensorRT is needed (exit code 2); a missing precision names the command that makes it.
It imports neither torch nor onnx (it must run on a Jetson without them)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from node_harness import REPO, small_model_dir


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory, random_model_factory):
    return small_model_dir(tmp_path_factory, random_model_factory, "target_models")


def test_runs_up_to_tensorrt_and_says_so(engine_dir) -> None:
    tool = REPO / "tools" / "check_on_target.py"
    result = subprocess.run(
        [sys.executable, "-c",
         "import runpy, sys; sys.argv = sys.argv[1:]; code = 0\n"
         "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
         "except SystemExit as exc:\n    code = exc.code\n"
         "heavy = sorted({'torch', 'onnx', 'modelopt', 'rclpy'} & set(sys.modules))\n"
         "print('HEAVY', heavy); sys.exit(code)",
         str(tool), "--engine-dir", str(engine_dir), "--size", "256x512", "--precision", "fp32", "int8",
         "--image-count", "2"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    out = result.stdout
    assert result.returncode == 2, out + result.stderr
    assert "tensorrt missing" in out
    assert "fp32      | NEEDS-TENSORRT" in out
    assert "ONNX Runtime reference ran" in out and "TensorRT-RTX parse+build here: ok" in out
    assert "int8      | MISSING" in out and "--precision int8" in out
    assert "Stopped where TensorRT is needed" in out and "result: INCOMPLETE" in out
    assert "HEAVY []" in out


def test_help_explains_the_tool() -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "check_on_target.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "pass/fail table" in result.stdout and "--precision" in result.stdout


def test_a_small_batch_variant_gets_its_own_row(tmp_path, random_model_factory) -> None:
    """A batch-3 variant beside the batch-1 file: found by name, ONNX Runtime's batch rows compared with the batch-1
    frames (equal: the same network), then the row stops where TensorRT is needed (it builds and compares the
    batch-3 engine on the target)."""
    from trt_segmentation.apps.target_check import (
        batch_variants,
        batches,
        check_batch,
        format_table,
        sample_images,
    )
    from trt_segmentation.artifacts import Precision, artifact_path
    from trt_segmentation.engine.tensorrt_adapter import real_tensorrt
    from trt_segmentation.export import ExportOptions, export_onnx

    if real_tensorrt() is not None:
        pytest.skip("TensorRT is installed: the target runs this row for real (tools/check_on_target.py)")
    model = random_model_factory(seed=9)
    for batch in (1, 3):
        export_onnx(model, artifact_path(tmp_path, "swiftnet_ss_rn18", 64, 128, "fp32", ".onnx", batch),
                    ExportOptions(64, 128, batch=batch))
    (tmp_path / "swiftnet_ss_rn18_64x128_b2_fp16.onnx").write_bytes(b"another precision")
    assert batch_variants(tmp_path, "swiftnet_ss_rn18", 64, 128, "fp32") == [3]
    assert batch_variants(tmp_path, "swiftnet_ss_rn18", 64, 128, "fp16") == [2]
    assert batch_variants(tmp_path, "swiftnet_ss_rn18", 32, 64, "fp32") == []
    images = sample_images(4, 64, 128)
    assert [len(g) for g in batches(images, 3)] == [3, 3] and batches(images, 3)[1][2] is images[1]
    row = check_batch(tmp_path, "swiftnet_ss_rn18", 64, 128, Precision.FP32, 3, images, build=False, min_agreement=0.999,
                      log=lambda text: None)
    assert row.status == "NEEDS-TENSORRT" and row.path == "b3" and row.batch == 3
    assert row.engine.endswith("swiftnet_ss_rn18_64x128_b3_fp32.engine")
    assert any("frame by frame: 100.0000% equal" in note for note in row.notes), row.notes
    table = format_table([row])
    assert "fp32      | NEEDS-TENSORRT | b3" in table and "fp32 b3: ONNX Runtime batch reference ran" in table
    missing = check_batch(tmp_path, "swiftnet_ss_rn18", 64, 128, Precision.FP32, 4, images, build=False, min_agreement=0.999,
                          log=lambda text: None)
    assert missing.status == "MISSING" and "b4_fp32.onnx is missing" in missing.notes[0]


def test_exit_code_passes_skipped_rows_and_reports_missing_or_failed_ones() -> None:
    """A SKIPPED row (not checked here by design) does not make a target where every other row passes incomplete;
    a MISSING file gives 2, a FAIL 1. (Batch rows built the implicit way are no longer skipped: issue 18, see
    test_vehicle_build.py::test_defect9_*.)"""
    from trt_segmentation.apps.target_check import CheckRow, exit_code, format_table
    from trt_segmentation.artifacts import Precision

    row = CheckRow(Precision.MIXED, "SKIPPED", "b3", "m_b3_mixed.onnx", "m_b3_mixed.engine", notes=["not here"], batch=3)
    assert "mixed b3: not here" in format_table([row])
    passed = CheckRow(Precision.FP16, "PASS")
    assert exit_code([passed, row]) == 0
    assert exit_code([row]) == 2  # nothing checked at all is not a pass
    assert exit_code([passed, row, CheckRow(Precision.INT8, "MISSING")]) == 2
    assert exit_code([passed, row, CheckRow(Precision.INT8, "FAIL")]) == 1
