// 2-D convolution, cross-correlation as in PyTorch, on channels-last activations.
//
// Legend: N batch, C input channels, K output channels, H W input extents, P Q output
// extents, R S kernel extents; stride and pad apply to both spatial axes.
//   x: [N,H,W,C]   w: [K,C,R,S] (PyTorch's layout)   bias: [K]   y: [N,P,Q,K]
//   P = (H + 2*pad - R) / stride + 1, Q = (W + 2*pad - S) / stride + 1
#pragma once
#include <cstddef>

namespace odyssey::kernels {

struct Conv2dShape {
  std::size_t n, c, h, w;  // input: batch, channels, height, width
  std::size_t k;           // output channels
  std::size_t r, s;        // kernel height, width
  std::size_t stride = 1, pad = 0;

  [[nodiscard]] constexpr std::size_t p() const { return (h + 2 * pad - r) / stride + 1; }
  [[nodiscard]] constexpr std::size_t q() const { return (w + 2 * pad - s) / stride + 1; }
  [[nodiscard]] constexpr std::size_t x_size() const { return n * h * w * c; }
  [[nodiscard]] constexpr std::size_t y_size() const { return n * p() * q() * k; }
  [[nodiscard]] constexpr std::size_t w_size() const { return k * c * r * s; }
  /// Multiply-accumulates of the forward pass (each backward pass does as many).
  [[nodiscard]] constexpr std::size_t macs() const { return n * p() * q() * k * c * r * s; }
};

/// How the three passes compute a convolution. `direct`: the implicit GEMM, any
/// shape. `winograd`: F(2x2, 3x3), 3x3 kernels with stride 1 and padding <= 2 only (2.25x
/// fewer multiplies). `winograd4`: F(4x4, 3x3), the same shapes (4x fewer multiplies,
/// somewhat larger rounding errors), and for 3x3 kernels with stride 2 the forward and
/// backward-data passes by polyphase forms with 4x4 output tiles (1.78x fewer multiplies;
/// conv2d_winograd_stride2_applies). `automatic` takes Winograd where it applies, both
/// channel counts are at least 16 (below that the transforms cost more than they save), both
/// output extents at least 2 and the call has more than 8 2x2 tiles (with fewer, it is the
/// weights' memory traffic, which the transform makes larger), the direct convolution
/// elsewhere; of the two Winograd tiles, forward and backward-data take F(4x4, 3x3) where 4x4
/// tiles fit the output (at most 0.65x F(2x2, 3x3)'s multiplies) and the call has at least
/// 128 of them, F(2x2, 3x3) otherwise; for stride 2, see conv2d_automatic_algorithm; the weight gradient has its own
/// rule (conv2d_automatic_weight_algorithm). The choice depends on the shape and, for the
/// weight gradient's two Winograd tiles, on the SIMD target that runs (never on the thread
/// count), so a machine gets the same arithmetic for the same shape on any number of cores.
enum class ConvAlgorithm { automatic, direct, winograd, winograd4 };

/// Whether ConvAlgorithm::winograd and winograd4 can compute all three passes of `shape`
/// (3x3, stride 1, padding <= 2).
bool conv2d_winograd_applies(const Conv2dShape& shape);
/// Whether ConvAlgorithm::winograd4 computes the forward and backward-data passes of `shape`
/// by a stride-2 form: 3x3 kernels with stride 2 and padding <= 2 (polyphase, 4x4 output
/// tiles, 5.06 multiplies per output against 9; the weight gradient runs direct).
bool conv2d_winograd_stride2_applies(const Conv2dShape& shape);
/// What ConvAlgorithm::automatic runs for `shape`'s forward and backward-data passes
/// (direct, winograd or winograd4). For stride 2: winograd4 where both channel counts are
/// at least 16, 4x4 tiles fit the output (at most 0.75x the direct convolution's
/// multiplies) and the forward pass has at least 128 of them.
ConvAlgorithm conv2d_automatic_algorithm(const Conv2dShape& shape);
/// What ConvAlgorithm::automatic runs for `shape`'s weight gradient: the stride-2 rule of
/// conv2d_automatic_algorithm; for stride 1 the direct convolution where the other passes
/// take it, else F(4x4, 3x3) where 4x4 tiles fit the output and tiles x min(C, K) reach the
/// running SIMD target's threshold (65536 on AVX-512, 32768 below), F(2x2, 3x3) otherwise.
ConvAlgorithm conv2d_automatic_weight_algorithm(const Conv2dShape& shape);

/// Elements of scratch memory (of the scalar type, 64-byte aligned) that every conv2d
/// function below needs for `shape`; one buffer serves all three. It grows with the batch
/// (the weight gradient's partial sums over parts of the batch); forward and backward-data
/// need the same for any batch.
std::size_t conv2d_workspace_size(const Conv2dShape& shape);

/// What conv2d_forward can apply to each output before storing it, in the same pass: with v
/// = conv(x, w) + bias at output channel k, y = v * scale[k] + shift[k], plus residual (laid
/// out as y) when it is not null, then max(., 0) when `relu`. An inference-mode batch norm
/// after the convolution (scale = gamma / sqrt(var + eps), shift = beta - mean * scale) and
/// the ReLU or residual join after it thus cost no pass over memory of their own.
template <class T>
struct ConvEpilogue {
  const T* scale;            // [K]
  const T* shift;            // [K]
  const T* residual = nullptr;
  bool relu = false;
};

/// y = conv(x, w) + bias. `bias` may be null; with `epilogue`, that is then mapped as it says.
/// With `prepared` (conv2d_prepare_weights), the weights are read from there and `w` is not
/// read (it may be null); std::invalid_argument when they were prepared for another call
/// (conv2d_prepared_weights_match).
void conv2d_forward(const Conv2dShape& shape, const float* x, const float* w, const float* bias,
                    float* y, float* workspace, ConvAlgorithm algorithm = ConvAlgorithm::automatic,
                    const ConvEpilogue<float>* epilogue = nullptr, const float* prepared = nullptr);
void conv2d_forward(const Conv2dShape& shape, const double* x, const double* w,
                    const double* bias, double* y, double* workspace,
                    ConvAlgorithm algorithm = ConvAlgorithm::automatic,
                    const ConvEpilogue<double>* epilogue = nullptr, const double* prepared = nullptr);

/// Weights prepared once for many forward calls. Every forward call first transforms its
/// weights (Winograd) or packs them into the register tile's order (direct), which costs as
/// much as the convolution itself where the call has few pixels per weight (batch-1
/// inference: half its time). When the weights stay fixed between calls, prepare them once
/// and pass them as conv2d_forward's `prepared`: the same arithmetic on the same values, so
/// bitwise the same outputs. The layout depends on the shape (not the batch), on the
/// algorithm the call runs (which for F(4x4, 3x3) depends on the batch) and on the SIMD
/// target; the buffer records all three, and conv2d_forward checks them.
///
/// Elements (64-byte aligned buffer) of `shape`'s prepared weights under `algorithm`.
std::size_t conv2d_prepared_weights_size(const Conv2dShape& shape, ConvAlgorithm algorithm = ConvAlgorithm::automatic);
/// Writes w's prepared weights for `shape`'s forward call under `algorithm` on the running
/// SIMD target to `prepared` (conv2d_prepared_weights_size elements).
void conv2d_prepare_weights(const Conv2dShape& shape, const float* w, float* prepared,
                            ConvAlgorithm algorithm = ConvAlgorithm::automatic);
void conv2d_prepare_weights(const Conv2dShape& shape, const double* w, double* prepared,
                            ConvAlgorithm algorithm = ConvAlgorithm::automatic);
/// Whether `prepared` (`size` elements; null or too small: false) holds prepared weights that
/// serve `shape`'s forward call under `algorithm` on the running target.
bool conv2d_prepared_weights_match(const Conv2dShape& shape, const float* prepared, std::size_t size,
                                   ConvAlgorithm algorithm = ConvAlgorithm::automatic);
bool conv2d_prepared_weights_match(const Conv2dShape& shape, const double* prepared, std::size_t size,
                                   ConvAlgorithm algorithm = ConvAlgorithm::automatic);

/// dx = conv_transpose(dy, w): overwritten, or added to when `accumulate`.
void conv2d_backward_data(const Conv2dShape& shape, const float* dy, const float* w, float* dx,
                          float* workspace, bool accumulate = false,
                          ConvAlgorithm algorithm = ConvAlgorithm::automatic);
void conv2d_backward_data(const Conv2dShape& shape, const double* dy, const double* w,
                          double* dx, double* workspace, bool accumulate = false,
                          ConvAlgorithm algorithm = ConvAlgorithm::automatic);

/// dw += sum over pixels of dy (x) x, and db += sum over pixels of dy (db may be null).
/// The sums run in an order that does not depend on the thread count.
void conv2d_backward_weights(const Conv2dShape& shape, const float* x, const float* dy,
                             float* dw, float* db, float* workspace,
                             ConvAlgorithm algorithm = ConvAlgorithm::automatic);
void conv2d_backward_weights(const Conv2dShape& shape, const double* x, const double* dy,
                             double* dw, double* db, double* workspace,
                             ConvAlgorithm algorithm = ConvAlgorithm::automatic);

}  // namespace odyssey::kernels
