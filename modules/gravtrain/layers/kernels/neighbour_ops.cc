// gravtrain's CPU kernels for a kNN graph, TensorFlow custom ops: the squared distances along its edges and the
// distance-weighted aggregation of neighbour features, each with its gradient.
//
// The graph: rows i with columns k, j = neighbours(i, k) the hit at the end of edge (i, k), -1 for padding.
//
// GravtrainNeighbourDistances, with s the coordinates (V, S):
//
//   d(i, k) = sum_s (s(j, s) - s(i, s))^2                  (0 on padding)
//   dL/ds(a) = sum_k 2 g(a, k) (s(a) - s(j(a, k)))  +  sum_{(i, k): j(i, k) = a} 2 g(i, k) (s(a) - s(i))
//
// GravtrainNeighbourMeanMax, with f the features (V, P), d the squared distances (R, K) and the columns
// k >= first_column (an attribute: GravNet leaves out column 0, the hit itself):
//
//   w(i, k)      = exp(-scale d(i, k))                     (0 on padding; scale an attribute, 10 for GravNet)
//   mean(i, p)   = (1 / n_i) sum_k w(i, k) f(j, p)        n_i = number of real columns of row i
//   max(i, p)    = max_k w(i, k) f(j, p)                  argmax(i, p) = the first k reaching it
//   both 0 (and argmax -1) for a row without a real column. The weights are computed where they are used, in
//   the op and again in its gradient, and never kept: a (R, K) tensor less per call for the backward pass.
//
// and its gradient, with g = dL/dmean, h = dL/dmax and c(i, k, p) = g(i, p) / n_i + [argmax(i, p) = k] h(i, p):
//
//   dL/dw(i, k) = sum_p f(j, p) c(i, k, p)                 dL/dd(i, k) = -scale w(i, k) dL/dw(i, k)
//   dL/df(j, p) = sum_{(i, k): neighbours(i, k) = j} w(i, k) c(i, k, p)
//   (dL/dd = 0 on padding and in the columns before first_column)
//
// One pass over each row's columns, with no (rows, K, P) tensor. The aggregation's sums over the edges into a
// hit are taken per hit over its incoming edges (a counting sort of the edges by their end, stable in (i, k)
// order); the distances' gradient adds them into one small (V, S) table per fixed block of rows, then the tables
// in block order. Either way every sum has a fixed order and no two threads write one place: the result does
// not depend on the number of threads. The Python side (gravtrain/layers/compiled_kernels.py) builds this file
// against the installed TensorFlow and registers the gradients.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("GravtrainNeighbourDistances")
    .Attr("T: {float, double}")
    .Input("coordinates: T")     // (V, S)
    .Input("neighbours: int32")  // (R, K), -1 = padding
    .Output("distances: T")      // (R, K), squared
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle coordinates, neighbours;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &coordinates));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &neighbours));
      c->set_output(0, neighbours);
      return absl::OkStatus();
    });

REGISTER_OP("GravtrainNeighbourDistancesGrad")
    .Attr("T: {float, double}")
    .Input("coordinates: T")
    .Input("neighbours: int32")
    .Input("grad_distances: T")
    .Output("grad_coordinates: T")  // (V, S)
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("GravtrainNeighbourMeanMax")
    .Attr("T: {float, double}")
    .Attr("scale: float")
    .Attr("first_column: int = 0")
    .Input("features: T")        // (V, P)
    .Input("neighbours: int32")  // (R, K), -1 = padding
    .Input("distances: T")       // (R, K), squared
    .Output("mean: T")           // (R, P)
    .Output("maximum: T")        // (R, P)
    .Output("argmax: int32")     // (R, P), a column of the (R, K) table
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle features, neighbours, distances;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &features));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &neighbours));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &distances));
      TF_RETURN_IF_ERROR(c->Merge(neighbours, distances, &neighbours));
      ShapeHandle out = c->Matrix(c->Dim(neighbours, 0), c->Dim(features, 1));
      for (int i = 0; i < 3; ++i) c->set_output(i, out);
      return absl::OkStatus();
    });

