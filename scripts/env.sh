# Sourced by the scripts: the project's virtual environment and DDS kept on loopback.
# ROS 2 traffic must never leave this machine: Jazzy+/Kilted read ROS_AUTOMATIC_DISCOVERY_RANGE, Humble reads
# ROS_LOCALHOST_ONLY.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_LOCALHOST_ONLY=1
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export PYTHONUNBUFFERED=1
