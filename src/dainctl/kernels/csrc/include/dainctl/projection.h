// DepthFlowProjection per-pixel math (semantics: dainctl/kernels/projection.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

// Where one source pixel splats and what it adds at each of its four target pixels.
template <typename A>
struct ProjectionSplat {
  bool lands = false;  // false: the source adds nothing anywhere
  int left = 0, right = 0, top = 0, bottom = 0;
  A neg_weighted_x = 0, neg_weighted_y = 0, weight = 0;
};

// Source pixel (x, y) with flow (fx, fy) and weight w in an image of width x height.
template <typename A>
DAINCTL_HD ProjectionSplat<A> projection_splat(int x, int y, int width, int height, A fx, A fy, A w) {
  ProjectionSplat<A> splat;
  const A target_x = static_cast<A>(x) + fx;
  const A target_y = static_cast<A>(y) + fy;
  // Inclusive bounds, written so that NaN fails them and lands nowhere.
  splat.lands = target_x >= A(0) && target_x <= static_cast<A>(width - 1) && target_y >= A(0) &&
                target_y <= static_cast<A>(height - 1);
  if (!splat.lands) return splat;
  splat.left = floor_nonnegative(target_x);
  splat.top = floor_nonnegative(target_y);
  splat.right = splat.left + 1 < width ? splat.left + 1 : width - 1;
  splat.bottom = splat.top + 1 < height ? splat.top + 1 : height - 1;
  // The same weight at all four corners, flow negated: the projected flow points back to the source.
  splat.neg_weighted_x = -(w * fx);
  splat.neg_weighted_y = -(w * fy);
  splat.weight = w;
  return splat;
}

// Turns summed contributions into the weighted mean (only where the summed weight is positive).
template <typename A>
DAINCTL_HD void projection_average(A weight_sum, A* x, A* y) {
  if (weight_sum > A(0)) {
    *x = *x / weight_sum;
    *y = *y / weight_sum;
  }
}

// A hole is a pixel whose summed weight is <= 0; the scan in each direction stops at the first
// pixel whose summed weight is != 0, which contributes only if its summed weight is > 0.
template <typename A>
DAINCTL_HD bool projection_is_hole(A weight_sum) { return weight_sum <= A(0); }
template <typename A>
DAINCTL_HD bool projection_stops_scan(A weight_sum) { return weight_sum != A(0); }
template <typename A>
DAINCTL_HD bool projection_contributes(A weight_sum) { return weight_sum > A(0); }

// Unweighted mean of a hole's neighbours, added in the order left, right, up, down.
template <typename A>
struct HoleFill {
  A total_x = 0, total_y = 0;
  int found = 0;
  DAINCTL_HD void add(A x, A y) {
    total_x += x;
    total_y += y;
    ++found;
  }
  // Leaves (x, y) unchanged when no neighbour was found.
  DAINCTL_HD void apply(A* x, A* y) const {
    if (found > 0) {
      *x = total_x / static_cast<A>(found);
      *y = total_y / static_cast<A>(found);
    }
  }
};

// The pixels a hole takes its fill from, found by scanning from it along its row and column (left,
// right, up, down); each scan stops at the first pixel whose summed weight is != 0, which is a source
// when its summed weight is > 0. Returns how many (0 to 4) were written to `sources` (plane offsets).
template <typename A>
DAINCTL_HD int projection_fill_sources(const A* weight_sum, int height, int width, int x, int y, int64_t sources[4]) {
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  const int64_t steps[4] = {-1, 1, -static_cast<int64_t>(width), static_cast<int64_t>(width)};
  const int lengths[4] = {x, width - 1 - x, y, height - 1 - y};
  int found = 0;
  for (int direction = 0; direction < 4; ++direction) {  // left, right, up, down
    int64_t neighbour = pixel;
    for (int i = 0; i < lengths[direction]; ++i) {
      neighbour += steps[direction];
      if (projection_stops_scan(weight_sum[neighbour])) {
        if (projection_contributes(weight_sum[neighbour])) sources[found++] = neighbour;
        break;
      }
    }
  }
  return found;
}