REGISTER_OP("GravtrainNeighbourMeanMaxGrad")
    .Attr("T: {float, double}")
    .Attr("scale: float")
    .Attr("first_column: int = 0")
    .Input("features: T")
    .Input("neighbours: int32")
    .Input("distances: T")
    .Input("argmax: int32")
    .Input("grad_mean: T")
    .Input("grad_max: T")
    .Output("grad_features: T")   // (V, P)
    .Output("grad_distances: T")  // (R, K)
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    });

// Estimated cycles of one row, for the thread pool's split.
int64_t RowCost(int64_t k, int64_t p) { return std::max<int64_t>(1, 4 * k * p); }

absl::Status CheckShapes(const Tensor& features, const Tensor& neighbours, const Tensor& distances,
                         int64_t first_column) {
  if (features.dims() != 2 || neighbours.dims() != 2 || distances.dims() != 2) {
    return absl::InvalidArgumentError("features, neighbours and distances must be matrices");
  }
  if (neighbours.shape() != distances.shape()) {
    return absl::InvalidArgumentError("neighbours " + neighbours.shape().DebugString() + " and distances " +
                                      distances.shape().DebugString() + " differ in shape");
  }
  if (first_column < 0 || first_column > neighbours.dim_size(1)) {
    return absl::InvalidArgumentError("first_column " + std::to_string(first_column) + " is outside [0, " +
                                      std::to_string(neighbours.dim_size(1)) + "]");
  }
  if (neighbours.NumElements() >= std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError("more than 2^31 neighbour columns in one batch");
  }
  return absl::OkStatus();
}

absl::Status OutOfRange(int64_t n_features) {
  return absl::InvalidArgumentError("a neighbour index is outside [-1, " + std::to_string(n_features) +
                                    ") (the features' rows)");
}

// The rows these loops read are scattered over the batch (a hit's neighbours are anywhere in its event), so each
// loop asks for the row it needs kPrefetchDistance steps ahead: 2-3x faster on a 100,000-hit event here.
constexpr int64_t kPrefetchDistance = 16;

inline void PrefetchRow(const void* row, int64_t bytes) {
  const char* start = static_cast<const char*>(row);
  for (int64_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(start + offset);
}

// The edges of a (rows, K) neighbour table, columns first_column to K - 1, sorted by the hit they end at (a stable
// counting sort): the edges into hit j are edges[offsets[j] .. offsets[j + 1]), each as i * K + k, in increasing
// (i, k). Also 1 / n_i per row (0 for a row without a real column). The rows are cut into up to kSortBlocks
// blocks that count and place their edges in parallel; each block writes after the blocks before it, so the
// order is the same for any number of blocks.
constexpr int64_t kSortBlocks = 8;

template <typename T>
struct IncomingEdges {
  std::vector<int64_t> offsets;
  std::vector<int32_t> edges;
  std::vector<T> inverse_n;

  absl::Status Build(const int32_t* neighbours, int64_t n_rows, int64_t n_columns, int64_t first_column,
                     int64_t n_hits, tensorflow::thread::ThreadPool* workers) {
    const int64_t n_blocks = std::max<int64_t>(1, std::min<int64_t>({kSortBlocks, workers->NumThreads(), n_rows}));
    const int64_t rows_per_block = (n_rows + n_blocks - 1) / n_blocks;
    // counts[b * (n_hits + 1) + j + 1]: edges of block b into hit j; then where block b's edges into j start.
    std::vector<int64_t> counts(n_blocks * (n_hits + 1), 0);
    inverse_n.assign(n_rows, T(0));
    std::atomic<bool> out_of_range(false);
    auto each_block = [&](auto&& body) {
      workers->ParallelFor(n_blocks, std::numeric_limits<int32_t>::max(), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          body(b, b * rows_per_block, std::min(n_rows, (b + 1) * rows_per_block));
        }
      });
    };
    each_block([&](int64_t b, int64_t first, int64_t last) {
      int64_t* count = counts.data() + b * (n_hits + 1);
      for (int64_t i = first; i < last; ++i) {
        int64_t n_real = 0;
        for (int64_t k = first_column; k < n_columns; ++k) {
          const int32_t j = neighbours[i * n_columns + k];
          if (j < 0) continue;
          if (j >= n_hits) {
            out_of_range = true;
            continue;
          }
          ++count[j + 1];
          ++n_real;
        }
        if (n_real > 0) inverse_n[i] = T(1) / static_cast<T>(n_real);
      }
    });
    if (out_of_range) return OutOfRange(n_hits);
    offsets.assign(n_hits + 1, 0);
    for (int64_t j = 0; j < n_hits; ++j) {
      int64_t start = offsets[j];
      for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t count = counts[b * (n_hits + 1) + j + 1];
        counts[b * (n_hits + 1) + j] = start;
        start += count;
      }
      offsets[j + 1] = start;
    }
    edges.resize(offsets[n_hits]);
    each_block([&](int64_t b, int64_t first, int64_t last) {
      int64_t* next = counts.data() + b * (n_hits + 1);
      for (int64_t i = first; i < last; ++i) {
        for (int64_t e = i * n_columns + first_column; e < (i + 1) * n_columns; ++e) {
          const int32_t j = neighbours[e];
          if (j >= 0) edges[next[j]++] = static_cast<int32_t>(e);
        }
      }
    });
    return absl::OkStatus();
  }

  // Average incoming edges per hit, for the thread pool's cost estimate.
  int64_t MeanCount() const { return offsets.size() > 1 ? offsets.back() / (offsets.size() - 1) + 1 : 1; }
};

