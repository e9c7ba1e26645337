"""The /dev/shm check at start (io_mode process): Docker's default 64 MB gives one FATAL line with the shortfall
and the fix, a little short gives fewer ring slots and a WARN, enough gives the rings as configured; the transport's
segment size is read from the Fast DDS profile the environment names. The node applies it: started with a
max_input_pixels whose rings do not fit this machine's free /dev/shm as configured, it logs the WARN and runs with
fewer slots. (No small filesystem can be mounted without root here, so the 64 MB case is checked on the
function, with the numbers of a 64 MB container.)"""

from __future__ import annotations

import pytest
from node_harness import PROFILE, STATUS, launch_command, listener, node_process

from trt_segmentation.node.camera_io.frame_ring import SHM_DIR, slot_size
from trt_segmentation.node.camera_io.shm_budget import DEFAULT_SEGMENT_BYTES, free_bytes, plan_rings, segment_bytes
from trt_segmentation.node.params import params_from_dict

MB = 1024 * 1024


def test_docker_default_64mb_is_one_fatal_line_with_the_shortfall_and_the_fix() -> None:
    slot = slot_size(params_from_dict({}).max_input_pixels)  # the default: 96 MB slots
    plan = plan_rings(64 * MB, 1, slot, 5, 3, DEFAULT_SEGMENT_BYTES)
    assert plan.slots == 0 and not plan.warning
    assert "\n" not in plan.fatal
    assert "/dev/shm has 64 MB free, 352 MB short of the 416 MB" in plan.fatal, plan.fatal
    assert "docker run --shm-size=640m (or --ipc=host)" in plan.fatal, plan.fatal


def test_a_little_short_gives_fewer_slots_with_a_warning_and_enough_gives_all() -> None:
    slot = slot_size(1024 * 2048)  # 6 MB
    segment = 64 * MB
    need = 3 * segment + 2 * 6 * slot  # two cameras, six slots each
    assert plan_rings(need, 2, slot, 6, 3, segment).slots == 6
    short = plan_rings(need - 1, 2, slot, 6, 3, segment)
    assert short.slots == 5 and not short.fatal and "each ring gets 5 slots instead" in short.warning
    assert plan_rings(3 * segment + 2 * 3 * slot, 2, slot, 6, 3, segment).slots == 3
    assert plan_rings(3 * segment + 2 * 3 * slot - 1, 2, slot, 6, 3, segment).fatal


def test_segment_size_comes_from_the_profile_the_environment_names(tmp_path) -> None:
    assert segment_bytes({"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)}) == 64 * MB
    assert segment_bytes({}) == DEFAULT_SEGMENT_BYTES
    udp_only = tmp_path / "udp.xml"
    udp_only.write_text('<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"><transport_descriptors>'
                        "<transport_descriptor><transport_id>u</transport_id><type>UDPv4</type>"
                        "</transport_descriptor></transport_descriptors></profiles>")
    assert segment_bytes({"FASTRTPS_DEFAULT_PROFILES_FILE": str(udp_only)}) == 0


def test_node_falls_back_to_fewer_slots_when_the_rings_do_not_fit(engine_dir, tmp_path) -> None:
    """onnxruntime: one frame in flight, so 5 slots as configured, 3 at least; max_input_pixels is chosen so that
    4 fit in this machine's free /dev/shm (the rings are sparse files: nothing is written to them here)."""
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/shm/image"},
                               extra={"diagnostics_period": "0.3"})
    transport = 2 * segment_bytes(env)
    slot = int((free_bytes(SHM_DIR) - transport) / 4.5)
    pixels = slot // 3
    if slot < 4 * MB:
        pytest.skip(f"/dev/shm has {free_bytes(SHM_DIR) // MB} MB free: too little for the transport and four rings")
    if pixels > 1 << 31:
        pytest.skip(f"/dev/shm has {free_bytes(SHM_DIR) // MB} MB free: more than max_input_pixels' range can fill")
    argv += ["-p", f"max_input_pixels:={pixels}"]
    with node_process(argv, env, tmp_path / "node.log") as node, listener() as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
    warnings = [line for line in node.log().splitlines() if "each ring gets" in line]
    assert len(warnings) == 1 and "WARN" in warnings[0] and "each ring gets 4 slots instead" in warnings[0], warnings
    assert "--shm-size=" in warnings[0] and node.proc.returncode == 0
