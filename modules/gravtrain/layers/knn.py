"""k-nearest-neighbour selection inside events of a ragged batch of hits.

``select_knn`` is the entry point, and ``select_knn_spatially_ordered`` the same search on the hits put in the
k-d tree's order (for layers that gather over the graph); the backends are looked up by name in
``KNN_BACKENDS``:

- ``"brute"``: pure TensorFlow. Rows of the whole batch are cut into tiles of ``rows`` hits; for each row tile
  the columns of the events those rows belong to are scanned in tiles of ``cols`` hits (``small_cols`` when
  those events are small), keeping a running top-k. At most ``rows x cols`` distances exist at once (times
  ``_PARALLEL_ROW_TILES`` row tiles in flight), so memory is O(V k) plus a bounded tile, with the tile sizes of
  ``CPU_TILES``, or ``GPU_TILES`` when TensorFlow sees a GPU. Each tile
  is an XLA-compiled function (compiled once per tile shape). Works in graph mode, under XLA
  (``jit_compile=True``) and on GPU. Work is O(sum over events of n_e^2): the backend for GPUs and small events.
- ``"kdtree"``: SciPy's ``cKDTree`` per event, called from the graph through ``tf.numpy_function``; queries of
  events with at least ``KDTREE_PARALLEL_MIN_HITS`` hits use all cores (``workers=-1``), smaller ones one
  thread (thread start-up costs more than the query). Work is O(V k log V). CPU only, not XLA-compilable.
- ``"auto"``: ``"brute"`` inside an XLA-compiled function or when TensorFlow sees a GPU; otherwise (CPU) decides
  at run time: ``"kdtree"`` when the largest event of the batch has more than ``AUTO_KDTREE_MIN_HITS`` hits,
  else ``"brute"``.

Whatever the backend, indices carry no gradient and the squared distances are recomputed in TensorFlow from
the gathered coordinates, so gradients reach both endpoints of every edge.
Inside ``RepeatedSearches.repeating()`` (`gravtrain.layers.repeated_searches`) a search is not made but given back
from the same code's run under ``recording()``; the distances are computed either way.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from scipy.spatial import cKDTree

from .compiled_kernels import in_xla_context, kernels_for
from .repeated_searches import searched as _searched

logger = logging.getLogger(__name__)


class BruteTiles(NamedTuple):
    """Tile sizes of the brute backend, in hits."""

    rows: int  #: rows per row tile
    cols: int  #: columns per column tile (raised to k when k is larger)
    small_cols: int  #: columns per column tile when a row tile's events span at most small_span hits
    small_span: int


#: Tiles on CPU: small enough for the caches (64 x 4096 float32 = 1 MiB).
CPU_TILES = BruteTiles(rows=64, cols=4096, small_cols=256, small_span=2048)
#: Tiles when TensorFlow sees a GPU: few, large tiles (64 MiB of distances), as each loop step costs a launch.
GPU_TILES = BruteTiles(rows=1024, cols=16384, small_cols=2048, small_span=8192)
#: On CPU, ``"auto"`` uses the k-d tree when the largest event has more hits than this.
AUTO_KDTREE_MIN_HITS = 512
#: `select_knn_spatially_ordered` reorders the hits when the largest event has at least this many (below it
#: the gathers gain less than the second tree and the permutations cost: 5 % slower steps at 4,000 hits).
SPATIAL_ORDER_MIN_HITS = 16384
#: The kdtree backend queries events of at least this many hits with all cores (``workers=-1``).
KDTREE_PARALLEL_MIN_HITS = 1024
#: Row tiles the brute backend may process concurrently (bounds its peak memory).
_PARALLEL_ROW_TILES = 2
#: Run each tile of the brute backend as an XLA-compiled function (compiled once per tile shape).
BRUTE_TILE_XLA = True


def select_knn(coords, row_splits, k: int, backend: str = "auto"):
    """Find, for each hit, its k nearest other hits of the same event.

    Distances are squared Euclidean distances in ``coords``. Events are the row ranges
    ``[row_splits[e], row_splits[e+1])``; empty events are allowed. A hit never sees a hit of another event.

    Args:
        coords: float tensor (V, S), the space in which neighbours are searched.
        row_splits: int tensor (E+1,), event boundaries, ``row_splits[0] == 0`` and ``row_splits[-1] == V``.
        k: K, the number of neighbours besides the hit itself.
        backend: one of ``KNN_BACKENDS`` (``"auto"``, ``"brute"``, ``"kdtree"``).

    Returns:
        ``(nidx, dist_sq)``, both of shape (V, K+1). ``nidx`` (int32) has the hit itself in column 0, then the
        neighbours by increasing distance, and -1 where the event has fewer than K+1 hits. ``dist_sq`` (dtype of
        ``coords``) is 0 for the hit itself and for padding.

    Shapes:
        coords (V, S), row_splits (E+1,) -> nidx (V, K+1), dist_sq (V, K+1).
    """
    _check_backend(backend)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    with tf.name_scope("select_knn"):  # profiles attribute the kNN's ops by this scope
        coords = tf.convert_to_tensor(coords)
        row_splits = tf.cast(tf.convert_to_tensor(row_splits), tf.int32)
        if tf.executing_eagerly():  # eager tf.while_loop would run tile by tile in Python
            others = _find_neighbours_in_graph(tf.stop_gradient(coords), row_splits, k, backend)
        else:
            others = _searched(lambda: KNN_BACKENDS[backend](tf.stop_gradient(coords), row_splits, k))
        n_hits = tf.shape(coords)[0]
        self_idx = tf.range(n_hits, dtype=tf.int32)[:, None]
        nidx = tf.stop_gradient(tf.concat([self_idx, others], axis=1))
        nidx.set_shape([coords.shape[0], k + 1])
        return nidx, neighbour_dist_sq(coords, nidx)


def select_knn_spatially_ordered(coords, row_splits, k: int, backend: str = "auto"):
    """`select_knn` on the hits of each event reordered so that hits close in ``coords`` are close in memory.

    The order is that of the k-d tree over each event's hits (the hits of one leaf, then of the next): gathers
    over the graph (``f_j`` for j in N(i)) then read nearby rows instead of random ones, which at 10^5 hits per
    event makes the distances and aggregation over the graph much faster on CPU. The order keeps every event's
    rows in place, so ``row_splits`` holds for the ordered rows too. Where the backend is the brute one (a GPU,
    XLA, or ``"auto"`` with small events), or no event has ``SPATIAL_ORDER_MIN_HITS`` hits, the order is the
    identity.

    Returns:
        ``(order, inverse, nidx, dist_sq)``: ``order`` (V,) int32, the original row at each position, and
        ``inverse`` its inverse (the position of each original row); ``nidx`` and ``dist_sq`` (V, K+1) as from
        ``select_knn(tf.gather(coords, order), ...)``: rows and indices are positions in that order. ``dist_sq``
        is differentiable with respect to ``coords``.
    """
    _check_backend(backend)
    k = int(k)
    with tf.name_scope("select_knn"):
        coords = tf.convert_to_tensor(coords)
        row_splits = tf.cast(tf.convert_to_tensor(row_splits), tf.int32)
        if tf.executing_eagerly():  # eager tf.while_loop would run tile by tile in Python
            order, others = _find_ordered_neighbours_in_graph(tf.stop_gradient(coords), row_splits, k, backend,
                                                              SPATIAL_ORDER_MIN_HITS)
        else:
            order, others = _searched(lambda: _ordered_neighbours(tf.stop_gradient(coords), row_splits, k, backend,
                                                                  SPATIAL_ORDER_MIN_HITS))
        identity = tf.range(tf.shape(coords)[0], dtype=tf.int32)
        nidx = tf.stop_gradient(tf.concat([identity[:, None], others], axis=1))
        nidx.set_shape([coords.shape[0], k + 1])
        order.set_shape([coords.shape[0]])
        inverse = inverse_permutation(order)
        return order, inverse, nidx, neighbour_dist_sq(permute_rows(coords, order, inverse), nidx)


def _ordered_neighbours(coords, row_splits, k: int, backend: str, min_hits: int):
    """(order (V,), others (V, K)) of `select_knn_spatially_ordered`: the backend's choice as `_auto_knn` makes
    it, the k-d tree's order when an event has ``min_hits`` hits, else the identity."""
    n_hits = tf.shape(coords)[0]
    identity = tf.range(n_hits, dtype=tf.int32)
    largest = _largest_event(row_splits)

    def ordered_kdtree():
        order, others = tf.numpy_function(lambda c, r: _kdtree_ordered_knn_numpy(c, r, k), [coords, row_splits],
                                          (tf.int32, tf.int32), stateful=False)
        return tf.reshape(order, [n_hits]), tf.reshape(others, [n_hits, k])

    def kdtree():
        return tf.cond(largest >= min_hits, ordered_kdtree,
                       lambda: (identity, _kdtree_knn(coords, row_splits, k)))

    def brute():
        return identity, _brute_knn(coords, row_splits, k)

    if backend == "kdtree":
        return kdtree()
    if backend == "brute" or in_xla_context() or tf.config.list_logical_devices("GPU"):
        return brute()
    return tf.cond(largest > AUTO_KDTREE_MIN_HITS, kdtree, brute)  # auto on CPU