template <typename T>
class NeighbourDistancesOp : public OpKernel {
 public:
  explicit NeighbourDistancesOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& coordinates_tensor = context->input(0);
    const Tensor& neighbours_tensor = context->input(1);
    OP_REQUIRES(context, coordinates_tensor.dims() == 2 && neighbours_tensor.dims() == 2,
                absl::InvalidArgumentError("coordinates and neighbours must be matrices"));
    const int64_t n_hits = coordinates_tensor.dim_size(0), n_dims = coordinates_tensor.dim_size(1);
    const int64_t n_rows = neighbours_tensor.dim_size(0), n_columns = neighbours_tensor.dim_size(1);
    OP_REQUIRES(context, n_rows <= n_hits, absl::InvalidArgumentError("more rows than coordinates"));
    Tensor* distances_tensor;
    OP_REQUIRES_OK(context, context->allocate_output(0, neighbours_tensor.shape(), &distances_tensor));
    const T* coordinates = coordinates_tensor.flat<T>().data();
    const int32_t* neighbours = neighbours_tensor.flat<int32_t>().data();
    T* distances = distances_tensor->flat<T>().data();
    std::atomic<bool> out_of_range(false);
    context->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        n_rows, RowCost(n_columns, n_dims), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const T* s_i = coordinates + i * n_dims;
            for (int64_t k = 0; k < n_columns; ++k) {
              const int64_t ahead = (i * n_columns + k) + kPrefetchDistance;
              if (ahead < end * n_columns && neighbours[ahead] >= 0 && neighbours[ahead] < n_hits) {
                __builtin_prefetch(coordinates + static_cast<int64_t>(neighbours[ahead]) * n_dims);
              }
              const int32_t j = neighbours[i * n_columns + k];
              T total = T(0);
              if (j >= n_hits) {
                out_of_range = true;
              } else if (j >= 0) {
                const T* s_j = coordinates + static_cast<int64_t>(j) * n_dims;
                for (int64_t d = 0; d < n_dims; ++d) total += (s_j[d] - s_i[d]) * (s_j[d] - s_i[d]);
              }
              distances[i * n_columns + k] = total;
            }
          }
        });
    OP_REQUIRES(context, !out_of_range, OutOfRange(n_hits));
  }
};

