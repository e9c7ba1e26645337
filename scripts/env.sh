# Sourced by the scripts: the project's virtual environment and DDS kept on loopback.
# ROS 2 traffic must never leave this machine: Jazzy+/Kilted read ROS_AUTOMATIC_DISCOVERY_RANGE, Humble reads
# ROS_LOCALHOST_ONLY.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_LOCALHOST_ONLY=1
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# .venv's ROS 2 wheels are Kilted's; a sourced ROS install sets ROS_DISTRO the same way. The launch file and its
# emulation pick the Fast DDS profile variable from it (scripts/test_jazzy.sh sets jazzy).
export ROS_DISTRO=kilted
export PYTHONUNBUFFERED=1
