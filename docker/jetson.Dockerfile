# The vehicle image: ROS 2, TensorRT and pycuda on a Jetson, this package built with colcon (docs/vehicle.md,
# "Container"). Build from the repository root (BuildKit reads jetson.Dockerfile.dockerignore beside this file):
#   JetPack 5 (L4T R35, Ubuntu 20.04, Python 3.8, TensorRT 8.5): ROS 2 Humble built from source, the defaults
#     docker build -f docker/jetson.Dockerfile -t trt_segmentation:jp5 .
#   JetPack 6.1/6.2 (L4T R36.4; Ubuntu 24.04 in the container): ROS 2 Jazzy
#     docker build -f docker/jetson.Dockerfile -t trt_segmentation:jp6 \
#       --build-arg BASE_IMAGE=dustynv/ros:jazzy-ros-base-r36.4.0-cu128-24.04 --build-arg ROS_DISTRO=jazzy \
#       --build-arg PIP_CONSTRAINTS= --build-arg PIP_FLAGS=--break-system-packages .
# The base images (jetson-containers) carry CUDA and TensorRT with its Python bindings; the build stops at once if
# `import tensorrt` fails. Engines are built inside the container (trt_seg_build_on_target): they belong to the
# container's TensorRT, not to the host's.
ARG BASE_IMAGE=dustynv/ros:humble-ros-base-l4t-r35.4.1
FROM ${BASE_IMAGE}
ARG ROS_DISTRO=humble
# JetPack 5: the Python 3.8 set the test leg runs (scripts/test_py38.sh); empty for another Python
ARG PIP_CONSTRAINTS=requirements/py38-lock.txt
ARG PIP_FLAGS=
ENV ROS_DISTRO=${ROS_DISTRO}
ENV PATH=/usr/local/cuda/bin:${PATH}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python3 -c "import tensorrt; print('TensorRT', tensorrt.__version__)"
COPY requirements/py38-lock.txt /tmp/requirements/py38-lock.txt
# pycuda compiles against the base image's CUDA (nvcc on PATH); onnx and onnxruntime for trt_seg_check_on_target
RUN python3 -m pip install --no-cache-dir ${PIP_FLAGS} ${PIP_CONSTRAINTS:+-c /tmp/${PIP_CONSTRAINTS}} \
      pycuda onnx onnxruntime pillow pyyaml \
 && python3 -c "import pycuda, onnx, onnxruntime, PIL, yaml"
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
