// CPU drivers: loop over pixels (OpenMP over rows) and call the per-pixel math in include/dainctl.
#include "dainctl/cpu_drivers.h"

#include <vector>

#include "dainctl/adaptive_warp.h"
#include "dainctl/backward_warp.h"
#include "dainctl/cost_volume.h"
#include "dainctl/projection.h"

namespace dainctl {
namespace cpu {

namespace {

// Adds, to every hole of one (H,W) image, its nearest scan-stopping neighbour in one direction.
// `step` walks along a line, `lines`/`line_step` enumerate the lines; sweeping keeps the fill O(H*W)
// where a per-pixel scan would be O(H*W*(H+W)) on images that are mostly holes.
template <typename A>
void sweep_neighbours(const A* averaged_x, const A* averaged_y, const A* weight_sum, HoleFill<A>* fills,
                      int lines, int64_t line_step, int length, int64_t step, bool forward) {
  for (int line = 0; line < lines; ++line) {
    const int64_t line_start = line * line_step;
    int64_t last = -1;  // offset of the nearest scan-stopping pixel seen so far, -1 if none
    for (int i = 0; i < length; ++i) {
      const int64_t offset = line_start + (forward ? i : length - 1 - i) * step;
      if (projection_is_hole(weight_sum[offset]) && last >= 0 && projection_contributes(weight_sum[last]))
        fills[offset].add(averaged_x[last], averaged_y[last]);
      if (projection_stops_scan(weight_sum[offset])) last = offset;
    }
  }
}

}  // namespace

template <typename T>
void depth_flow_projection(const T* flow, const T* weight, T* out, int64_t batch, int height, int width,
                           bool fill_holes) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;

#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    const T* flow_x = flow + b * 2 * plane;
    const T* flow_y = flow_x + plane;
    const T* weights = weight + b * plane;
    // Summed -w*fx, -w*fy and w per target pixel. One batch item is splatted serially: targets
    // collide, and a fixed order keeps the CPU result deterministic.
    std::vector<A> sums(3 * plane, A(0));
    A* sum_x = sums.data();
    A* sum_y = sum_x + plane;
    A* weight_sum = sum_y + plane;
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        const ProjectionSplat<A> splat = projection_splat<A>(x, y, width, height, Storage<T>::load(flow_x[pixel]),
                                                             Storage<T>::load(flow_y[pixel]),
                                                             Storage<T>::load(weights[pixel]));
        if (!splat.lands) continue;
        const int64_t targets[4] = {static_cast<int64_t>(splat.top) * width + splat.left,
                                    static_cast<int64_t>(splat.top) * width + splat.right,
                                    static_cast<int64_t>(splat.bottom) * width + splat.left,
                                    static_cast<int64_t>(splat.bottom) * width + splat.right};
        for (int64_t target : targets) {
          sum_x[target] += splat.neg_weighted_x;
          sum_y[target] += splat.neg_weighted_y;
          weight_sum[target] += splat.weight;
        }
      }
    }
    for (int64_t pixel = 0; pixel < plane; ++pixel)
      projection_average(weight_sum[pixel], &sum_x[pixel], &sum_y[pixel]);

    T* out_x = out + b * 2 * plane;
    T* out_y = out_x + plane;
    if (!fill_holes) {
      for (int64_t pixel = 0; pixel < plane; ++pixel) {
        out_x[pixel] = Storage<T>::store(sum_x[pixel]);
        out_y[pixel] = Storage<T>::store(sum_y[pixel]);
      }
      continue;
    }
    // Directions in the order the CUDA scan adds them: left, right, up, down.
    std::vector<HoleFill<A>> fills(plane);
    sweep_neighbours(sum_x, sum_y, weight_sum, fills.data(), height, width, width, 1, true);
    sweep_neighbours(sum_x, sum_y, weight_sum, fills.data(), height, width, width, 1, false);
    sweep_neighbours(sum_x, sum_y, weight_sum, fills.data(), width, 1, height, width, true);
    sweep_neighbours(sum_x, sum_y, weight_sum, fills.data(), width, 1, height, width, false);
    for (int64_t pixel = 0; pixel < plane; ++pixel) {
      A value_x = sum_x[pixel];
      A value_y = sum_y[pixel];
      if (projection_is_hole(weight_sum[pixel])) fills[pixel].apply(&value_x, &value_y);
      out_x[pixel] = Storage<T>::store(value_x);
      out_y[pixel] = Storage<T>::store(value_y);
    }
  }
}

template <typename T>
void filter_interpolation(const T* input, const T* flow, const T* filters, T* out, int64_t batch, int channels,
                          int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        filter_interpolation_pixel<T, T>(input + b * channels * plane, flow + b * 2 * plane,
                                         filters + b * kFilterTaps * plane, out + b * channels * plane, channels,
                                         height, width, x, y);
      }
    }
  }
}

template <typename T>
void correlation(const T* a, const T* b, T* out, int64_t batch, int channels, int height, int width,
                 int max_displacement) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int side = 2 * max_displacement + 1;
  const int64_t displacements = static_cast<int64_t>(side) * side;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t item = 0; item < batch; ++item) {
    for (int y = 0; y < height; ++y) {
      const T* first = a + item * channels * plane;
      const T* second = b + item * channels * plane;
      T* result = out + item * displacements * plane;
      for (int d = 0; d < displacements; ++d) {
        const int dy = d / side - max_displacement;
        const int dx = d % side - max_displacement;
        for (int x = 0; x < width; ++x) {
          result[d * plane + static_cast<int64_t>(y) * width + x] =
              Storage<T>::store(correlation_value(first, second, channels, height, width, x, y, dx, dy));
        }
      }
    }
  }
}

template <typename T>
void backward_warp(const T* input, const T* flow, T* out, int64_t batch, int channels, int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        backward_warp_pixel<T, T>(input + b * channels * plane, flow + b * 2 * plane, out + b * channels * plane,
                                  channels, height, width, x, y);
      }
    }
  }
}

#define DAINCTL_INSTANTIATE(T)                                                                             \
  template void depth_flow_projection<T>(const T*, const T*, T*, int64_t, int, int, bool);                \
  template void filter_interpolation<T>(const T*, const T*, const T*, T*, int64_t, int, int, int);         \
  template void correlation<T>(const T*, const T*, T*, int64_t, int, int, int, int);                       \
  template void backward_warp<T>(const T*, const T*, T*, int64_t, int, int, int);

DAINCTL_INSTANTIATE(float)
DAINCTL_INSTANTIATE(double)

}  // namespace cpu
}  // namespace dainctl