// The gradient of the distances. Row a's own columns are summed where the row is read; the edges (i, k) that
// end at a are added into a table of ends kept by the block of rows that holds i, and the tables are added in
// block order. The rows are cut into kSortBlocks blocks whatever the number of threads (IncomingEdges may use
// fewer: there the blocks do not decide the order of a sum, here they do), so every sum has a fixed order for
// any number of threads, and no edge list is sorted (a (V, S) table per block instead).
template <typename T>
class NeighbourDistancesGradOp : public OpKernel {
 public:
  explicit NeighbourDistancesGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& coordinates_tensor = context->input(0);
    const Tensor& neighbours_tensor = context->input(1);
    const Tensor& grad_tensor = context->input(2);
    OP_REQUIRES(context, coordinates_tensor.dims() == 2 && neighbours_tensor.shape() == grad_tensor.shape() &&
                             neighbours_tensor.dims() == 2,
                absl::InvalidArgumentError("coordinates must be a matrix, neighbours and gradient of one shape"));
    const int64_t n_hits = coordinates_tensor.dim_size(0), n_dims = coordinates_tensor.dim_size(1);
    const int64_t n_rows = neighbours_tensor.dim_size(0), n_columns = neighbours_tensor.dim_size(1);
    OP_REQUIRES(context, n_rows <= n_hits, absl::InvalidArgumentError("more rows than coordinates"));
    Tensor* grad_coordinates_tensor;
    OP_REQUIRES_OK(context, context->allocate_output(0, coordinates_tensor.shape(), &grad_coordinates_tensor));
    const T* coordinates = coordinates_tensor.flat<T>().data();
    const int32_t* neighbours = neighbours_tensor.flat<int32_t>().data();
    const T* grad = grad_tensor.flat<T>().data();
    T* grad_coordinates = grad_coordinates_tensor->flat<T>().data();
    auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;

    const int64_t n_blocks = std::max<int64_t>(1, std::min<int64_t>(kSortBlocks, n_rows));
    const int64_t rows_per_block = (n_rows + n_blocks - 1) / n_blocks;
    const int64_t table_size = n_hits * n_dims;
    Tensor ends_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(coordinates_tensor.dtype(),
                                                   TensorShape({n_blocks, n_hits, n_dims}), &ends_tensor));
    T* ends = ends_tensor.flat<T>().data();
    std::atomic<bool> out_of_range(false);
    workers->ParallelFor(n_blocks, std::numeric_limits<int32_t>::max(), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        T* ends_b = ends + b * table_size;
        std::fill(ends_b, ends_b + table_size, T(0));
        const int64_t first = b * rows_per_block, last = std::min(n_rows, (b + 1) * rows_per_block);
        for (int64_t i = first; i < last; ++i) {
          const T* s_i = coordinates + i * n_dims;
          T* out = grad_coordinates + i * n_dims;
          std::fill(out, out + n_dims, T(0));
          for (int64_t k = 0; k < n_columns; ++k) {
            const int64_t ahead = (i * n_columns + k) + kPrefetchDistance;
            if (ahead < last * n_columns && neighbours[ahead] >= 0 && neighbours[ahead] < n_hits) {
              __builtin_prefetch(coordinates + static_cast<int64_t>(neighbours[ahead]) * n_dims);
              __builtin_prefetch(ends_b + static_cast<int64_t>(neighbours[ahead]) * n_dims, 1);
            }
            const int32_t j = neighbours[i * n_columns + k];
            if (j < 0) continue;
            if (j >= n_hits) {
              out_of_range = true;
              continue;
            }
            const T twice_g = 2 * grad[i * n_columns + k];
            const T* s_j = coordinates + static_cast<int64_t>(j) * n_dims;
            T* end_j = ends_b + static_cast<int64_t>(j) * n_dims;
            for (int64_t d = 0; d < n_dims; ++d) {
              const T term = twice_g * (s_i[d] - s_j[d]);
              out[d] += term;
              end_j[d] -= term;
            }
          }
        }
      }
    });
    OP_REQUIRES(context, !out_of_range, OutOfRange(n_hits));
    workers->ParallelFor(n_hits, RowCost(n_blocks, n_dims), [&](int64_t begin, int64_t end) {
      for (int64_t a = begin; a < end; ++a) {
        T* out = grad_coordinates + a * n_dims;
        if (a >= n_rows) std::fill(out, out + n_dims, T(0));  // a hit without a row of its own
        for (int64_t b = 0; b < n_blocks; ++b) {
          const T* end_a = ends + b * table_size + a * n_dims;
          for (int64_t d = 0; d < n_dims; ++d) out[d] += end_a[d];
        }
      }
    });
  }
};