// Fills one hole by scanning from it along its row and column (the CUDA driver's way, and the CPU
// driver's when holes are few).
//   averaged_x, averaged_y, weight_sum: (height, width) planes of one batch item.
template <typename A>
DAINCTL_HD void projection_fill_by_scan(const A* averaged_x, const A* averaged_y, const A* weight_sum, int height,
                                        int width, int x, int y, A* value_x, A* value_y) {
  int64_t sources[4];
  const int found = projection_fill_sources(weight_sum, height, width, x, y, sources);
  HoleFill<A> fill;
  for (int i = 0; i < found; ++i) fill.add(averaged_x[sources[i]], averaged_y[sources[i]]);
  fill.apply(value_x, value_y);
}

// ---- backward: the true derivative of the forward above (hole filling included), with the landing
// pixel held constant. The original DAIN backward has a sign slip in the weight's gradient and ignores
// the fill; this one differentiates out = -sum(w f) / sum(w) itself (d/dw_j of the
// mean is -(f_j + out) / sum(w)).
//
// Step 1, the fill: a hole filled from n sources passes grad/n to each (and keeps none); `add(offset,
// gx, gy)` adds to the averaged values' gradient at a source (serially on the CPU, atomics on CUDA).
// The same from a hole's `found` sources, already found (projection_fill_sources).
template <typename A, typename Add>
DAINCTL_HD void projection_fill_gradient_to(const int64_t* sources, int found, const A* grad_x, const A* grad_y,
                                            int64_t pixel, Add add) {
  if (found == 0) return;
  const A share_x = grad_x[pixel] / static_cast<A>(found);
  const A share_y = grad_y[pixel] / static_cast<A>(found);
  for (int i = 0; i < found; ++i) add(sources[i], share_x, share_y);
}

template <typename A, typename Add>
DAINCTL_HD void projection_fill_gradient(const A* weight_sum, const A* grad_x, const A* grad_y, int height, int width,
                                         int x, int y, Add add) {
  int64_t sources[4];
  const int found = projection_fill_sources(weight_sum, height, width, x, y, sources);
  projection_fill_gradient_to(sources, found, grad_x, grad_y, static_cast<int64_t>(y) * width + x, add);
}

// Step 2, the average: from the averaged values' gradient (gx, gy) at a pixel to the summed values'
// (in place) and the summed weight's (*gw). Where the summed weight is <= 0 nothing was divided.
template <typename A>
DAINCTL_HD void projection_average_gradient(A weight_sum, A averaged_x, A averaged_y, A* gx, A* gy, A* gw) {
  if (weight_sum > A(0)) {
    *gw = -(*gx * averaged_x + *gy * averaged_y) / weight_sum;
    *gx = *gx / weight_sum;
    *gy = *gy / weight_sum;
  } else {
    *gw = A(0);
  }
}

// Step 3, the splat: a source pixel's flow and weight gradients from the summed values' gradients
// (sum_gx, sum_gy) and the summed weight's (sum_gw) at the pixels it landed on.
template <typename A>
DAINCTL_HD void projection_source_gradient(int x, int y, int width, int height, A fx, A fy, A w, const A* sum_gx,
                                           const A* sum_gy, const A* sum_gw, A* grad_fx, A* grad_fy, A* grad_w) {
  *grad_fx = *grad_fy = *grad_w = A(0);
  const ProjectionSplat<A> splat = projection_splat<A>(x, y, width, height, fx, fy, w);
  if (!splat.lands) return;
  const int64_t targets[4] = {static_cast<int64_t>(splat.top) * width + splat.left,
                              static_cast<int64_t>(splat.top) * width + splat.right,
                              static_cast<int64_t>(splat.bottom) * width + splat.left,
                              static_cast<int64_t>(splat.bottom) * width + splat.right};
  A gx = 0, gy = 0, gw = 0;
  for (int corner = 0; corner < 4; ++corner) {
    gx += sum_gx[targets[corner]];
    gy += sum_gy[targets[corner]];
    gw += sum_gw[targets[corner]];
  }
  // The splat adds (-w fx, -w fy, w).
  *grad_fx = -w * gx;
  *grad_fy = -w * gy;
  *grad_w = -fx * gx - fy * gy + gw;
}

}  // namespace dainctl
