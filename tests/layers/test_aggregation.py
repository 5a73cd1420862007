"""weighted_neighbour_mean_max: the compiled and the chunked CPU implementations (written-out gradient) against
the vectorised one (TensorFlow's own gradient), against NumPy and finite differences, over several chunks,
padding, lone hits and an empty batch; which one "auto" takes."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import aggregation, compiled_kernels
from gravtrain.layers.aggregation import weighted_neighbour_mean_max


def neighbour_inputs(n_hits, k, width, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_hits, width)).astype(dtype)
    nidx = rng.integers(0, max(n_hits, 1), size=(n_hits, k)).astype(np.int32)
    nidx[::3, -2:] = -1  # padding at the end of some rows
    if n_hits > 5:
        nidx[5] = -1  # a hit without any neighbour
    dist_sq = rng.uniform(0.0, 0.2, size=(n_hits, k)).astype(dtype)
    return features, nidx, np.where(nidx >= 0, dist_sq, 0.0).astype(dtype)


def numpy_mean_max(features, nidx, dist_sq):
    mean, maximum = np.zeros_like(features), np.zeros_like(features)
    for i in range(features.shape[0]):
        columns = [c for c in range(nidx.shape[1]) if nidx[i, c] >= 0]
        if columns:
            weighted = np.stack([np.exp(-10.0 * dist_sq[i, c]) * features[nidx[i, c]] for c in columns])
            mean[i], maximum[i] = weighted.mean(axis=0), weighted.max(axis=0)
    return mean, maximum


def values_and_gradients(implementation, features, nidx, dist_sq, probe_mean, probe_max, use_max=True,
                         first_column=0):
    features, dist_sq = tf.constant(features), tf.constant(dist_sq)

    @tf.function
    def run(features, dist_sq):
        with tf.GradientTape() as tape:
            tape.watch([features, dist_sq])
            mean, maximum = weighted_neighbour_mean_max(features, tf.constant(nidx), dist_sq, implementation,
                                                        first_column=first_column)
            loss = tf.reduce_sum(probe_mean * mean)
            if use_max:
                loss += tf.reduce_sum(probe_max * maximum)
        return mean, maximum, *(tf.convert_to_tensor(g) for g in tape.gradient(loss, [features, dist_sq]))

    return [tf.convert_to_tensor(value).numpy() for value in run(features, dist_sq)]


@pytest.fixture
def small_chunks(monkeypatch):
    # 16 rows of 5 x 3 float64: several chunks in the tests' batches
    monkeypatch.setattr(aggregation, "MIN_CHUNK_ROWS", 16)
    monkeypatch.setattr(aggregation, "AGGREGATION_CHUNK_BYTES", 16 * 5 * 3 * 8)


CPU_IMPLEMENTATIONS = ["chunked", "compiled"]


@pytest.fixture(scope="module")
def compiled_kernel():
    """The compiled kernel; its tests fail (not skip) where a compiler exists and the build does not work."""
    if shutil.which(os.environ.get("CXX") or "c++") is None:
        pytest.skip("no C++ compiler: the compiled aggregation cannot be built here")
    return compiled_kernels.load_kernel(compiled_kernels.NEIGHBOUR_OPS_SOURCE)


@pytest.fixture(params=CPU_IMPLEMENTATIONS)
def cpu_implementation(request):
    if request.param == "compiled":
        request.getfixturevalue("compiled_kernel")
    return request.param


@pytest.mark.parametrize("n_hits", [0, 1, 15, 16, 53])
@pytest.mark.parametrize("use_max", [True, False])
def test_cpu_implementations_match_vectorised_and_numpy(small_chunks, cpu_implementation, n_hits, use_max):
    features, nidx, dist_sq = neighbour_inputs(n_hits, 5, 3)
    rng = np.random.default_rng(1)
    probe_mean, probe_max = rng.normal(size=features.shape), rng.normal(size=features.shape)
    on_cpu = values_and_gradients(cpu_implementation, features, nidx, dist_sq, probe_mean, probe_max, use_max)
    vectorised = values_and_gradients("vectorised", features, nidx, dist_sq, probe_mean, probe_max, use_max)
    for got, want in zip(on_cpu, vectorised):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    mean, maximum = numpy_mean_max(features, nidx, dist_sq)
    np.testing.assert_allclose(on_cpu[0], mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(on_cpu[1], maximum, rtol=1e-12, atol=1e-14)
    if n_hits > 5:
        assert np.all(on_cpu[0][5] == 0) and np.all(on_cpu[1][5] == 0)


def test_cpu_gradients_match_finite_differences(small_chunks, cpu_implementation):
    from tests.numerics import numeric_gradient

    features, nidx, dist_sq = neighbour_inputs(20, 4, 2, seed=3)
    rng = np.random.default_rng(2)
    probe_mean, probe_max = rng.normal(size=features.shape), rng.normal(size=features.shape)
    _, _, grad_features, grad_dist = values_and_gradients(cpu_implementation, features, nidx, dist_sq, probe_mean,
                                                          probe_max)

    def loss(features_value, dist_value):
        mean, maximum = numpy_mean_max(features_value, nidx, dist_value)
        return float(np.sum(probe_mean * mean) + np.sum(probe_max * maximum))

    np.testing.assert_allclose(grad_features, numeric_gradient(lambda f: loss(f, dist_sq), features),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_dist, numeric_gradient(lambda d: loss(features, d), dist_sq) * (nidx >= 0),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("implementation", ["vectorised", "chunked", "compiled"])
@pytest.mark.parametrize("first_column", [1, 3])
def test_first_column_leaves_out_the_columns_before_it(request, small_chunks, implementation, first_column):
    if implementation == "compiled":
        request.getfixturevalue("compiled_kernel")
    features, nidx, dist_sq = neighbour_inputs(40, 4, 3, seed=5)
    nidx[:, 0] = np.arange(40)  # GravNet's table: the hit itself in column 0, at distance 0
    dist_sq[:, 0] = 0.0
    rng = np.random.default_rng(4)
    probe_mean, probe_max = rng.normal(size=features.shape), rng.normal(size=features.shape)
    mean, maximum, grad_features, grad_dist = values_and_gradients(
        implementation, features, nidx, dist_sq, probe_mean, probe_max, first_column=first_column)
    want = values_and_gradients("vectorised", features, nidx[:, first_column:], dist_sq[:, first_column:],
                                probe_mean, probe_max)
    np.testing.assert_allclose(mean, numpy_mean_max(features, nidx[:, first_column:], dist_sq[:, first_column:])[0],
                               rtol=1e-12, atol=1e-14)
    for got, expected in zip([mean, maximum, grad_features], want[:3]):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert grad_dist.shape == dist_sq.shape
    assert np.all(grad_dist[:, :first_column] == 0)
    np.testing.assert_allclose(grad_dist[:, first_column:], want[3], rtol=1e-12, atol=1e-12)


def test_auto_takes_the_vectorised_formula_under_xla():
    features, nidx, dist_sq = neighbour_inputs(30, 4, 3, dtype=np.float32)
    compiled = tf.function(lambda f, d: weighted_neighbour_mean_max(f, tf.constant(nidx), d), jit_compile=True)
    graph = tf.function(lambda f, d: weighted_neighbour_mean_max(f, tf.constant(nidx), d))
    for got, want in zip(compiled(features, dist_sq), graph(features, dist_sq)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)


def test_an_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="chunked"):
        weighted_neighbour_mean_max(np.zeros((1, 1)), np.zeros((1, 1), np.int32), np.zeros((1, 1)), "fast")


def test_compiled_float32_matches_vectorised_on_a_wide_batch_and_repeats_bit_for_bit(compiled_kernel):
    features, nidx, dist_sq = neighbour_inputs(400, 24, 37, seed=5, dtype=np.float32)
    rng = np.random.default_rng(6)
    probe_mean, probe_max = (rng.normal(size=features.shape).astype(np.float32) for _ in range(2))
    compiled = values_and_gradients("compiled", features, nidx, dist_sq, probe_mean, probe_max)
    vectorised = values_and_gradients("vectorised", features, nidx, dist_sq, probe_mean, probe_max)
    for got, want in zip(compiled, vectorised):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    again = values_and_gradients("compiled", features, nidx, dist_sq, probe_mean, probe_max)
    for first, second in zip(compiled, again):
        np.testing.assert_array_equal(first, second)


def test_compiled_refuses_an_index_outside_the_features(compiled_kernel):
    features, nidx, dist_sq = neighbour_inputs(6, 3, 2)
    nidx[2, 1] = 6
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[-1, 6\)"):
        weighted_neighbour_mean_max(features, nidx, dist_sq, "compiled")


def test_auto_takes_the_compiled_kernel_on_cpu(compiled_kernel):
    features, nidx, dist_sq = neighbour_inputs(30, 4, 3, dtype=np.float32)
    graph = tf.function(lambda f, d: weighted_neighbour_mean_max(f, tf.constant(nidx), d))
    op_types = {op.type for op in graph.get_concrete_function(features, dist_sq).graph.get_operations()}
    assert "GravtrainNeighbourMeanMax" in op_types


def test_without_a_compiler_auto_warns_once_and_uses_tensorflow_ops(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler-for-gravtrain")
    monkeypatch.setenv("GRAVTRAIN_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(compiled_kernels, "_LOADED", {})  # as in a process that has not loaded the kernel
    compiled_kernels.neighbour_ops_library.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=compiled_kernels.__name__):
            assert compiled_kernels.neighbour_ops_library() is None
            assert compiled_kernels.neighbour_ops_library() is None
        (warning,) = [record.getMessage() for record in caplog.records]
        assert "no C++ compiler 'no-such-compiler-for-gravtrain'" in warning and "TensorFlow ops" in warning
        features, nidx, dist_sq = neighbour_inputs(30, 4, 3, dtype=np.float32)
        graph = tf.function(lambda f, d: weighted_neighbour_mean_max(f, tf.constant(nidx), d))
        op_types = {op.type for op in graph.get_concrete_function(features, dist_sq).graph.get_operations()}
        assert "GravtrainNeighbourMeanMax" not in op_types
        with pytest.raises(RuntimeError, match="not available on this machine"):
            weighted_neighbour_mean_max(features, nidx, dist_sq, "compiled")
    finally:
        compiled_kernels.neighbour_ops_library.cache_clear()
    assert list(tmp_path.iterdir()) == []


BUILD_IN_A_FRESH_PROCESS = """
import logging, sys
from pathlib import Path
from gravtrain.layers import compiled_kernels
logging.basicConfig(level=logging.INFO)
cache = Path(sys.argv[1])
library = compiled_kernels.kernel_library_path(compiled_kernels.NEIGHBOUR_OPS_SOURCE, cache)
library.write_bytes(b"not a shared library")
ops = compiled_kernels.load_kernel(compiled_kernels.NEIGHBOUR_OPS_SOURCE, cache)
assert hasattr(ops, "gravtrain_neighbour_mean_max") and library.stat().st_size > 10_000
print("built", library.stat().st_mtime_ns)
"""


@pytest.mark.slow
def test_a_damaged_build_in_the_cache_is_rebuilt_then_reused(compiled_kernel, tmp_path):
    # In fresh processes: TensorFlow registers a library's ops once per process.
    def run(script):
        result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    first = run(BUILD_IN_A_FRESH_PROCESS)
    assert "does not load" in first.stderr and "compiled neighbour_ops.cc in" in first.stderr
    (library,) = tmp_path.glob("*.so")
    built = library.stat().st_mtime_ns
    second = run("import sys; from pathlib import Path; from gravtrain.layers import compiled_kernels as c; "
                 "assert c.load_kernel(c.NEIGHBOUR_OPS_SOURCE, Path(sys.argv[1])).gravtrain_neighbour_distances")
    assert "compil" not in second.stderr and library.stat().st_mtime_ns == built
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".lock", ".so"]


GRADIENTS_WITH_THREADS = """
import hashlib, sys
import numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
from gravtrain.layers.aggregation import weighted_neighbour_mean_max
from gravtrain.layers.knn import neighbour_dist_sq
rng = np.random.default_rng(11)
coords = tf.constant(rng.normal(size=(3000, 4)).astype(np.float32))
features = tf.constant(rng.normal(size=(3000, 19)).astype(np.float32))
nidx = rng.integers(0, 3000, size=(3000, 33)).astype(np.int32)
nidx[:, 0] = np.arange(3000)
nidx[::5, -4:] = -1
with tf.GradientTape() as tape:
    tape.watch([coords, features])
    mean, maximum = weighted_neighbour_mean_max(features, nidx, neighbour_dist_sq(coords, nidx), first_column=1)
    loss = tf.reduce_sum(mean * mean) + tf.reduce_sum(tf.sin(maximum))
digest = hashlib.sha256()
for value in (mean, maximum, *tape.gradient(loss, [coords, features])):
    digest.update(value.numpy().tobytes())
print(digest.hexdigest())
"""


@pytest.mark.slow
def test_compiled_values_and_gradients_do_not_depend_on_the_number_of_threads(compiled_kernel):
    # In fresh processes: the thread pool's size is fixed when TensorFlow starts.
    def digest(threads):
        result = subprocess.run([sys.executable, "-c", GRADIENTS_WITH_THREADS, str(threads)], capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.split()[-1]

    assert digest(1) == digest(2) == digest(3)