// The inner loops, over the P features of one (row, column) pair. On x86-64 with GCC each is compiled three
// times, for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the baseline, and the loader picks the best one the
// processor runs: the build is portable and still vectorised (the AVX-512 version makes the aggregation and its
// gradient about 15 % faster where the processor has it). Sums run in a fixed order on a given machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GRAVTRAIN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GRAVTRAIN_CLONES
#endif

// sum += w f_j; where w f_j > max: max = w f_j, arg = k.
template <typename T>
GRAVTRAIN_CLONES void AccumulateColumn(const T* __restrict f_j, T w, int32_t k, int64_t width, T* __restrict sum,
                                       T* __restrict max, int32_t* __restrict arg) {
  for (int64_t p = 0; p < width; ++p) {
    const T value = w * f_j[p];
    sum[p] += value;
    const bool above = value > max[p];
    max[p] = above ? value : max[p];
    arg[p] = above ? k : arg[p];
  }
}

// sum_p a_p b_p
template <typename T>
GRAVTRAIN_CLONES T Dot(const T* __restrict a, const T* __restrict b, int64_t width) {
  T dot = T(0);
#pragma omp simd reduction(+ : dot)
  for (int64_t p = 0; p < width; ++p) dot += a[p] * b[p];
  return dot;
}

// gf_j += scale g_i
template <typename T>
GRAVTRAIN_CLONES void AccumulateScaled(const T* __restrict g_i, T scale, int64_t width, T* __restrict gf_j) {
  for (int64_t p = 0; p < width; ++p) gf_j[p] += scale * g_i[p];
}

// gf_j += scale g_i + [arg_i = k] w h_i
template <typename T>
GRAVTRAIN_CLONES void AccumulateEdge(const T* __restrict g_i, const T* __restrict h_i, const int32_t* __restrict arg_i,
                                     T scale, T w, int32_t k, int64_t width, T* __restrict gf_j) {
  for (int64_t p = 0; p < width; ++p) gf_j[p] += scale * g_i[p] + (arg_i[p] == k ? w * h_i[p] : T(0));
}

// The attributes the mean/max op and its gradient share.
struct MeanMaxAttributes {
  float scale;
  int64_t first_column;

  explicit MeanMaxAttributes(OpKernelConstruction* context) {
    OP_REQUIRES_OK(context, context->GetAttr("scale", &scale));
    OP_REQUIRES_OK(context, context->GetAttr("first_column", &first_column));
  }
};

template <typename T>
class NeighbourMeanMaxOp : public OpKernel {
 public:
  explicit NeighbourMeanMaxOp(OpKernelConstruction* context) : OpKernel(context), attributes_(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& features_tensor = context->input(0);
    const Tensor& neighbours_tensor = context->input(1);
    const Tensor& distances_tensor = context->input(2);
    const int64_t first_column = attributes_.first_column;
    const T scale = static_cast<T>(attributes_.scale);
    OP_REQUIRES_OK(context, CheckShapes(features_tensor, neighbours_tensor, distances_tensor, first_column));
    const int64_t n_features = features_tensor.dim_size(0), width = features_tensor.dim_size(1);
    const int64_t n_rows = neighbours_tensor.dim_size(0), n_columns = neighbours_tensor.dim_size(1);
    Tensor *mean_tensor, *max_tensor, *argmax_tensor;
    const TensorShape out_shape({n_rows, width});
    OP_REQUIRES_OK(context, context->allocate_output(0, out_shape, &mean_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, out_shape, &max_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, out_shape, &argmax_tensor));
    const T* features = features_tensor.flat<T>().data();
    const int32_t* neighbours = neighbours_tensor.flat<int32_t>().data();
    const T* distances = distances_tensor.flat<T>().data();
    T* mean = mean_tensor->flat<T>().data();
    T* maximum = max_tensor->flat<T>().data();
    int32_t* argmax = argmax_tensor->flat<int32_t>().data();
    std::atomic<bool> out_of_range(false);

    auto rows = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T* sum_i = mean + i * width;
        T* max_i = maximum + i * width;
        int32_t* arg_i = argmax + i * width;
        std::fill(sum_i, sum_i + width, T(0));
        std::fill(max_i, max_i + width, std::numeric_limits<T>::lowest());
        std::fill(arg_i, arg_i + width, -1);
        int64_t n_real = 0;
        for (int64_t k = first_column; k < n_columns; ++k) {
          const int64_t ahead = (i * n_columns + k) + kPrefetchDistance;
          if (ahead < end * n_columns && neighbours[ahead] >= 0 && neighbours[ahead] < n_features) {
            PrefetchRow(features + static_cast<int64_t>(neighbours[ahead]) * width, width * sizeof(T));
          }
          const int32_t j = neighbours[i * n_columns + k];
          if (j < 0) continue;
          if (j >= n_features) {
            out_of_range = true;
            continue;
          }
          ++n_real;
          const T w = std::exp(-scale * distances[i * n_columns + k]);
          AccumulateColumn(features + j * width, w, static_cast<int32_t>(k), width, sum_i, max_i, arg_i);
        }
        if (n_real == 0) {
          std::fill(max_i, max_i + width, T(0));
        } else {
          const T inverse = T(1) / static_cast<T>(n_real);
          for (int64_t p = 0; p < width; ++p) {
            sum_i[p] *= inverse;
            // No column above the lowest value: every value was NaN. Keep the NaN (the mean has it too).
            if (arg_i[p] < 0) max_i[p] = std::numeric_limits<T>::quiet_NaN();
          }
        }
      }
    };
    context->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(n_rows, RowCost(n_columns, width),
                                                                            rows);
    OP_REQUIRES(context, !out_of_range, OutOfRange(n_features));
  }

 private:
  MeanMaxAttributes attributes_;
};