@tf.function(reduce_retracing=True)
def _find_ordered_neighbours_in_graph(coords, row_splits, k: int, backend: str, min_hits: int):
    return _ordered_neighbours(coords, row_splits, k, backend, min_hits)


def _check_backend(backend: str) -> None:
    if backend not in KNN_BACKENDS:
        raise ValueError(
            f"unknown kNN backend {backend!r}; valid names are: {', '.join(sorted(KNN_BACKENDS))}"
        )


def _largest_event(row_splits):
    """The number of hits of the largest event (0 without events)."""
    return tf.reduce_max(tf.concat([row_splits[1:] - row_splits[:-1], tf.zeros([1], row_splits.dtype)], axis=0))


def inverse_permutation(order):
    """The permutation that undoes ``order``: ``inverse[order[p]] = p``."""
    return tf.math.invert_permutation(order)


def permute_rows(x, order, inverse):
    """``tf.gather(x, order)`` for a permutation ``order`` (``inverse`` its inverse), whose gradient is the
    gather ``tf.gather(dy, inverse)`` instead of a scatter-add."""

    @tf.custom_gradient
    def permute(x):
        return tf.gather(x, order), lambda dy: tf.gather(dy, inverse)

    return permute(x)


def permute_graph(nidx, order, inverse):
    """The neighbour indices of a graph whose rows are permuted by ``order``: row p is row ``order[p]``, each
    index the new position of its row (``inverse``); padding (-1) stays."""
    rows = tf.gather(nidx, order)
    return tf.where(rows >= 0, tf.gather(inverse, tf.maximum(rows, 0)), rows)


