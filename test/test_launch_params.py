"""launch/segmentation.launch.py and config/: parsed (launch/launch_ros are not installable here), every launch
argument maps to a declared node parameter or to the namespace/remapping/params file, the yaml holds exactly the
declared parameters with their defaults, the transport profile is the 64 MB shared-memory one, and the node started
as the launch file starts it has the right name, topics, parameters (with descriptions and ranges) and QoS
warnings."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET

import pytest
import yaml
from node_harness import (
    LAUNCH_FILE,
    REPO,
    STATUS,
    launch_command,
    launch_constants,
    launch_function,
    listener,
    node_process,
    save_frames,
    start_publisher,
)

from trt_segmentation.node.diagnostics import WARN
from trt_segmentation.node.params import PARAMETER_NAMES, PARAMETERS, params_from_dict


def test_every_launch_argument_maps_to_a_node_parameter_or_launch_setting() -> None:
    c = launch_constants()
    for name in c["PARAMETER_ARGUMENTS"]:  # use_sim_time: the parameter every rclpy node declares itself
        assert name in PARAMETER_NAMES or name == "use_sim_time", f"launch argument {name} is no node parameter"
    assert set(c["OTHER_ARGUMENTS"]) == {"image_topic", "namespace", "params_file", "camera_topic"}
    assert {"precision", "backend", "model", "engine_dir", "publish_color", "publish_overlay", "cameras"} <= set(
        c["PARAMETER_ARGUMENTS"])
    tree = ast.parse(LAUNCH_FILE.read_text())
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    setup = functions["_setup"]
    calls = [n for n in ast.walk(setup) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    assert len(calls) == 1
    keywords = {k.arg: k.value for k in calls[0].keywords}
    assert {"parameters", "remappings", "additional_env", "namespace", "name", "executable"} <= set(keywords)
    # what the Node gets is built from the constants the harness uses to start the node here
    names = {n.id for n in ast.walk(setup) if isinstance(n, ast.Name)}
    assert {"PARAMETER_ARGUMENTS", "PROFILE_ENV", "IMAGE_REMAP_FROM", "TRANSPORT_PROFILE", "PARAMS_FILE"} <= names
    declared = {n.id for n in ast.walk(functions["generate_launch_description"]) if isinstance(n, ast.Name)}
    assert {"PARAMETER_ARGUMENTS", "OTHER_ARGUMENTS", "DeclareLaunchArgument"} <= declared
    assert c["EXECUTABLE"] in (REPO / "setup.py").read_text()


def test_boolean_arguments_become_boolean_parameters_and_use_sim_time_is_one() -> None:
    """The launch file turns "true"/"false" of BOOL_ARGUMENTS into bools (a string "true" would be refused by a
    bool parameter); the emulation passes them as -p name:=true, which rcl reads as a bool."""
    c = launch_constants()
    assert set(c["BOOL_ARGUMENTS"]) == {"publish_color", "publish_overlay", "use_sim_time"}
    assert set(c["BOOL_ARGUMENTS"]) <= set(c["PARAMETER_ARGUMENTS"])
    bool_params = {p.name for p in PARAMETERS if isinstance(p.default, bool)}
    assert set(c["BOOL_ARGUMENTS"]) - {"use_sim_time"} == bool_params & set(c["PARAMETER_ARGUMENTS"])
    setup = next(f for f in ast.parse(LAUNCH_FILE.read_text()).body if getattr(f, "name", "") == "_setup")
    assert "BOOL_ARGUMENTS" in {n.id for n in ast.walk(setup) if isinstance(n, ast.Name)}
    argv, _ = launch_command({"use_sim_time": "true"})
    assert "use_sim_time:=true" in argv


def test_cameras_argument_becomes_a_string_list_and_remappings() -> None:
    camera_list = launch_function("camera_list")
    assert camera_list("[front, left,right]") == camera_list("front,left,right") == ["front", "left", "right"]
    assert camera_list("") == camera_list("[]") == []
    argv, _ = launch_command({"cameras": "[front, rear]", "camera_topic": "/{camera}/image_raw"})
    assert "cameras:=[front,rear]" in argv
    remaps = [argv[i + 1] for i, a in enumerate(argv) if a == "-r"]
    assert {"~/front/image:=/front/image_raw", "~/rear/image/compressed:=/rear/image_raw/compressed"} <= set(remaps)
    assert not [r for r in launch_command({"cameras": "front"})[0] if r.startswith("~/front")]  # no camera_topic


def test_camera_topic_remaps_the_params_files_cameras_and_is_refused_without_cameras(tmp_path) -> None:
    params = tmp_path / "cameras.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"backend": "onnxruntime"}},
                                      "/vehicle/segmentation": {"ros__parameters": {"cameras": ["front", "rear"]}}}))
    assert launch_function("params_file_cameras")(str(params)) == ["front", "rear"]
    assert launch_function("params_file_cameras")(str(REPO / "config" / "segmentation.yaml")) == []

    def remaps(arguments: dict) -> set:
        argv, _ = launch_command(arguments)
        return {argv[i + 1] for i, a in enumerate(argv) if a == "-r"}

    from_file = remaps({"params_file": str(params), "camera_topic": "/{camera}/image_raw"})
    assert {"~/front/image:=/front/image_raw", "~/rear/image/compressed:=/rear/image_raw/compressed"} <= from_file
    # the cameras argument overrides the file's list, for the parameter and for the remappings alike
    override = remaps({"params_file": str(params), "cameras": "[left]", "camera_topic": "/{camera}/image_raw"})
    assert "~/left/image:=/left/image_raw" in override and not [r for r in override if r.startswith("~/front")]
    # single-camera params file: camera_topic would do nothing, so it is refused with what to give instead
    with pytest.raises(ValueError, match=r"camera_topic:=/\{camera\}/image_raw needs cameras: give 'cameras:="):
        launch_command({"camera_topic": "/{camera}/image_raw"})


def test_params_file_holds_every_parameter_with_its_default() -> None:
    data = yaml.safe_load((REPO / "config" / "segmentation.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert list(values) == list(PARAMETER_NAMES)
    for spec in PARAMETERS:
        assert values[spec.name] == spec.default and type(values[spec.name]) is type(spec.default), spec.name
    params_from_dict(values)  # within the declared choices and ranges


def test_transport_profile_is_the_64mb_shared_memory_one() -> None:
    c = launch_constants()
    ns = {"d": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(REPO / "config" / c["TRANSPORT_PROFILE"]).getroot()
    shm = [t for t in root.iterfind(".//d:transport_descriptor", ns) if t.findtext("d:type", namespaces=ns) == "SHM"]
    assert len(shm) == 1 and int(shm[0].findtext("d:segment_size", namespaces=ns)) == 64 * 1024 * 1024
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind(".//d:userTransports/d:transport_id", ns)]
    assert shm[0].findtext("d:transport_id", namespaces=ns) in used
    assert participant.findtext(".//d:useBuiltinTransports", namespaces=ns) == "false"
    assert set(c["PROFILE_ENV"]) == {"FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}
    # the node's /dev/shm check reads the segment size from the profile these name (it cannot import the launch file)
    from trt_segmentation.node.camera_io.shm_budget import PROFILE_ENV

    assert tuple(PROFILE_ENV) == tuple(c["PROFILE_ENV"])


def _call(lis, client, request, timeout=60.0):  # deadlines, not speed bounds: generous under load
    assert client.wait_for_service(timeout_sec=timeout), client.srv_name
    future = client.call_async(request)
    lis.wait_for(future.done, timeout, client.srv_name)
    return future.result()


def test_node_started_like_the_launch_file(engine_dir, tmp_path) -> None:
    from rcl_interfaces.srv import DescribeParameters, GetParameters

    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "precision": "fp32", "namespace": "cam_front",
         "image_topic": "/cam/front/image_raw", "publish_overlay": "true"},
        extra={"qos_reliability": "reliable", "warn_no_frames_s": "1.0", "diagnostics_period": "0.3"},
    )
    with node_process(argv, env, tmp_path / "node.log") as node, listener() as lis:
        name = "/cam_front/segmentation"
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        # io_mode process (the default): the image subscription belongs to the camera's I/O process
        # (<node>_io_image); the labels are published by the node itself
        lis.wait_for(lambda: ("segmentation_io_image", "/cam_front") in lis.node.get_node_names_and_namespaces(), 30,
                     "the camera's I/O process on the graph", node)
        subs = dict(lis.node.get_subscriber_names_and_types_by_node("segmentation_io_image", "/cam_front"))
        pubs = dict(lis.node.get_publisher_names_and_types_by_node("segmentation", "/cam_front"))
        assert "/cam/front/image_raw" in subs
        assert {"/cam_front/segmentation/labels", "/cam_front/segmentation/overlay", "/diagnostics"} <= set(pubs)
        assert "/cam_front/segmentation/color" not in pubs
        # `ros2 param describe`: every parameter has a description; ranges where declared
        described = _call(lis, lis.node.create_client(DescribeParameters, f"{name}/describe_parameters"),
                          DescribeParameters.Request(names=list(PARAMETER_NAMES)))
        by_name = {d.name: d for d in described.descriptors}
        assert set(by_name) == set(PARAMETER_NAMES)
        assert all(d.description for d in by_name.values())
        alpha = by_name["overlay_alpha"].floating_point_range[0]
        assert (alpha.from_value, alpha.to_value) == (0.0, 1.0)
        assert by_name["qos_depth"].integer_range[0].to_value == 100
        assert "tensorrt" in by_name["backend"].additional_constraints
        got = _call(lis, lis.node.create_client(GetParameters, f"{name}/get_parameters"),
                    GetParameters.Request(names=["precision", "publish_overlay", "qos_reliability", "overlay_alpha"]))
        values = [v.string_value or v.bool_value or v.double_value for v in got.values]
        assert values == ["fp32", True, "reliable", 0.5]  # overrides + the params file's default
        # no frames yet -> WARN; a best-effort camera against this reliable subscription -> incompatible QoS WARN
        lis.wait_for(lambda: (s := lis.last_status(STATUS)) and "no frame received yet" in s[0].message, 30,
                     "the no-frames WARN")
        frames = save_frames(tmp_path / "f.npz", [{"encoding": "rgb8", "height": 2, "width": 2, "step": 6,
                                                    "data": bytes(12)}])
        publisher = start_publisher(frames, "/cam/front/image_raw", 5.0, env=env, wait_subscriber=3.0)
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and s[1]["qos"] != "ok" and s, 30, "the incompatible-QoS WARN", node)
        assert status.level == bytes([WARN]) and "incompatible QoS (RELIABILITY" in status.message
        publisher.communicate(timeout=20)
        assert publisher.returncode == 3  # it never found a compatible subscriber
    assert "incompatible QoS" in node.log()
    assert node.proc.returncode == 0


def test_rviz_config_shows_the_node_image_outputs() -> None:
    """config/segmentation.rviz (installed with config/): rviz2's YAML, Image displays on the node's own output
    topics (single camera, no namespace), each with a QoS any publisher matches."""
    c = launch_constants()
    view = yaml.safe_load((REPO / "config" / "segmentation.rviz").read_text())
    images = [d for d in view["Visualization Manager"]["Displays"] if d["Class"] == "rviz_default_plugins/Image"]
    topics = {d["Topic"]["Value"] for d in images}
    assert topics == {f"/{c['NODE_NAME']}/{name}" for name in ("labels", "color", "overlay")}
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in images)


def test_docs_list_every_parameter_and_diagnostics_key() -> None:
    from trt_segmentation.node.diagnostics import COUNTER_KEYS, INFO_KEYS, STAGES

    text = (REPO / "docs" / "node.md").read_text()
    for name in PARAMETER_NAMES:
        assert f"| `{name}` |" in text, name
    for key in INFO_KEYS + COUNTER_KEYS + ("fps", "seconds_since_last_frame", "publishers", "input_size", "qos",
                                           "last_error"):
        assert f"`{key}`" in text, key
    for stage in STAGES:
        assert f"`latency_{stage}_{{p50,p95,p99,max}}_ms`" in text, stage