template <typename T>
class NeighbourMeanMaxGradOp : public OpKernel {
 public:
  explicit NeighbourMeanMaxGradOp(OpKernelConstruction* context) : OpKernel(context), attributes_(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& features_tensor = context->input(0);
    const Tensor& neighbours_tensor = context->input(1);
    const Tensor& distances_tensor = context->input(2);
    const int64_t first_column = attributes_.first_column;
    const T scale = static_cast<T>(attributes_.scale);
    OP_REQUIRES_OK(context, CheckShapes(features_tensor, neighbours_tensor, distances_tensor, first_column));
    const int64_t n_features = features_tensor.dim_size(0), width = features_tensor.dim_size(1);
    const int64_t n_rows = neighbours_tensor.dim_size(0), n_columns = neighbours_tensor.dim_size(1);
    const TensorShape out_shape({n_rows, width});
    for (int input = 3; input < 6; ++input) {
      OP_REQUIRES(context, context->input(input).shape() == out_shape,
                  absl::InvalidArgumentError("argmax and the gradients must have shape " + out_shape.DebugString()));
    }
    const T* features = features_tensor.flat<T>().data();
    const int32_t* neighbours = neighbours_tensor.flat<int32_t>().data();
    const T* distances = distances_tensor.flat<T>().data();
    const int32_t* argmax = context->input(3).flat<int32_t>().data();
    const T* grad_mean = context->input(4).flat<T>().data();
    const T* grad_max = context->input(5).flat<T>().data();
    Tensor *grad_features_tensor, *grad_distances_tensor;
    OP_REQUIRES_OK(context, context->allocate_output(0, features_tensor.shape(), &grad_features_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, distances_tensor.shape(), &grad_distances_tensor));
    T* grad_features = grad_features_tensor->flat<T>().data();
    T* grad_distances = grad_distances_tensor->flat<T>().data();
    auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;

    // The forward op's weights again, for this op only (0 on padding and before first_column).
    Tensor weights_tensor;
    OP_REQUIRES_OK(context,
                   context->allocate_temp(distances_tensor.dtype(), distances_tensor.shape(), &weights_tensor));
    T* weights = weights_tensor.flat<T>().data();
    workers->ParallelFor(n_rows, RowCost(n_columns, 1), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        std::fill(weights + i * n_columns, weights + i * n_columns + first_column, T(0));
        for (int64_t e = i * n_columns + first_column; e < (i + 1) * n_columns; ++e) {
          weights[e] = neighbours[e] >= 0 ? std::exp(-scale * distances[e]) : T(0);
        }
      }
    });

    IncomingEdges<T> incoming;
    OP_REQUIRES_OK(context, incoming.Build(neighbours, n_rows, n_columns, first_column, n_features, workers));
    const std::vector<T>& inverse_n = incoming.inverse_n;

    // dL/dw, row by row, then dL/dd = -scale w dL/dw; and which columns hold the maximum of some feature.
    std::vector<uint8_t> holds_a_max(n_rows * n_columns, 0);
    workers->ParallelFor(n_rows, RowCost(n_columns, width), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T* g_i = grad_mean + i * width;
        const T* h_i = grad_max + i * width;
        const int32_t* arg_i = argmax + i * width;
        T* gw_i = grad_distances + i * n_columns;  // dL/dw first
        std::fill(gw_i, gw_i + first_column, T(0));
        for (int64_t k = first_column; k < n_columns; ++k) {
          const int64_t ahead = (i * n_columns + k) + kPrefetchDistance;
          if (ahead < end * n_columns && neighbours[ahead] >= 0) {
            PrefetchRow(features + static_cast<int64_t>(neighbours[ahead]) * width, width * sizeof(T));
          }
          const int32_t j = neighbours[i * n_columns + k];
          gw_i[k] = j >= 0 ? Dot(features + j * width, g_i, width) * inverse_n[i] : T(0);
        }
        for (int64_t p = 0; p < width; ++p) {
          const int32_t k = arg_i[p];
          if (k < 0) continue;
          gw_i[k] += features[static_cast<int64_t>(neighbours[i * n_columns + k]) * width + p] * h_i[p];
          holds_a_max[i * n_columns + k] = 1;
        }
        const T* w_i = weights + i * n_columns;
        for (int64_t k = first_column; k < n_columns; ++k) gw_i[k] *= -scale * w_i[k];
      }
    });

    // dL/df, hit by hit over its incoming edges.
    workers->ParallelFor(n_features, RowCost(incoming.MeanCount(), width), [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        T* gf_j = grad_features + j * width;
        std::fill(gf_j, gf_j + width, T(0));
        for (int64_t edge = incoming.offsets[j]; edge < incoming.offsets[j + 1]; ++edge) {
          if (edge + kPrefetchDistance < incoming.offsets[end]) {
            const int64_t ahead = incoming.edges[edge + kPrefetchDistance];
            PrefetchRow(grad_mean + (ahead / n_columns) * width, width * sizeof(T));
            __builtin_prefetch(weights + ahead);
            __builtin_prefetch(holds_a_max.data() + ahead);
          }
          if (edge + kPrefetchDistance / 2 < incoming.offsets[end]) {
            const int64_t ahead = incoming.edges[edge + kPrefetchDistance / 2];
            if (holds_a_max[ahead]) {
              PrefetchRow(grad_max + (ahead / n_columns) * width, width * sizeof(T));
              PrefetchRow(argmax + (ahead / n_columns) * width, width * sizeof(int32_t));
            }
          }
          const int64_t e = incoming.edges[edge];
          const int64_t i = e / n_columns;
          const int32_t k = static_cast<int32_t>(e - i * n_columns);
          const T w = weights[e];
          const T w_over_n = w * inverse_n[i];
          if (!holds_a_max[e]) {
            AccumulateScaled(grad_mean + i * width, w_over_n, width, gf_j);
            continue;
          }
          AccumulateEdge(grad_mean + i * width, grad_max + i * width, argmax + i * width, w_over_n, w, k, width,
                         gf_j);
        }
      }
    });
  }

 private:
  MeanMaxAttributes attributes_;
};

}  // namespace

#define REGISTER(T)                                                                                    \
  REGISTER_KERNEL_BUILDER(Name("GravtrainNeighbourDistances").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          NeighbourDistancesOp<T>);                                                    \
  REGISTER_KERNEL_BUILDER(                                                                             \
      Name("GravtrainNeighbourDistancesGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),               \
      NeighbourDistancesGradOp<T>);                                                                    \
  REGISTER_KERNEL_BUILDER(Name("GravtrainNeighbourMeanMax").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          NeighbourMeanMaxOp<T>);                                                      \
  REGISTER_KERNEL_BUILDER(                                                                             \
      Name("GravtrainNeighbourMeanMaxGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),                 \
      NeighbourMeanMaxGradOp<T>);
REGISTER(float)
REGISTER(double)
#undef REGISTER
