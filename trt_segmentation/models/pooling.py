"""Adaptive average pooling that equals ``F.adaptive_avg_pool2d`` at every size and exports to plain ONNX.

PyTorch's adaptive bins for sizes the grid does not divide are variable-width and overlapping; ONNX has no
adaptive-pooling operator and the exporter refuses non-divisible sizes. For a static input size the bins are
known, so the pooling is a fixed linear map per axis: ``P_h @ x @ P_w^T`` (two MatMuls with constant
matrices), which every ONNX runtime and the TensorRT parser accept. Divisible sizes use ``avg_pool2d``
(exported as a plain AveragePool). No library offers this, hence the small hand-written helper.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pooling_matrix(n_in: int, n_out: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return the (n_out, n_in) averaging matrix of PyTorch's adaptive bins [floor(i*n/o), ceil((i+1)*n/o))."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"pooling sizes must be positive, got n_in={n_in}, n_out={n_out}")
    # built in numpy so that an ONNX trace records one constant, not the element writes
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return torch.from_numpy(matrix).to(dtype)


def exact_adaptive_avg_pool2d(x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """Adaptive average pooling of an NCHW tensor with a static spatial size; exact and ONNX-exportable."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    out_h, out_w = int(output_size[0]), int(output_size[1])
    if height % out_h == 0 and width % out_w == 0:
        kernel = (height // out_h, width // out_w)
        return F.avg_pool2d(x, kernel_size=kernel, stride=kernel)
    rows = pooling_matrix(height, out_h, x.dtype).to(device=x.device)
    cols = pooling_matrix(width, out_w, x.dtype).to(device=x.device).t()
    return torch.matmul(torch.matmul(rows, x), cols)
