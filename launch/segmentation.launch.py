"""Start the trt_segmentation node with its parameters file and the large-frame Fast DDS transport profile.

  ros2 launch trt_segmentation segmentation.launch.py precision:=int8
  ros2 launch trt_segmentation segmentation.launch.py backend:=onnxruntime image_topic:=/camera/image_raw \
      publish_overlay:=true namespace:=front
  # several cameras, one batched engine (<model>_<H>x<W>_b3_<precision>): ~/front/image from /front/image_raw, ...
  ros2 launch trt_segmentation segmentation.launch.py 'cameras:=[front,left,right]' camera_topic:=/{camera}/image_raw
  # (quote the brackets: zsh refuses them unquoted, bash may glob them)
  # a recorded drive replayed with its own clock: ros2 bag play --clock <bag>, then
  ros2 launch trt_segmentation segmentation.launch.py use_sim_time:=true

Arguments left empty keep the value of params_file (config/segmentation.yaml by default). The node process gets
the Fast DDS profile variable of its distribution pointing at config/fastdds_shm.xml (64 MB shared memory
segment): without it Fast DDS loses almost every 1024x2048 frame. Start the camera driver or bag player with the
same variable (docs/node.md). The constants and profile_variables() below are read by
harness/launch_emulation.py and the tests (parsed, never executed there).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "trt_segmentation"
EXECUTABLE = "segmentation_node"
NODE_NAME = "segmentation"
PARAMS_FILE = "segmentation.yaml"
TRANSPORT_PROFILE = "fastdds_shm.xml"
PROFILE_ENV = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
# Humble (Fast DDS 2.6) and Jazzy (Fast DDS 2.14) read only FASTRTPS_DEFAULT_PROFILES_FILE; Kilted (Fast DDS 3)
# reads FASTDDS_DEFAULT_PROFILES_FILE and warns "FASTRTPS_DEFAULT_PROFILES_FILE ... is deprecated" when the old
# one is set, even beside the new one.
FAST_DDS_2_DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy")
IMAGE_REMAP_FROM = "~/image"

# launch argument -> description; each becomes the node parameter of the same name when not empty
PARAMETER_ARGUMENTS = {
    "precision": "fp32 | fp16 (default) | int8 | mixed (int8-max, int8-percentile, int8-kl2048) | int8-cpu (backend "
                 "onnxruntime only): picks <model>_<H>x<W>_<precision>.engine (.onnx for onnxruntime)",
    "backend": "tensorrt | onnxruntime | torch",
    "model": "model name, e.g. swiftnet_ss_rn18 (first part of the engine file name)",
    "engine_dir": "folder with the .engine/.json/.onnx files",
    "publish_color": "true | false: publish ~/color (rgb8 colour mask)",
    "publish_overlay": "true | false: publish ~/overlay (image blended with the colour mask)",
    "cameras": "multi-camera mode: camera names, e.g. [front,left,right] (one batch of N through a _b<N>_ model; "
               "topics ~/<name>/image in, ~/<name>/labels out); empty = one camera on ~/image",
    "use_sim_time": "true | false: take the node's clock from /clock (a bag replayed with `ros2 bag play --clock` "
                    "or tools/play_rosbag.py --stamps recorded --clock)",
}
# the launch arguments above that are booleans on the node ("true"/"false" in, bool parameter out)
BOOL_ARGUMENTS = ("publish_color", "publish_overlay", "use_sim_time")
# launch-level arguments: (default, description)
OTHER_ARGUMENTS = {
    "image_topic": ("/camera/image_raw", "camera topic remapped onto the node's ~/image (and ~/image/compressed)"),
    "namespace": ("", "namespace of the node, e.g. one per camera"),
    "params_file": ("", "parameters file; empty = the package's config/segmentation.yaml"),
    "camera_topic": ("", "multi-camera mode: the topic of each camera, {camera} replaced by its name (e.g. "
                         "/{camera}/image_raw), remapped onto ~/<name>/image; the cameras come from cameras:= or, "
                         "when that is empty, from params_file; empty = no remapping"),
}


def camera_list(text):
    """The cameras argument as a list: '[front, left]' or 'front,left' -> ['front', 'left']; '' -> []."""
    return [name.strip().strip("'\"") for name in text.strip().strip("[]").split(",") if name.strip()]


def params_file_cameras(path):
    """The cameras a parameters file gives this node ([] when none): the ``cameras`` of a ros__parameters
    block under the node's name (segmentation, /segmentation, /<namespace>/segmentation) or a wildcard (/**);
    the last such block wins, like rcl reading the file in order."""
    import yaml  # python3-yaml (package.xml); launch itself reads YAML with it

    with open(path) as stream:
        data = yaml.safe_load(stream) or {}
    found = []

    def walk(tree, key_path):
        for key, value in tree.items():
            if not isinstance(value, dict):
                continue
            if key == "ros__parameters":
                owner = key_path.rstrip("/").split("/")[-1]
                if owner in (NODE_NAME, "**", "*") and "cameras" in value:
                    found.append(value["cameras"])
            else:
                walk(value, key_path + "/" + str(key).strip("/"))

    walk(data, "")
    cameras = found[-1] if found else []
    return [str(name) for name in cameras] if isinstance(cameras, list) else []


def camera_remappings(cameras, camera_topic):
    """(from, to) remappings of each camera's image topics onto ``camera_topic`` with {camera} filled in;
    ValueError for a camera_topic without cameras (it would be ignored silently)."""
    if not camera_topic:
        return []
    if not cameras:
        raise ValueError(f"camera_topic:={camera_topic} needs cameras: give 'cameras:=[front,left,...]' or a "
                         "cameras list in params_file (multi-camera mode); single-camera mode uses image_topic:=")
    pairs = []
    for name in cameras:
        topic = camera_topic.replace("{camera}", name)
        pairs += [(f"~/{name}/image", topic), (f"~/{name}/image/compressed", topic + "/compressed")]
    return pairs


def profile_variables(distro):
    """The profile variable(s) the Fast DDS of ROS_DISTRO ``distro`` reads; both when it is unknown (empty)."""
    if not distro:
        return list(PROFILE_ENV)
    return [PROFILE_ENV[1]] if distro.lower() in FAST_DDS_2_DISTROS else [PROFILE_ENV[0]]


def _setup(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)
    profile = os.path.join(share, "config", TRANSPORT_PROFILE)
    params_file = LaunchConfiguration("params_file").perform(context) or os.path.join(share, "config", PARAMS_FILE)
    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context)
        if value != "":
            if name == "cameras":
                overrides[name] = camera_list(value)
            else:
                overrides[name] = value.lower() == "true" if name in BOOL_ARGUMENTS else value
    image_topic = LaunchConfiguration("image_topic").perform(context)
    # the cameras the node will have: the argument overrides the params file (as `overrides` does below)
    cameras = camera_list(LaunchConfiguration("cameras").perform(context)) or params_file_cameras(params_file)
    extra_remaps = camera_remappings(cameras, LaunchConfiguration("camera_topic").perform(context))
    read = profile_variables(os.environ.get("ROS_DISTRO", ""))
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace").perform(context),
        parameters=[params_file, overrides],
        remappings=[(IMAGE_REMAP_FROM, image_topic), (IMAGE_REMAP_FROM + "/compressed", image_topic + "/compressed")]
        + extra_remaps,
        additional_env={name: profile for name in PROFILE_ENV if name in read},
        output="screen",
        emulate_tty=True,
    )
    return [node]


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value="", description=text)
                 for name, text in PARAMETER_ARGUMENTS.items()]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, (default, text) in OTHER_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_setup)])