@tf.function(reduce_retracing=True)
def _find_neighbours_in_graph(coords, row_splits, k: int, backend: str):
    return KNN_BACKENDS[backend](coords, row_splits, k)


def neighbour_dist_sq(coords, nidx):
    """Squared distances from each hit to the hits in its row of ``nidx``; 0 where ``nidx == -1``.

    Differentiable with respect to ``coords`` at both endpoints; padding gives zero gradient. On CPU a compiled
    kernel computes them and their gradient (`gravtrain.layers.compiled_kernels`) where it builds.
    Shapes: coords (V, S), nidx (V, K+1) -> (V, K+1).
    """
    kernels = kernels_for(coords.dtype)
    if kernels is not None:
        return kernels.gravtrain_neighbour_distances(coords, tf.cast(nidx, tf.int32))
    n_hits = tf.shape(nidx)[0]
    is_pad = nidx < 0
    self_idx = tf.broadcast_to(tf.range(n_hits, dtype=nidx.dtype)[:, None], tf.shape(nidx))
    safe = tf.where(is_pad, self_idx, nidx)
    diff = tf.gather(coords, safe) - coords[:, None, :]
    dist_sq = tf.reduce_sum(tf.square(diff), axis=-1)
    return tf.where(is_pad, tf.zeros_like(dist_sq), dist_sq)


# --------------------------------------------------------------------------------------------------------------
# brute: tiled exact search in TensorFlow


def _event_bounds(row_splits, n_hits):
    """Per hit, the first and one-past-last row of its event. XLA-friendly (no searchsorted, no repeat)."""
    inner = tf.clip_by_value(row_splits[1:-1], 0, n_hits)
    starts_here = tf.math.unsorted_segment_sum(tf.ones_like(inner), inner, n_hits + 1)
    event_id = tf.cumsum(starts_here)[:n_hits]
    return tf.gather(row_splits, event_id), tf.gather(row_splits, event_id + 1)


def _tile_dist_sq(a, b):
    """(T, S) x (C, S) -> (T, C) squared distances, summed dimension by dimension (exact, no cancellation)."""
    n_dims = a.shape[-1]
    if n_dims is None or n_dims > 8:
        return tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=-1)
    total = tf.square(a[:, 0:1] - b[None, :, 0])
    for dim in range(1, n_dims):
        total += tf.square(a[:, dim : dim + 1] - b[None, :, dim])
    return total


