"""The on-target launch check (apps/launch_check.py, `trt_seg_check_on_target --launch`), with real nodes: the
node started as the launch file starts it comes up (its status on /diagnostics) and stops cleanly on SIGINT; a node
that cannot start is a FAIL with its own error in the report. `ros2 launch` itself is not installable here: on the
target the same check runs `ros2_launch_argv`."""

from __future__ import annotations

from pathlib import Path

from node_harness import launch_command
from tiny_model import write_tiny_model

from trt_segmentation.apps.launch_check import check_launch, ros2_launch_argv


def test_the_argv_is_the_packages_launch_with_the_engine_folder_precision_and_model(tmp_path: Path) -> None:
    argv = ros2_launch_argv(tmp_path, "fp16", "swiftnet_pyr_rn34")
    assert argv[:4] == ["ros2", "launch", "trt_segmentation", "segmentation.launch.py"]
    assert {f"engine_dir:={tmp_path.resolve()}", "precision:=fp16", "model:=swiftnet_pyr_rn34"} <= set(argv)


def test_a_node_that_comes_up_passes_and_one_that_cannot_start_fails_with_its_error(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "engines" / "swiftnet_ss_rn18_64x128_fp32.onnx", 64, 128)
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(tmp_path / "engines")})
    result = check_launch(argv, env, timeout_s=60)
    assert result.came_up and result.exit_code == 0, result.summary()
    assert result.summary().startswith("launch: PASS, the node came up in")

    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(tmp_path / "empty")})
    (tmp_path / "empty").mkdir()
    result = check_launch(argv, env, timeout_s=60)
    assert not result.came_up and result.exit_code == 1, result.summary()
    assert "launch: FAIL" in result.summary() and "cannot start" in result.log_tail, result.summary()
