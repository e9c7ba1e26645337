# The x86 CUDA workstation image: ROS 2 Jazzy from its apt repository on NVIDIA's CUDA image (Ubuntu 24.04),
# TensorRT and pycuda from PyPI, this package built with colcon (docs/vehicle.md, "Container"). It runs the node
# and the on-target commands on a desktop GPU; the build tools (torch, ModelOpt) stay on the host's venv.
#   docker build -f docker/workstation.Dockerfile -t trt_segmentation:x86 .
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG ROS_DISTRO=jazzy
ARG UBUNTU_CODENAME=noble
ARG DEBIAN_FRONTEND=noninteractive
ENV ROS_DISTRO=${ROS_DISTRO}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl python3-pip python3-dev build-essential \
 && curl -fsSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
      -o /usr/share/keyrings/ros-archive-keyring.gpg \
 && echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/ros-archive-keyring.gpg]" \
      "http://packages.ros.org/ros2/ubuntu ${UBUNTU_CODENAME} main" \
      > /etc/apt/sources.list.d/ros2.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends "ros-${ROS_DISTRO}-ros-base" "ros-${ROS_DISTRO}-rmw-fastrtps-cpp" \
      python3-colcon-common-extensions python3-numpy python3-yaml python3-pil \
 && rm -rf /var/lib/apt/lists/*
# Ubuntu 24.04's Python is externally managed: these go beside the apt packages
RUN python3 -m pip install --no-cache-dir --break-system-packages tensorrt pycuda onnx onnxruntime \
 && python3 -c "import tensorrt, pycuda, onnx, onnxruntime; print('TensorRT', tensorrt.__version__)"
WORKDIR /ws
COPY package.xml setup.py setup.cfg src/trt_segmentation/
COPY resource src/trt_segmentation/resource
COPY launch src/trt_segmentation/launch
COPY config src/trt_segmentation/config
COPY trt_segmentation src/trt_segmentation/trt_segmentation
COPY docker/entrypoint.sh /entrypoint.sh
RUN /entrypoint.sh colcon build --packages-select trt_segmentation \
 && /entrypoint.sh ros2 pkg prefix trt_segmentation \
 && test -f /ws/install/trt_segmentation/share/trt_segmentation/config/fastdds_shm.xml
ENTRYPOINT ["/entrypoint.sh"]
CMD ["bash"]