def _merge_column_tile(row_coords, col_coords, rows, cols, row_start, row_end, best_val, best_idx):
    """Merge one (T, C) block of negated squared distances into the running top-K of each row.

    ``best_val`` (T, K) holds -d^2 of the best neighbours so far (-inf: none yet), ``best_idx`` (T, K) their
    indices. Columns outside a row's event, and the row itself, are excluded. Static shapes throughout, so the
    XLA-compiled version is compiled once per (T, C, S, K, dtype), whatever the batch.
    """
    k = best_val.shape[1]
    valid = (
        (cols[None, :] >= row_start[:, None])
        & (cols[None, :] < row_end[:, None])
        & (cols[None, :] != rows[:, None])
    )
    neg_d = tf.where(valid, -_tile_dist_sq(row_coords, col_coords), tf.constant(-np.inf, best_val.dtype))
    tile_val, tile_pos = tf.math.top_k(neg_d, k=k, sorted=False)
    merged_val = tf.concat([best_val, tile_val], axis=1)
    merged_idx = tf.concat([best_idx, tf.gather(cols, tile_pos)], axis=1)
    top_val, top_pos = tf.math.top_k(merged_val, k=k, sorted=True)
    return top_val, tf.gather(merged_idx, top_pos, batch_dims=1)


# On CPU, XLA fuses the masking, distances and top-k of a tile: about 4x faster than op-by-op execution.
_merge_column_tile_xla = tf.function(_merge_column_tile, jit_compile=True, autograph=False)


def _brute_knn(coords, row_splits, k: int):
    """Indices (V, K) of the K nearest other hits of each hit's event, -1 padded; exact tiled scan.

    Rows are taken ``tiles.rows`` at a time over the whole batch. A row tile only scans the columns of the events
    its rows belong to, ``tiles.small_cols`` columns at a time when that span is at most ``tiles.small_span``
    hits (batches of small events), else ``tiles.cols`` at a time (large events).
    """
    tiles = GPU_TILES if tf.config.list_logical_devices("GPU") else CPU_TILES
    row_tile = tiles.rows
    merge = _merge_column_tile_xla if BRUTE_TILE_XLA else _merge_column_tile
    n_hits = tf.shape(coords)[0]
    starts, ends = _event_bounds(row_splits, n_hits)
    last = tf.maximum(n_hits - 1, 0)
    n_row_tiles = (n_hits + row_tile - 1) // row_tile
    neg_inf = tf.constant(-np.inf, coords.dtype)
    row_offsets = tf.range(row_tile, dtype=tf.int32)

    def row_tile_body(tile, result):
        rows = tf.minimum(tile * row_tile + row_offsets, last)
        row_coords = tf.gather(coords, rows)
        row_start, row_end = tf.gather(starts, rows), tf.gather(ends, rows)
        col_begin, col_end = row_start[0], row_end[-1]  # rows are sorted, so are their events

        def scan_columns(col_tile):
            col_tile = max(col_tile, k)
            col_offsets = tf.range(col_tile, dtype=tf.int32)
            n_col_tiles = (col_end - col_begin + col_tile - 1) // col_tile

            def col_tile_body(ctile, best_val, best_idx):
                cols = col_begin + ctile * col_tile + col_offsets
                # Columns past the batch read the last hit's coordinates, but are masked by row_end in the merge.
                col_coords = tf.gather(coords, tf.minimum(cols, last))
                best_val, best_idx = merge(
                    row_coords, col_coords, rows, cols, row_start, row_end, best_val, best_idx
                )
                return ctile + 1, best_val, best_idx

            init = (
                tf.constant(0, tf.int32),
                tf.fill([row_tile, k], neg_inf),
                tf.fill([row_tile, k], tf.constant(-1, tf.int32)),
            )
            _, best_val, best_idx = tf.while_loop(
                lambda ctile, *_: ctile < n_col_tiles, col_tile_body, init, parallel_iterations=1
            )
            return tf.where(best_val > neg_inf, best_idx, -1)

        best_idx = tf.cond(
            col_end - col_begin <= tiles.small_span,
            lambda: scan_columns(tiles.small_cols),
            lambda: scan_columns(tiles.cols),
        )
        return tile + 1, result.write(tile, best_idx)

    result = tf.TensorArray(
        tf.int32, size=n_row_tiles, element_shape=tf.TensorShape([row_tile, k]), infer_shape=True
    )
    _, result = tf.while_loop(
        lambda tile, _: tile < n_row_tiles,
        row_tile_body,
        (tf.constant(0, tf.int32), result),
        parallel_iterations=_PARALLEL_ROW_TILES,
    )
    stacked = tf.reshape(result.stack(), [-1, k])
    return stacked[:n_hits]


