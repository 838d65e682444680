// odyssey.kernels: the SIMD kernels' entry points, re-exported from their plain headers
// (kernels/include/odyssey/kernels/). The kernels themselves are Highway dynamic-dispatch
// translation units outside any module; see DESIGN.md, "Kernels behind a plain boundary".
module;
#include <odyssey/kernels/batchnorm.h>
#include <odyssey/kernels/conv.h>
#include <odyssey/kernels/dispatch.h>
#include <odyssey/kernels/eltwise.h>
#include <odyssey/kernels/flatten.h>
#include <odyssey/kernels/linear.h>
#include <odyssey/kernels/loss.h>
#include <odyssey/kernels/pool.h>
export module odyssey.kernels;

export namespace odyssey::kernels {
// dispatch.h
using odyssey::kernels::active_target;
using odyssey::kernels::available_targets;
using odyssey::kernels::use_best_target;
using odyssey::kernels::use_target;
// conv.h
using odyssey::kernels::Conv2dShape;
using odyssey::kernels::ConvAlgorithm;
using odyssey::kernels::conv2d_automatic_algorithm;
using odyssey::kernels::conv2d_automatic_weight_algorithm;
using odyssey::kernels::conv2d_backward_data;
using odyssey::kernels::conv2d_backward_weights;
using odyssey::kernels::ConvEpilogue;
using odyssey::kernels::conv2d_forward;
using odyssey::kernels::conv2d_prepare_weights;
using odyssey::kernels::conv2d_prepared_weights_match;
using odyssey::kernels::conv2d_prepared_weights_size;
using odyssey::kernels::conv2d_winograd_applies;
using odyssey::kernels::conv2d_winograd_stride2_applies;
using odyssey::kernels::conv2d_workspace_size;
// batchnorm.h
using odyssey::kernels::BatchNormShape;
using odyssey::kernels::batchnorm_backward_inference;
using odyssey::kernels::batchnorm_backward_training;
using odyssey::kernels::batchnorm_forward_inference;
using odyssey::kernels::batchnorm_forward_training;
using odyssey::kernels::batchnorm_workspace_size;
using odyssey::kernels::batchnorm_moments;
using odyssey::kernels::batchnorm_forward_with_moments;
using odyssey::kernels::batchnorm_gradient_sums;
using odyssey::kernels::batchnorm_backward_with_sums;
// eltwise.h
using odyssey::kernels::accumulate;
using odyssey::kernels::AdamWParams;
using odyssey::kernels::adamw_update;
using odyssey::kernels::add_forward;
using odyssey::kernels::add_relu_forward;
using odyssey::kernels::dropout_backward;
using odyssey::kernels::dropout_forward;
using odyssey::kernels::DropoutParams;
using odyssey::kernels::relu_backward;
using odyssey::kernels::relu_forward;
using odyssey::kernels::SgdParams;
using odyssey::kernels::sgd_update;
// pool.h
using odyssey::kernels::avgpool2d_backward;
using odyssey::kernels::avgpool2d_forward;
using odyssey::kernels::global_avgpool_backward;
using odyssey::kernels::global_avgpool_forward;
using odyssey::kernels::maxpool2d_backward;
using odyssey::kernels::maxpool2d_forward;
using odyssey::kernels::MaxPool2dShape;
using odyssey::kernels::Pool2dShape;
// flatten.h
using odyssey::kernels::flatten_nhwc_to_nchw;
using odyssey::kernels::unflatten_nchw_to_nhwc;
// linear.h
using odyssey::kernels::linear_backward_data;
using odyssey::kernels::linear_backward_weights;
using odyssey::kernels::linear_forward;
// loss.h
using odyssey::kernels::LossStats;
using odyssey::kernels::softmax_cross_entropy_backward;
using odyssey::kernels::softmax_cross_entropy_forward;
}  // namespace odyssey::kernels
