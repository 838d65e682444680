// odyssey.kernels: the SIMD kernels' entry points, re-exported from their plain headers
// (kernels/include/odyssey/kernels/). The kernels themselves are Highway dynamic-dispatch
// translation units outside any module; see DESIGN.md, "Kernels behind a plain boundary".
module;
#include <odyssey/kernels/conv.h>
#include <odyssey/kernels/dispatch.h>
export module odyssey.kernels;

export namespace odyssey::kernels {
using odyssey::kernels::active_target;
using odyssey::kernels::Conv2dShape;
using odyssey::kernels::conv2d_backward_data;
using odyssey::kernels::conv2d_backward_weights;
using odyssey::kernels::conv2d_forward;
using odyssey::kernels::conv2d_workspace_size;
using odyssey::kernels::available_targets;
using odyssey::kernels::use_best_target;
using odyssey::kernels::use_target;
}  // namespace odyssey::kernels
