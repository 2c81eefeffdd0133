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

// Fills one hole by scanning from it along its row and column (the CUDA driver's way, and the CPU
// driver's when holes are few). Each scan stops at the first pixel whose summed weight is != 0.
//   averaged_x, averaged_y, weight_sum: (height, width) planes of one batch item.
template <typename A>
DAINCTL_HD void projection_fill_by_scan(const A* averaged_x, const A* averaged_y, const A* weight_sum, int height,
                                        int width, int x, int y, A* value_x, A* value_y) {
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  const int64_t steps[4] = {-1, 1, -static_cast<int64_t>(width), static_cast<int64_t>(width)};
  const int lengths[4] = {x, width - 1 - x, y, height - 1 - y};
  HoleFill<A> fill;
  for (int direction = 0; direction < 4; ++direction) {  // left, right, up, down
    int64_t neighbour = pixel;
    for (int i = 0; i < lengths[direction]; ++i) {
      neighbour += steps[direction];
      if (projection_stops_scan(weight_sum[neighbour])) {
        if (projection_contributes(weight_sum[neighbour])) fill.add(averaged_x[neighbour], averaged_y[neighbour]);
        break;
      }
    }
  }
  fill.apply(value_x, value_y);
}

}  // namespace dainctl
