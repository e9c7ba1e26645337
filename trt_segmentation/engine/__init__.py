"""TensorRT engines: build (explicit strongly typed, or the implicit calibrator path) and the JSON metadata sidecar.

Importing this package imports nothing heavy; TensorRT is loaded only when a build starts.
"""

from __future__ import annotations

from .metadata import EngineMetadata, MetadataError, check_compatible, read_metadata, rebuild_command, write_metadata

__all__ = ["EngineMetadata", "MetadataError", "check_compatible", "read_metadata", "rebuild_command", "write_metadata"]