# --------------------------------------------------------------------------------------------------------------
# kdtree: SciPy per event, from the graph


def _kdtree_knn_numpy(coords: np.ndarray, row_splits: np.ndarray, k: int) -> np.ndarray:
    """NumPy side of the kdtree backend: (V, K) int32 neighbour indices, -1 padded, self removed."""
    coords = np.asarray(coords, dtype=np.float64)
    row_splits = np.asarray(row_splits, dtype=np.int64)
    result = np.full((coords.shape[0], k), -1, dtype=np.int32)
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        if end - begin >= 2:
            others = _event_neighbours(cKDTree(coords[begin:end]), k)
            result[begin:end, : others.shape[1]] = others + begin
    return result


def _kdtree_ordered_knn_numpy(coords: np.ndarray, row_splits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy side of `select_knn_spatially_ordered` (kdtree): the order (V,) int32 and, for the ordered rows,
    (V, K) int32 neighbour indices into the ordered rows, -1 padded, self removed."""
    coords = np.asarray(coords, dtype=np.float64)
    row_splits = np.asarray(row_splits, dtype=np.int64)
    order = np.arange(coords.shape[0], dtype=np.int32)
    result = np.full((coords.shape[0], k), -1, dtype=np.int32)
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        if end - begin < 2:
            continue
        event = coords[begin:end]
        local = cKDTree(event).indices  # the tree's order: hits of one leaf, then of the next leaf, ...
        order[begin:end] = local + begin
        others = _event_neighbours(cKDTree(event[local]), k)  # a tree over the ordered hits reads them in order
        result[begin:end, : others.shape[1]] = others + begin
    return order, result


def _event_neighbours(tree, k: int) -> np.ndarray:
    """(n, min(K, n - 1)) indices of the nearest other hits of each of the n >= 2 hits of ``tree``'s data."""
    n_event = tree.n
    n_query = min(k + 1, n_event)
    workers = -1 if n_event >= KDTREE_PARALLEL_MIN_HITS else 1
    _, idx = tree.query(tree.data, k=list(range(1, n_query + 1)), workers=workers)
    # Drop the hit itself: normally the first column; when hits coincide it may come later, and those rows
    # (few) move it behind the others. Keep K.
    hit = np.arange(n_event)
    misplaced = np.flatnonzero(idx[:, 0] != hit)
    if misplaced.size:
        rows = idx[misplaced]
        order = np.argsort(rows == hit[misplaced, None], axis=1, kind="stable")
        rows = np.take_along_axis(rows, order, axis=1)
        idx[misplaced, 1:] = rows[:, :-1]  # as if the hit itself were first: its column is dropped below
    return idx[:, 1 : min(k, n_event - 1) + 1]


def _kdtree_knn(coords, row_splits, k: int):
    """Indices (V, K) of the K nearest other hits of each hit's event, -1 padded, via SciPy's cKDTree."""
    idx = tf.numpy_function(
        lambda c, r: _kdtree_knn_numpy(c, r, k), [coords, row_splits], tf.int32, stateful=False
    )
    idx.set_shape([coords.shape[0], k])
    return idx


# --------------------------------------------------------------------------------------------------------------
# auto


def _auto_knn(coords, row_splits, k: int):
    """brute under XLA or with a GPU; on CPU, kdtree for events above AUTO_KDTREE_MIN_HITS hits, else brute."""
    if in_xla_context() or tf.config.list_logical_devices("GPU"):
        logger.debug("select_knn auto: brute (XLA context or GPU visible)")
        return _brute_knn(coords, row_splits, k)
    logger.debug("select_knn auto: kdtree above %d hits per event, else brute", AUTO_KDTREE_MIN_HITS)
    return tf.cond(
        _largest_event(row_splits) > AUTO_KDTREE_MIN_HITS,
        lambda: _kdtree_knn(coords, row_splits, k),
        lambda: _brute_knn(coords, row_splits, k),
    )


#: The kNN backends by the name users write (``GravNet(knn=...)``, ``select_knn(backend=...)``).
KNN_BACKENDS = {
    "auto": _auto_knn,
    "brute": _brute_knn,
    "kdtree": _kdtree_knn,
}
