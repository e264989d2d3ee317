"""Array previews: a bounded, strided read of only the chunks needed, drawn with matplotlib (no pyplot)."""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from matplotlib.figure import Figure
from PIL import Image

# A 2-D preview has at most this many values per side; a 1-D one at most LINE_POINTS.
MAX_SIDE = 512
LINE_POINTS = 2048
# A chunk is read whole, so the cost of a preview is the number of chunks it touches: at
# most this many bytes of chunks, and at most this many chunks along each plotted dimension.
# In a sharded array zarr reads a shard whole when every chunk of it is needed, else the
# shard's index (one small range request) and then each needed chunk by a range request:
# the same chunks' bytes, and one more request a shard touched.
READ_BUDGET_BYTES = 64 * 2**20
MAX_CHUNKS_PER_SIDE = {1: 256, 2: 16}
SIZES = ("full", "thumb")
# matplotlib does not promise thread safety even with one Figure per thread (its text and
# font caches are shared), and gunicorn runs threads: draw one picture at a time. Reading
# the array, the slow part, stays concurrent.
_DRAWING = threading.Lock()


@dataclass(frozen=True)
class Sample:
    """The values a preview shows and where they come from."""

    data: np.ndarray
    indices: tuple[np.ndarray, ...]  # the sampled positions along each plotted dimension
    fixed: tuple[int, ...]  # the index held along each leading dimension (N-D arrays)
    chunks_read: int  # chunks read, of
    chunks_total: int  # the chunks of the plotted slice


def sample_indices(size: int, chunk: int, points: int, max_chunks: int) -> np.ndarray:
    """Positions along one dimension: an even stride when few chunks, else strides within evenly spread chunks."""
    n_chunks = math.ceil(size / chunk)
    if n_chunks <= max_chunks:
        return np.arange(0, size, math.ceil(size / points))
    chosen = np.unique(np.round(np.linspace(0, n_chunks - 1, max_chunks)).astype(int))
    step = math.ceil(chunk / max(1, points // len(chosen)))
    return np.concatenate([np.arange(k * chunk, min(size, (k + 1) * chunk), step) for k in chosen])


def chunks_per_side(chunk_bytes: int, plotted: int) -> int:
    """How many chunks a preview may touch along each plotted dimension."""
    within_budget = int((READ_BUDGET_BYTES / chunk_bytes) ** (1 / plotted) + 1e-9)
    return max(1, min(MAX_CHUNKS_PER_SIDE[plotted], within_budget))


def read_sample(array: zarr.Array) -> Sample:
    """Read the preview's values: the last two dimensions (a middle slice of leading ones), strided."""
    shape, chunks = array.shape, array.chunks
    plotted = 1 if len(shape) == 1 else 2
    chunk_bytes = math.prod(chunks) * array.dtype.itemsize
    per_side = chunks_per_side(chunk_bytes, plotted)
    points = LINE_POINTS if plotted == 1 else MAX_SIDE
    indices = tuple(
        sample_indices(s, c, points, per_side) for s, c in zip(shape[-plotted:], chunks[-plotted:], strict=True)
    )
    fixed = tuple(s // 2 for s in shape[:-plotted])
    data = np.asarray(array.get_orthogonal_selection((*fixed, *indices)))
    touched = [len(np.unique(i // c)) for i, c in zip(indices, chunks[-plotted:], strict=True)]
    totals = [math.ceil(s / c) for s, c in zip(shape[-plotted:], chunks[-plotted:], strict=True)]
    return Sample(data, indices, fixed, math.prod(touched), math.prod(totals))


def _sampling_note(sample: Sample) -> str:
    """A short, honest line on what the picture shows."""
    shown = " × ".join(str(len(i)) for i in sample.indices)
    steps = sorted({int(i[1] - i[0]) for i in sample.indices if len(i) > 1} or {1})
    note = f"{shown} values" + ("" if steps == [1] else f", step {'/'.join(map(str, steps))}")
    if sample.chunks_read < sample.chunks_total:
        note += f", from {sample.chunks_read} of {sample.chunks_total} chunks"
    if sample.fixed:
        note += ", slice [" + ", ".join(map(str, sample.fixed)) + ", …]"
    return note


def _png(figure: Figure) -> bytes:
    """The figure as a 256-colour PNG: random values do not compress, and a palette makes it a third the size."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    image = Image.open(buffer).convert("RGB").quantize(256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _thumbnail(sample: Sample) -> bytes:
    """Only the values, edge to edge, for a list of jobs."""
    figure = Figure(figsize=(3.2, 2.8), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    if sample.data.ndim == 1:
        axes.plot(sample.indices[0], sample.data, linewidth=0.5, color="#1f6feb")
    else:
        axes.imshow(sample.data, cmap="viridis", interpolation="nearest", aspect="auto")
    return _png(figure)


def render_png(sample: Sample, document: dict[str, Any], size: str = "full") -> bytes:
    """Draw the sample with a colormap and colorbar (a line for 1-D), titled; or a bare thumbnail."""
    if size == "thumb":
        return _thumbnail(sample)
    shape = tuple(document["shape"])
    figure = Figure(figsize=(6.4, 5.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    if sample.data.ndim == 1:
        axes.plot(sample.indices[0], sample.data, linewidth=0.6, color="#1f6feb")
        axes.set_xlabel("index")
        axes.set_ylabel("value")
        axes.set_xlim(0, shape[0])
    else:
        height, width = shape[-2:]
        image = axes.imshow(
            sample.data,
            cmap="viridis",
            extent=(0, width, height, 0),
            interpolation="nearest",
            aspect="auto" if max(height, width) > 8 * min(height, width) else "equal",
        )
        figure.colorbar(image, ax=axes, shrink=0.85, label="value")
        axes.set_xlabel("x")
        axes.set_ylabel("y")
    dims = " × ".join(map(str, shape))
    axes.set_title(
        f"{document['id']}\nshape {dims} · {document['dtype']} · seed {document['seed']}\n{_sampling_note(sample)}",
        fontsize=9,
    )
    return _png(figure)


def preview_png(array: zarr.Array, document: dict[str, Any], size: str = "full") -> bytes:
    """The PNG preview of a complete job's array, full (titled, with a colorbar) or a thumbnail."""
    sample = read_sample(array)
    with _DRAWING:
        return render_png(sample, document, size)
