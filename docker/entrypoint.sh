#!/bin/bash
# Entrypoint of the trt_segmentation images (docker/*.Dockerfile): ROS 2 (an apt install, or a source build under
# /opt/ros/<distro>/install as the Jetson base images have it), this package's colcon workspace, and the Fast DDS
# transport profile for large frames in every process of the container (the variable the distro's Fast DDS reads,
# as launch/segmentation.launch.py picks it). Then it runs the command it was given.
set -e
for setup in "/opt/ros/${ROS_DISTRO}/install/setup.bash" "/opt/ros/${ROS_DISTRO}/setup.bash"; do
  if [ -f "$setup" ]; then
    source "$setup"
    break
  fi
done
if [ -f /ws/install/setup.bash ]; then
  source /ws/install/setup.bash
fi
profile=/ws/install/trt_segmentation/share/trt_segmentation/config/fastdds_shm.xml
case "${ROS_DISTRO}" in
  foxy|galactic|humble|iron|jazzy) export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-$profile}" ;;
  *) export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$profile}" ;;
esac
exec "$@"
