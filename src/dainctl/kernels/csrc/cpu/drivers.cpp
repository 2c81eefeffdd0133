// CPU drivers: loop over pixels (OpenMP over rows) and call the per-pixel math in include/dainctl.
#include "dainctl/cpu_drivers.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "dainctl/adaptive_warp.h"
#include "dainctl/backward_warp.h"
#include "dainctl/bicubic_warp.h"
#include "dainctl/cost_volume.h"
#include "dainctl/projection.h"

namespace dainctl {
namespace cpu {

namespace {

// The most elements of the per-thread buffers a scatter may hold at once (64 MB of float32).
constexpr int64_t kScatterBufferElements = int64_t(16) << 20;

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// How many rows from its own a pixel of a gather op reads: `margin` (the taps' rows around the sample
// point) plus the largest |clamp(y + fy, 0, height - 1) - y| over the pixels, a NaN displacement
// counting as none. Found only where bands can be cut (more than one thread); one thread: `height`.
//   flow_y: (height, width) of T
template <typename T>
int vertical_reach(const T* flow_y, int height, int width, int margin) {
  using A = typename Storage<T>::acc;
  if (max_threads() == 1) return height;
  A largest = 0;
#pragma omp parallel for schedule(static) reduction(max : largest)
  for (int y = 0; y < height; ++y) {
    const A last = static_cast<A>(height - 1);
    const T* row = flow_y + static_cast<int64_t>(y) * width;
    A row_largest = 0;
#pragma omp simd reduction(max : row_largest)
    for (int x = 0; x < width; ++x) {
      const A fy = Storage<T>::load(row[x]);
      A sample = static_cast<A>(y) + (fy == fy ? fy : A(0));
      sample = sample > A(0) ? sample : A(0);
      sample = sample < last ? sample : last;
      const A distance = abs_of(sample - static_cast<A>(y));
      row_largest = distance > row_largest ? distance : row_largest;
    }
    largest = row_largest > largest ? row_largest : largest;
  }
  return static_cast<int>(largest) + 1 + margin;
}

// The filter's window (`FilterWindow` in adaptive_warp.h) where its 4 columns are neighbours (none
// clamped at the frame's border): each window row is read, and added to, as one run of 4 (the forward
// passes no `target`).
//   image, target: (channels, plane)
template <typename T, typename A>
struct InteriorFilterWindow {
  const T* image;
  A* target;
  int64_t plane;
  const int64_t* row;  // the window's 4 row offsets (FilterTaps::row)
  int col;             // its first column

  void load(int c, A value[kFilterTaps]) const {
    const T* channel = image + c * plane + col;
    for (int a = 0; a < kFilterSize; ++a)
      for (int b = 0; b < kFilterSize; ++b) value[a * kFilterSize + b] = Storage<T>::load(channel[row[a] + b]);
  }
  void scatter(int c, const A gradient[kFilterTaps]) const {
    A* channel = target + c * plane + col;
    for (int a = 0; a < kFilterSize; ++a)
      for (int b = 0; b < kFilterSize; ++b) channel[row[a] + b] += gradient[a * kFilterSize + b];
  }
  void add(int c, int64_t offset, A value) const { target[c * plane + offset] += value; }
};

// Calls `body(window)` with the filter window for pixel taps `taps`: the interior one where `runs` is
// allowed and the 4 columns are neighbours, the general `FilterWindow` (through `add`) otherwise.
//   image, target: (channels, plane); `target` and `add` only for the backward
template <typename T, typename A, typename Add, typename Body>
void with_filter_window(bool runs, const FilterTaps<A>& taps, const T* image, A* target, int64_t plane, Add add,
                        Body body) {
  if (runs && taps.valid && taps.col[kFilterSize - 1] - taps.col[0] == kFilterSize - 1)
    body(InteriorFilterWindow<T, A>{image, target, plane, taps.row, taps.col[0]});
  else
    body(FilterWindow<T, A, Add>{image, plane, &taps, add});
}

// One row's warp samples (`backward_warp_sample`), a plain array per field so that the loop finding
// them vectorises (an array of `WarpSample`s did not). Each thread keeps its own.
template <typename A>
struct WarpRow {
  std::vector<int> top_left, top_right, bottom_left, bottom_right;
  std::vector<A> alpha, beta;
  std::vector<A> pass_x, pass_y;  // the clamp masks of the flow's gradient (backward_warp_pass); find_masks

  template <typename T>
  void find(const T* flow_x, const T* flow_y, int y, int height, int width) {
    for (auto* field : {&top_left, &top_right, &bottom_left, &bottom_right}) field->resize(width);
    alpha.resize(width);
    beta.resize(width);
    int* tl = top_left.data();
    int* tr = top_right.data();
    int* bl = bottom_left.data();
    int* br = bottom_right.data();
    A* a = alpha.data();
    A* b = beta.data();
    DAINCTL_SIMD
    for (int x = 0; x < width; ++x) {
      const WarpSample<A> sample =
          backward_warp_sample<A>(Storage<T>::load(flow_x[x]), Storage<T>::load(flow_y[x]), x, y, height, width);
      tl[x] = sample.top_left;
      tr[x] = sample.top_right;
      bl[x] = sample.bottom_left;
      br[x] = sample.bottom_right;
      a[x] = sample.alpha;
      b[x] = sample.beta;
    }
  }
  // The clamp masks of the row's flow (the backward's), in a loop that vectorises.
  template <typename T>
  void find_masks(const T* flow_x, const T* flow_y, int y, int height, int width) {
    pass_x.resize(width);
    pass_y.resize(width);
    A* px = pass_x.data();
    A* py = pass_y.data();
    DAINCTL_SIMD
    for (int x = 0; x < width; ++x) {
      px[x] = backward_warp_pass(Storage<T>::load(flow_x[x]), x, width);
      py[x] = backward_warp_pass(Storage<T>::load(flow_y[x]), y, height);
    }
  }
  WarpSample<A> operator[](int x) const {
    return WarpSample<A>{top_left[x], top_right[x], bottom_left[x], bottom_right[x], alpha[x], beta[x]};
  }
};

// Bands of rows for a scatter on `threads` (more than one) threads whose taps lie at most `reach` rows
// from their pixel's: the first rows of each band (and, last, `height`), or nothing where none are worth
// cutting. The bands run in two rounds, the even ones and then the odd ones; two bands of one round lie a
// whole band apart, and every band but the first and the last is at least 2 * reach rows tall, so no two
// threads of a round ever add to one row. Equal bands where they are tall enough; otherwise the inner
// bands are exactly 2 * reach rows and the two outer ones share the rest, and with fewer bands if need be.
// A round waits for its tallest band, and uneven bands can keep threads waiting longer than the buffers'
// zeroing and summing cost (measured: rounds 3% over an even split of the rows still win, 25% over
// lose): past 10%, nothing.
std::vector<int> scatter_bands(int height, int reach, int threads) {
  const int64_t gap = 2 * static_cast<int64_t>(reach);
  auto balanced = [height, threads](const std::vector<int>& first) {
    int longest[2] = {0, 0};
    for (int band = 0; band + 1 < static_cast<int>(first.size()); ++band)
      longest[band % 2] = std::max(longest[band % 2], first[band + 1] - first[band]);
    return static_cast<int64_t>(longest[0] + longest[1]) * threads * 10 <= static_cast<int64_t>(height) * 11;
  };
  for (int bands = 2 * threads; bands >= 3; --bands) {
    std::vector<int> first(bands + 1);
    if (height / bands >= gap) {
      for (int band = 0; band <= bands; ++band)
        first[band] = static_cast<int>(static_cast<int64_t>(height) * band / bands);
      return balanced(first) ? first : std::vector<int>{};
    }
    const int64_t rest = height - (bands - 2) * gap;  // for the two outer bands
    if (rest < 2) continue;
    first[0] = 0;
    first[1] = static_cast<int>(rest / 2);
    for (int band = 2; band < bands; ++band) first[band] = static_cast<int>(first[band - 1] + gap);
    first[bands] = height;
    return balanced(first) ? first : std::vector<int>{};
  }
  return {};
}

// The input's gradient of a gather op scatters to its taps, where the rows of two threads may meet.
// `rows(y, c0, count, target)` does row y for channels [c0, c0 + count), adding channel c0 + c's
// gradient into the plane at `target + c * plane` (in the result or in a thread's own buffer). No tap
// lies more than `reach` rows from its pixel's row.
// `out`: (channels, plane) of T, written whole.
//
// One thread adds straight into `out`, and so do several where the rows can be cut into bands
// (`scatter_bands`). Otherwise (motion too large for the bands) the rows run in parallel and each thread
// adds into its own buffers, which are summed into `out` at the end; those hold a chunk of the channels
// at a time, so their size stays bounded for wide features.
template <typename T, typename Rows>
void scatter_rows(int channels, int height, int64_t plane, int reach, T* out, Rows rows) {
  using A = typename Storage<T>::acc;
  static_assert(sizeof(A) == sizeof(T), "the CPU drivers accumulate in the stored type (float32 or float64)");
  const int threads = max_threads();
  const std::vector<int> first = threads == 1 ? std::vector<int>{0, height} : scatter_bands(height, reach, threads);
  if (!first.empty()) {
    const int bands = static_cast<int>(first.size()) - 1;
#pragma omp parallel
    {
#pragma omp for schedule(static)
      for (int64_t index = 0; index < channels * plane; ++index) out[index] = T(0);
      for (int round = 0; round < 2; ++round) {
#pragma omp for schedule(static)
        for (int band = round; band < bands; band += 2)
          for (int y = first[band]; y < first[band + 1]; ++y) rows(y, 0, channels, out);
      }
    }
    return;
  }
  const int chunk = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(channels, kScatterBufferElements / std::max<int64_t>(1, threads * plane))));
  std::unique_ptr<A[]> buffers(new A[static_cast<size_t>(threads) * chunk * plane]);  // each thread zeroes its own
  for (int c0 = 0; c0 < channels; c0 += chunk) {
    const int count = std::min(chunk, channels - c0);
#pragma omp parallel
    {
      const int team = team_size();  // at most `threads`
      A* mine = buffers.get() + static_cast<int64_t>(thread_index()) * chunk * plane;
      std::fill(mine, mine + count * plane, A(0));
#pragma omp for schedule(static)
      for (int y = 0; y < height; ++y) rows(y, c0, count, mine);
      // (the barrier at the end of the loop above: every thread's buffers are complete)
#pragma omp for schedule(static)
      for (int64_t index = 0; index < count * plane; ++index) {
        A total = 0;
        for (int thread = 0; thread < team; ++thread) total += buffers[thread * chunk * plane + index];
        out[c0 * plane + index] = Storage<T>::store(total);
      }
    }
  }
}

// Where holes are many, the fill sweeps each row and column once instead of scanning from every hole
// (O(H*W) instead of up to O(H*W*(H+W)) when nearly everything is a hole). The sweeps add each hole's
// neighbours in the same order as `projection_fill_by_scan` (left, right, up, down), so the two ways
// give identical results.
template <typename A>
void add_row_neighbours(const A* averaged_x, const A* averaged_y, const A* weight_sum, HoleFill<A>* fills,
                        int height, int width) {
#pragma omp parallel for schedule(static)
  for (int y = 0; y < height; ++y) {
    const int64_t row = static_cast<int64_t>(y) * width;
    int64_t last = -1;  // nearest scan-stopping pixel seen so far on this sweep, -1 if none
    for (int x = 0; x < width; ++x) {
      const int64_t pixel = row + x;
      if (projection_is_hole(weight_sum[pixel]) && last >= 0 && projection_contributes(weight_sum[last]))
        fills[pixel].add(averaged_x[last], averaged_y[last]);
      if (projection_stops_scan(weight_sum[pixel])) last = pixel;
    }
    last = -1;
    for (int x = width - 1; x >= 0; --x) {
      const int64_t pixel = row + x;
      if (projection_is_hole(weight_sum[pixel]) && last >= 0 && projection_contributes(weight_sum[last]))
        fills[pixel].add(averaged_x[last], averaged_y[last]);
      if (projection_stops_scan(weight_sum[pixel])) last = pixel;
    }
  }
}

// Column sweeps walk a band of columns row by row, so memory is read in rows.
template <typename A>
void add_column_neighbours(const A* averaged_x, const A* averaged_y, const A* weight_sum, HoleFill<A>* fills,
                           int height, int width) {
  constexpr int kBand = 64;
  const int bands = (width + kBand - 1) / kBand;
#pragma omp parallel for schedule(static)
  for (int band = 0; band < bands; ++band) {
    const int x0 = band * kBand;
    const int x1 = x0 + kBand < width ? x0 + kBand : width;
    int64_t last[kBand];
    for (int i = 0; i < kBand; ++i) last[i] = -1;
    for (int y = 0; y < height; ++y) {
      for (int x = x0; x < x1; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        int64_t& above = last[x - x0];
        if (projection_is_hole(weight_sum[pixel]) && above >= 0 && projection_contributes(weight_sum[above]))
          fills[pixel].add(averaged_x[above], averaged_y[above]);
        if (projection_stops_scan(weight_sum[pixel])) above = pixel;
      }
    }
    for (int i = 0; i < kBand; ++i) last[i] = -1;
    for (int y = height - 1; y >= 0; --y) {
      for (int x = x0; x < x1; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        int64_t& below = last[x - x0];
        if (projection_is_hole(weight_sum[pixel]) && below >= 0 && projection_contributes(weight_sum[below]))
          fills[pixel].add(averaged_x[below], averaged_y[below]);
        if (projection_stops_scan(weight_sum[pixel])) below = pixel;
      }
    }
  }
}

// Summed -w*fx, -w*fy and w per target pixel (3 planes into `sums`), then the weighted mean where the
// summed weight is positive; returns the number of holes.
//
// Targets collide, and each target's sum must take its sources in raster order (a fixed order keeps the
// result deterministic, and the same on any thread count). So the splat runs in bands of target rows,
// one thread per band: a band's thread goes through every source row whose splat can reach the band (its
// own rows and `reach` rows either side) in raster order and adds only what lands inside the band. Each
// target is then summed by one thread, in the serial order. With few rows per band compared with the
// reach, the bands would mostly redo each other's rows: then one band does everything.
template <typename T>
int64_t splat_and_average(const T* flow_x, const T* flow_y, const T* weights, typename Storage<T>::acc* sums,
                          int height, int width) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  A* sum_x = sums;
  A* sum_y = sum_x + plane;
  A* weight_sum = sum_y + plane;
  // How many rows from its own a source can land: its top row is floor(y + fy), its bottom one below.
  // (Only needed to cut bands: on one thread there is one band.)
  const int threads = max_threads();
  A largest = 0;
  if (threads > 1) {
#pragma omp parallel for schedule(static) reduction(max : largest)
    for (int64_t pixel = 0; pixel < plane; ++pixel) {
      const A fy = abs_of(Storage<T>::load(flow_y[pixel]));  // NaN, or more than height - 1: lands nowhere
      largest = fy == fy && fy <= static_cast<A>(height - 1) && fy > largest ? fy : largest;
    }
  }
  const int reach = static_cast<int>(largest) + 2;
  const int bands = std::max(1, std::min(threads, height / (2 * reach)));
#pragma omp parallel for schedule(static)
  for (int band = 0; band < bands; ++band) {
    const int first_row = static_cast<int>(static_cast<int64_t>(height) * band / bands);
    const int end_row = static_cast<int>(static_cast<int64_t>(height) * (band + 1) / bands);
    const int64_t first = static_cast<int64_t>(first_row) * width;
    const int64_t end = static_cast<int64_t>(end_row) * width;
    std::fill(sum_x + first, sum_x + end, A(0));
    std::fill(sum_y + first, sum_y + end, A(0));
    std::fill(weight_sum + first, weight_sum + end, A(0));
    const int from = bands == 1 ? 0 : std::max(0, first_row - reach);
    const int to = bands == 1 ? height : std::min(height, end_row + reach);
    for (int y = from; y < to; ++y) {
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
          if (target < first || target >= end) continue;
          sum_x[target] += splat.neg_weighted_x;
          sum_y[target] += splat.neg_weighted_y;
          weight_sum[target] += splat.weight;
        }
      }
    }
  }
  int64_t holes = 0;
#pragma omp parallel for schedule(static) reduction(+ : holes)
  for (int64_t pixel = 0; pixel < plane; ++pixel) {
    projection_average(weight_sum[pixel], &sum_x[pixel], &sum_y[pixel]);
    holes += projection_is_hole(weight_sum[pixel]) ? 1 : 0;
  }
  return holes;
}

// Step 1 of the projection's backward: each filled hole passes its gradient to its sources, in equal
// shares, and keeps none. Several holes may pass to one source, and each source must take them in the
// holes' raster order (the serial order: the same result on any thread count). So the scans that find
// each hole's sources (the costly part) run in parallel first; then each thread takes a band of rows
// and goes through all the holes in order, adding only to sources in its band. Sources are never holes,
// so every hole's own gradient is still unchanged when it is read. Serially where the holes' sources
// would take more memory than the scatter buffers may.
template <typename A>
void fill_gradient(const A* weight_sum, A* gx, A* gy, int height, int width, int64_t holes) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  auto add = [gx, gy](int64_t source, A share_x, A share_y) {
    gx[source] += share_x;
    gy[source] += share_y;
  };
  if (holes == 0) return;
  if (max_threads() == 1 || holes * 5 > kScatterBufferElements) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        if (!projection_is_hole(weight_sum[pixel])) continue;
        int64_t sources[4];
        const int found = projection_fill_sources(weight_sum, height, width, x, y, sources);
        projection_fill_gradient_to(sources, found, gx, gy, pixel, add);
        if (found > 0) gx[pixel] = gy[pixel] = A(0);
      }
    }
    return;
  }
  std::vector<int64_t> hole_pixels;
  hole_pixels.reserve(static_cast<size_t>(holes));
  for (int64_t pixel = 0; pixel < plane; ++pixel)
    if (projection_is_hole(weight_sum[pixel])) hole_pixels.push_back(pixel);
  const int64_t count = static_cast<int64_t>(hole_pixels.size());
  std::vector<int64_t> sources(static_cast<size_t>(count) * 4);
  std::vector<int> found(static_cast<size_t>(count));
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < count; ++i) {
    const int64_t pixel = hole_pixels[i];
    found[i] = projection_fill_sources(weight_sum, height, width, static_cast<int>(pixel % width),
                                       static_cast<int>(pixel / width), &sources[i * 4]);
  }
  const int bands = std::max(1, std::min(max_threads(), height));
#pragma omp parallel for schedule(static)
  for (int band = 0; band < bands; ++band) {
    const int64_t first = static_cast<int64_t>(height) * band / bands * width;
    const int64_t end = static_cast<int64_t>(height) * (band + 1) / bands * width;
    for (int64_t i = 0; i < count; ++i) {
      projection_fill_gradient_to(&sources[i * 4], found[i], gx, gy, hole_pixels[i],
                                  [&](int64_t source, A share_x, A share_y) {
                                    if (source >= first && source < end) add(source, share_x, share_y);
                                  });
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i)
    if (found[i] > 0) gx[hole_pixels[i]] = gy[hole_pixels[i]] = A(0);
}

}  // namespace

template <typename T>
void depth_flow_projection(const T* flow, const T* weight, T* out, int64_t batch, int height, int width,
                           bool fill_holes) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  std::unique_ptr<A[]> sums(new A[3 * plane]);  // written whole by the splat: no need to zero it first
  std::vector<HoleFill<A>> fills;  // per-pixel fill sums, only when sweeping

  for (int64_t b = 0; b < batch; ++b) {
    const T* flow_x = flow + b * 2 * plane;
    const T* flow_y = flow_x + plane;
    const T* weights = weight + b * plane;
    A* sum_x = sums.get();
    A* sum_y = sum_x + plane;
    A* weight_sum = sum_y + plane;
    const int64_t holes = splat_and_average(flow_x, flow_y, weights, sums.get(), height, width);

    // Scanning from each hole is cheapest while holes are few and short; past that, sweep.
    const bool sweep = fill_holes && holes > plane / 16;
    if (sweep) {
      fills.assign(plane, HoleFill<A>());
      add_row_neighbours(sum_x, sum_y, weight_sum, fills.data(), height, width);
      add_column_neighbours(sum_x, sum_y, weight_sum, fills.data(), height, width);
    }
    T* out_x = out + b * 2 * plane;
    T* out_y = out_x + plane;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        A value_x = sum_x[pixel];
        A value_y = sum_y[pixel];
        if (fill_holes && projection_is_hole(weight_sum[pixel])) {
          if (sweep)
            fills[pixel].apply(&value_x, &value_y);
          else
            projection_fill_by_scan(sum_x, sum_y, weight_sum, height, width, x, y, &value_x, &value_y);
        }
        out_x[pixel] = Storage<T>::store(value_x);
        out_y[pixel] = Storage<T>::store(value_y);
      }
    }
  }
}

// The fewest channels for which the filter's forward reads through `InteriorFilterWindow`.
constexpr int kFilterRunsFrom = 8;

template <typename T>
void filter_interpolation(const T* input, const T* flow, const T* filters, T* out, int64_t batch, int channels,
                          int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  // The interior window (runs of 4) pays where channels are many; with a few it measured slower than the
  // general one (C=3: 8-10% at 256x256 and 1280x720; C=32 and more: 15-25% faster).
  const bool runs = channels >= kFilterRunsFrom;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    for (int y = 0; y < height; ++y) {
      const T* image = input + b * channels * plane;
      const T* flow_x = flow + b * 2 * plane;
      const T* kernels = filters + b * kFilterTaps * plane;
      T* result = out + b * channels * plane;
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        const FilterTaps<T> taps = filter_interpolation_taps<T>(flow_x[pixel], flow_x[plane + pixel], x, y, height,
                                                                width);
        with_filter_window<T, T>(runs, taps, image, nullptr, plane, NoAdd{}, [&](const auto& window) {
          filter_interpolation_pixel_at<T, T>(window, image, kernels, result, taps, channels, plane, pixel);
        });
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
      // a and b are NHWC here: each dot product reads contiguous channels.
      const T* first = a + item * channels * plane;
      const T* second = b + item * channels * plane;
      T* result = out + item * displacements * plane + static_cast<int64_t>(y) * width;
      for (int x = 0; x < width; ++x) {
        int64_t d = 0;  // displacements row by row: (dy, dx) = (d / side, d % side) - max_displacement
        for (int dy = -max_displacement; dy <= max_displacement; ++dy)
          for (int dx = -max_displacement; dx <= max_displacement; ++dx, ++d)
            result[d * plane + x] = Storage<T>::store(
                correlation_value(first, second, channels, height, width, channels, 1, x, y, dx, dy));
      }
    }
  }
}

// Up to this many channels (RGB or RGBA frames), the warp's forward takes each pixel's channels in turn;
// with more, each channel along the row. Frames, 3 channels: 256x256 on 2 threads 0.21-0.22 -> 0.16-0.18
// ms, 720p on one thread 6.2-6.3 -> 4.8-5.3 ms (docs/benchmarks.md). Many channels keep the row order,
// which writes one row at a time (channel-inner order was 1.6x slower at 32 and 196 channels in the
// backward).
constexpr int kWarpPixelsFirstUpTo = 4;

template <typename T>
void backward_warp(const T* input, const T* flow, T* out, int64_t batch, int channels, int height, int width) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
#pragma omp parallel
  {
    // A row's samples first (a loop that vectorises), then the blends along the row.
    WarpRow<A> samples;
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      for (int y = 0; y < height; ++y) {
        const T* flow_x = flow + b * 2 * plane + static_cast<int64_t>(y) * width;
        const T* flow_y = flow_x + plane;
        samples.find(flow_x, flow_y, y, height, width);
        const T* image = input + b * channels * plane;
        T* row = out + b * channels * plane + static_cast<int64_t>(y) * width;
        if (channels <= kWarpPixelsFirstUpTo) {
          for (int x = 0; x < width; ++x) {
            const WarpSample<A> sample = samples[x];
            for (int c = 0; c < channels; ++c)
              row[c * plane + x] = backward_warp_blend<T, A>(image + c * plane, sample);
          }
        } else {
          for (int c = 0; c < channels; ++c)
            for (int x = 0; x < width; ++x)
              row[c * plane + x] = backward_warp_blend<T, A>(image + c * plane, samples[x]);
        }
      }
    }
  }
}

// The bicubic warp's forward for pixels [from, to) of row y, each pixel's channels in turn (the general
// path: any T).
template <typename T>
void bicubic_warp_general(const T* image, const T* flow_x, const T* flow_y, T* row, int64_t plane, int channels,
                          int y, int height, int width, int from, int to) {
  using A = typename Storage<T>::acc;
  for (int x = from; x < to; ++x) {
    const CubicSample<A> sample =
        bicubic_warp_sample<A>(Storage<T>::load(flow_x[x]), Storage<T>::load(flow_y[x]), x, y, height, width);
    for (int c = 0; c < channels; ++c) row[c * plane + x] = bicubic_warp_blend<T, A>(image + c * plane, sample, height, width);
  }
}

// One row, any T: the general path.
template <typename T>
void bicubic_warp_row(const T* image, const T* flow_x, const T* flow_y, T* row, int64_t plane, int channels, int y,
                      int height, int width, bool /*avx2*/) {
  bicubic_warp_general<T>(image, flow_x, flow_y, row, plane, channels, y, height, width, 0, width);
}

#if defined(__SSE2__)
#define DAINCTL_ALWAYS_INLINE inline __attribute__((always_inline))
// `cubic_weights` for four lanes at once: distances (f+1, f, 1-f, 2-f), the far polynomial in lanes 0 and
// 3, the near one in lanes 1 and 2. (Weights written as scalars and read back as a vector stalled the
// loop on store forwarding.)
DAINCTL_ALWAYS_INLINE __m128 cubic_weights_sse(float f) {
  const float a = cubic_a<float>();
  const __m128 d = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(f), _mm_setr_ps(1.f, 1.f, -1.f, -1.f)), _mm_setr_ps(1.f, 0.f, 1.f, 2.f));
  const __m128 near = _mm_add_ps(
      _mm_mul_ps(_mm_sub_ps(_mm_mul_ps(_mm_set1_ps(a + 2.f), d), _mm_set1_ps(a + 3.f)), _mm_mul_ps(d, d)), _mm_set1_ps(1.f));
  const __m128 far = _mm_sub_ps(
      _mm_mul_ps(_mm_add_ps(_mm_mul_ps(_mm_sub_ps(_mm_mul_ps(_mm_set1_ps(a), d), _mm_set1_ps(5.f * a)), d), _mm_set1_ps(8.f * a)), d),
      _mm_set1_ps(4.f * a));
  const __m128 outer = _mm_castsi128_ps(_mm_setr_epi32(-1, 0, 0, -1));
  return _mm_or_ps(_mm_and_ps(outer, far), _mm_andnot_ps(outer, near));
}

// One output pixel's channels where all 16 taps lie inside the plane: four runs of four neighbouring
// pixels from `corner` (the tap at column -1 and row -1 of the first channel), the four rows weighted
// by w0..w3 and summed as one vector of columns, then weighted across by wx; `out` is the pixel in the
// first channel's plane of the output. (Inlined into the AVX2 loop, the mul-adds contract to FMA.)
DAINCTL_ALWAYS_INLINE void bicubic_taps_sse(const float* corner, int64_t plane, int channels, int width, __m128 wx,
                                            __m128 w0, __m128 w1, __m128 w2, __m128 w3, float* out) {
  for (int c = 0; c < channels; ++c) {
    const float* tap = corner + c * plane;
    __m128 column = _mm_mul_ps(_mm_loadu_ps(tap), w0);
    column = _mm_add_ps(column, _mm_mul_ps(_mm_loadu_ps(tap + width), w1));
    column = _mm_add_ps(column, _mm_mul_ps(_mm_loadu_ps(tap + 2 * width), w2));
    column = _mm_add_ps(column, _mm_mul_ps(_mm_loadu_ps(tap + 3 * width), w3));
    __m128 sum = _mm_mul_ps(column, wx);
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 1));
    out[c * plane] = _mm_cvtss_f32(sum);
  }
}

// float32 with SSE, one pixel at a time: its sample point and weights as scalars and vectors of four,
// then `bicubic_taps_sse` where no tap is clamped.
// 1280x720, 3 channels, one thread, smooth flow: 27 ms (general path) -> 19-20 ms; the bilinear warp
// takes 8-9 ms (docs/benchmarks.md, 2026-12-04).
DAINCTL_ALWAYS_INLINE void bicubic_warp_row_sse(const float* image, const float* flow_x, const float* flow_y,
                                                float* row, int64_t plane, int channels, int y, int height,
                                                int width, int from = 0) {
  for (int x = from; x < width; ++x) {
    const SamplePoint<float> point = warp_sample_point(flow_x[x], flow_y[x], x, y, height, width);
    const float sample_x = point.x;
    const float sample_y = point.y;
    const int left = floor_nonnegative(sample_x);
    const int top = floor_nonnegative(sample_y);
    if (!((left >= 1) & (left + 2 < width) & (top >= 1) & (top + 2 < height))) {  // a tap is clamped
      bicubic_warp_general<float>(image, flow_x, flow_y, row, plane, channels, y, height, width, x, x + 1);
      continue;
    }
    const __m128 wx = cubic_weights_sse(sample_x - static_cast<float>(left));
    const __m128 wy = cubic_weights_sse(sample_y - static_cast<float>(top));
    const __m128 w0 = _mm_shuffle_ps(wy, wy, 0x00), w1 = _mm_shuffle_ps(wy, wy, 0x55);
    const __m128 w2 = _mm_shuffle_ps(wy, wy, 0xAA), w3 = _mm_shuffle_ps(wy, wy, 0xFF);
    bicubic_taps_sse(image + static_cast<int64_t>(top - 1) * width + left - 1, plane, channels, width, wx, w0, w1, w2,
                     w3, row + x);
  }
}

// With AVX2 and FMA, taken where the CPU has both (the JIT build itself targets the baseline, so that a
// kernel cache shared between machines works on all of them). Eight pixels at a time, the scalar work
// of the SSE loop is done as vectors across the pixels: their sample points (`warp_sample_point`),
// corners, whether all their taps lie inside, and their weights (`cubic_weights`' polynomials); the
// x weights are transposed to one vector per pixel. Then each pixel's channels are read as in the SSE
// loop: four runs of four taps, weighted down the rows and summed across. A pixel with a clamped tap,
// and the row's last width % 8, take the per-pixel loops. 1280x720, 3 channels, one thread
// (`benchmarks/bench_kernels.py`): 15.9-17.0 ms with the SSE loop compiled for FMA -> 10.0-11.1 ms; on
// a smooth flow 14.3 -> 7.8 ms, the bilinear warp's time (docs/benchmarks.md, 2026-12-04, ninth session).
#if defined(__GNUC__) && defined(__x86_64__)
#define DAINCTL_BICUBIC_AVX2 1
#define DAINCTL_AVX2 __attribute__((target("avx2,fma")))
// `cubic_weights` for eight sample points: the far polynomial ((a d - 5a) d + 8a) d - 4a at distances
// f + 1 and 2 - f, the near one ((a+2) d - (a+3)) d^2 + 1 at f and 1 - f.
static DAINCTL_AVX2 inline __m256 cubic_far_avx2(__m256 d) {
  const float a = cubic_a<float>();
  return _mm256_fmsub_ps(_mm256_fmadd_ps(_mm256_fmsub_ps(_mm256_set1_ps(a), d, _mm256_set1_ps(5.f * a)), d,
                                         _mm256_set1_ps(8.f * a)),
                         d, _mm256_set1_ps(4.f * a));
}
static DAINCTL_AVX2 inline __m256 cubic_near_avx2(__m256 d) {
  const float a = cubic_a<float>();
  return _mm256_fmadd_ps(_mm256_fmsub_ps(_mm256_set1_ps(a + 2.f), d, _mm256_set1_ps(a + 3.f)), _mm256_mul_ps(d, d),
                         _mm256_set1_ps(1.f));
}
static DAINCTL_AVX2 inline void cubic_weights_avx2(__m256 f, __m256 w[4]) {
  const __m256 one = _mm256_set1_ps(1.f);
  w[0] = cubic_far_avx2(_mm256_add_ps(f, one));
  w[1] = cubic_near_avx2(f);
  w[2] = cubic_near_avx2(_mm256_sub_ps(one, f));
  w[3] = cubic_far_avx2(_mm256_sub_ps(_mm256_set1_ps(2.f), f));
}

static DAINCTL_AVX2 void bicubic_warp_row_avx2(const float* image, const float* flow_x, const float* flow_y,
                                               float* row, int64_t plane, int channels, int y, int height, int width) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 last_x = _mm256_set1_ps(static_cast<float>(width - 1));
  const __m256 last_y = _mm256_set1_ps(static_cast<float>(height - 1));
  const __m256 lanes = _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
  const __m256 row_y = _mm256_set1_ps(static_cast<float>(y));
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i cols_limit = _mm256_set1_epi32(width - 2), rows_limit = _mm256_set1_epi32(height - 2);
  alignas(32) float wx_quads[4][8];  // pixel p's x weights: wx_quads[p % 4][4 * (p / 4) ...]
  alignas(32) float wy[4][8];        // tap row i's weight for pixel p: wy[i][p]
  alignas(32) int left[8], top[8];
  int x = 0;
  for (; x + 8 <= width; x += 8) {
    __m256 fx = _mm256_loadu_ps(flow_x + x), fy = _mm256_loadu_ps(flow_y + x);
    fx = _mm256_and_ps(fx, _mm256_cmp_ps(fx, fx, _CMP_ORD_Q));  // NaN counts as no displacement
    fy = _mm256_and_ps(fy, _mm256_cmp_ps(fy, fy, _CMP_ORD_Q));
    __m256 sample_x = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(static_cast<float>(x)), lanes), fx);
    __m256 sample_y = _mm256_add_ps(row_y, fy);
    sample_x = _mm256_min_ps(_mm256_max_ps(sample_x, zero), last_x);
    sample_y = _mm256_min_ps(_mm256_max_ps(sample_y, zero), last_y);
    const __m256i l = _mm256_cvttps_epi32(sample_x), t = _mm256_cvttps_epi32(sample_y);
    const __m256i inside = _mm256_and_si256(
        _mm256_and_si256(_mm256_cmpgt_epi32(l, _mm256_setzero_si256()), _mm256_cmpgt_epi32(cols_limit, l)),
        _mm256_and_si256(_mm256_cmpgt_epi32(t, _mm256_setzero_si256()), _mm256_cmpgt_epi32(rows_limit, t)));
    const int inside_mask = _mm256_movemask_ps(_mm256_castsi256_ps(inside));
    __m256 wxs[4], wys[4];
    cubic_weights_avx2(_mm256_sub_ps(sample_x, _mm256_cvtepi32_ps(l)), wxs);
    cubic_weights_avx2(_mm256_sub_ps(sample_y, _mm256_cvtepi32_ps(t)), wys);
    for (int i = 0; i < 4; ++i) _mm256_store_ps(wy[i], wys[i]);
    const __m256 t0 = _mm256_unpacklo_ps(wxs[0], wxs[1]), t1 = _mm256_unpackhi_ps(wxs[0], wxs[1]);
    const __m256 t2 = _mm256_unpacklo_ps(wxs[2], wxs[3]), t3 = _mm256_unpackhi_ps(wxs[2], wxs[3]);
    _mm256_store_ps(wx_quads[0], _mm256_shuffle_ps(t0, t2, 0x44));  // pixels 0 and 4
    _mm256_store_ps(wx_quads[1], _mm256_shuffle_ps(t0, t2, 0xEE));  // 1 and 5
    _mm256_store_ps(wx_quads[2], _mm256_shuffle_ps(t1, t3, 0x44));  // 2 and 6
    _mm256_store_ps(wx_quads[3], _mm256_shuffle_ps(t1, t3, 0xEE));  // 3 and 7
    _mm256_store_si256(reinterpret_cast<__m256i*>(left), _mm256_sub_epi32(l, one));
    _mm256_store_si256(reinterpret_cast<__m256i*>(top), _mm256_sub_epi32(t, one));
    for (int p = 0; p < 8; ++p) {
      if (!((inside_mask >> p) & 1)) {  // a tap is clamped
        bicubic_warp_general<float>(image, flow_x, flow_y, row, plane, channels, y, height, width, x + p, x + p + 1);
        continue;
      }
      const __m128 wx = _mm_load_ps(wx_quads[p & 3] + 4 * (p >> 2));
      const __m128 w0 = _mm_broadcast_ss(&wy[0][p]), w1 = _mm_broadcast_ss(&wy[1][p]);
      const __m128 w2 = _mm_broadcast_ss(&wy[2][p]), w3 = _mm_broadcast_ss(&wy[3][p]);
      bicubic_taps_sse(image + static_cast<int64_t>(top[p]) * width + left[p], plane, channels, width, wx, w0, w1, w2,
                       w3, row + x + p);
    }
  }
  bicubic_warp_row_sse(image, flow_x, flow_y, row, plane, channels, y, height, width, x);
}
#endif

inline void bicubic_warp_row(const float* image, const float* flow_x, const float* flow_y, float* row, int64_t plane,
                             int channels, int y, int height, int width, bool avx2) {
#if defined(DAINCTL_BICUBIC_AVX2)
  if (avx2) {
    bicubic_warp_row_avx2(image, flow_x, flow_y, row, plane, channels, y, height, width);
    return;
  }
#endif
  bicubic_warp_row_sse(image, flow_x, flow_y, row, plane, channels, y, height, width);
}
#endif

// Whether the float32 rows take the AVX2 loop: where it is built and the CPU has AVX2 and FMA, unless
// DAINCTL_CPU_BASELINE=1 asks for the SSE loop (the tests compare the two).
static bool bicubic_use_avx2() {
#if defined(DAINCTL_BICUBIC_AVX2)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* baseline = getenv("DAINCTL_CPU_BASELINE");
  return has && !(baseline && baseline[0] == '1');
#else
  return false;
#endif
}

template <typename T>
void bicubic_warp(const T* input, const T* flow, T* out, int64_t batch, int channels, int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const bool avx2 = bicubic_use_avx2();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    for (int y = 0; y < height; ++y) {
      const T* flow_x = flow + b * 2 * plane + static_cast<int64_t>(y) * width;
      bicubic_warp_row(input + b * channels * plane, flow_x, flow_x + plane,
                       out + b * channels * plane + static_cast<int64_t>(y) * width, plane, channels, y, height, width,
                       avx2);
    }
  }
}

template <typename T>
void backward_warp_backward(const T* grad, const T* input, const T* flow, T* grad_input, T* grad_flow,
                            int64_t batch, int channels, int height, int width) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  if (channels == 0) std::fill(grad_flow, grad_flow + batch * 2 * plane, T(0));
  for (int64_t b = 0; b < batch; ++b) {
    const T* flow_x = flow + b * 2 * plane;
    const T* flow_y = flow_x + plane;
    const T* image = input + b * channels * plane;
    const T* gradient = grad + b * channels * plane;
    T* flow_out_x = grad_flow + b * 2 * plane;
    T* flow_out_y = flow_out_x + plane;
    // One pass over the pixels gives both gradients. A row's samples first (a loop that vectorises), then
    // each channel along the row: its part of the flow's gradient, and its taps' share of the input's.
    const int reach = vertical_reach(flow_y, height, width, 1);
    scatter_rows(channels, height, plane, reach, grad_input + b * channels * plane,
                 [&](int y, int c0, int count, A* target) {
      thread_local WarpRow<A> samples;
      thread_local std::vector<A> sums;  // the flow's gradient along the row, x then y, before the masks
      sums.assign(2 * static_cast<size_t>(width), A(0));
      const int64_t row = static_cast<int64_t>(y) * width;
      samples.find(flow_x + row, flow_y + row, y, height, width);
      for (int c = c0; c < c0 + count; ++c) {
        const T* channel = image + c * plane;
        const T* channel_gradient = gradient + c * plane + row;
        A* channel_target = target + (c - c0) * plane;
        for (int x = 0; x < width; ++x) {
          const A g = Storage<T>::load(channel_gradient[x]);
          backward_warp_add_sample_gradient(channel, samples[x], g, &sums[x], &sums[width + x]);
          A weights[4];
          backward_warp_tap_weights(samples[x], weights);
          channel_target[samples[x].top_left] += weights[0] * g;
          channel_target[samples[x].top_right] += weights[1] * g;
          channel_target[samples[x].bottom_left] += weights[2] * g;
          channel_target[samples[x].bottom_right] += weights[3] * g;
        }
      }
      // Later chunks of channels add to what the earlier ones wrote.
      samples.find_masks(flow_x + row, flow_y + row, y, height, width);
      const A* pass_x = samples.pass_x.data();
      const A* pass_y = samples.pass_y.data();
      for (int x = 0; x < width; ++x) {
        const A dx = sums[x] * pass_x[x];
        const A dy = sums[width + x] * pass_y[x];
        flow_out_x[row + x] = c0 == 0 ? dx : flow_out_x[row + x] + dx;
        flow_out_y[row + x] = c0 == 0 ? dy : flow_out_y[row + x] + dy;
      }
    });
  }
}

template <typename T>
void filter_interpolation_backward(const T* grad, const T* input, const T* flow, const T* filters, T* grad_input,
                                   T* grad_flow, T* grad_filters, int64_t batch, int channels, int height, int width) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  // One pass over the pixels gives every gradient (the input's through `scatter_rows`).
  if (channels == 0) {
    std::fill(grad_flow, grad_flow + batch * 2 * plane, T(0));
    std::fill(grad_filters, grad_filters + batch * kFilterTaps * plane, T(0));
  }
  for (int64_t b = 0; b < batch; ++b) {
    const T* image = input + b * channels * plane;
    const T* gradient = grad + b * channels * plane;
    const T* kernels = filters + b * kFilterTaps * plane;
    const T* flow_x = flow + b * 2 * plane;
    const int reach = vertical_reach(flow_x + plane, height, width, 2);
    scatter_rows(channels, height, plane, reach, grad_input + b * channels * plane,
                 [&](int y, int c0, int count, A* target) {
      const int64_t row = static_cast<int64_t>(y) * width;
      auto add = [target, plane](int c, int64_t offset, A value) { target[c * plane + offset] += value; };
      const T* channels_in = image + c0 * plane;
      const T* channels_grad = gradient + c0 * plane;
      // The row's filters in, and their gradients out, through row buffers (16 planes of `width`): read
      // and written pixel by pixel, the 32 planes would be 32 strided streams, which large frames pay for.
      thread_local std::vector<T> row_filters;
      thread_local std::vector<A> row_filter_grads;
      row_filters.resize(kFilterTaps * static_cast<size_t>(width));
      row_filter_grads.resize(kFilterTaps * static_cast<size_t>(width));
      for (int t = 0; t < kFilterTaps; ++t)
        std::copy(kernels + t * plane + row, kernels + t * plane + row + width, row_filters.data() + t * width);
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = row + x;
        const FilterTaps<A> taps = filter_interpolation_taps<A>(Storage<T>::load(flow_x[pixel]),
                                                                Storage<T>::load(flow_x[plane + pixel]), x, y, height,
                                                                width);
        A flow_gradient[2];
        A filter_gradient[kFilterTaps];
        const T* filter = row_filters.data() + x;
        with_filter_window<T, A>(true, taps, channels_in, target, plane, add, [&](const auto& window) {
          filter_interpolation_pixel_backward<T, A>(filter, width, channels_grad, taps, count, plane, pixel, window,
                                                    flow_gradient, filter_gradient);
        });
        // Later chunks of channels add to what the earlier ones wrote.
        T* flow_out = grad_flow + b * 2 * plane + pixel;
        for (int k = 0; k < 2; ++k)
          flow_out[k * plane] = c0 == 0 ? flow_gradient[k] : flow_out[k * plane] + flow_gradient[k];
        for (int t = 0; t < kFilterTaps; ++t) row_filter_grads[t * width + x] = filter_gradient[t];
      }
      for (int t = 0; t < kFilterTaps; ++t) {
        T* filter_out = grad_filters + (b * kFilterTaps + t) * plane + row;
        const A* row_grads = row_filter_grads.data() + t * width;
        for (int x = 0; x < width; ++x) filter_out[x] = c0 == 0 ? row_grads[x] : filter_out[x] + row_grads[x];
      }
    });
  }
}

template <typename T>
void correlation_backward(const T* grad, const T* a, const T* b, T* grad_a, T* grad_b, int64_t batch, int channels,
                          int height, int width, int max_displacement) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t displacements = static_cast<int64_t>(2 * max_displacement + 1) * (2 * max_displacement + 1);
  // Channels-last: one pixel's channels are contiguous, so the inner loop over channels vectorises.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t item = 0; item < batch; ++item) {
    for (int y = 0; y < height; ++y) {
      const T* gradient = grad + item * displacements * plane;
      const int64_t offset = item * channels * plane;
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        correlation_backward_pixel<T, T>(gradient, b + offset, grad_a + offset + pixel * channels, 1, channels, height,
                                         width, channels, 1, max_displacement, x, y, false);
        correlation_backward_pixel<T, T>(gradient, a + offset, grad_b + offset + pixel * channels, 1, channels, height,
                                         width, channels, 1, max_displacement, x, y, true);
      }
    }
  }
}

template <typename T>
void depth_flow_projection_backward(const T* grad, const T* flow, const T* weight, T* grad_flow, T* grad_weight,
                                    int64_t batch, int height, int width, bool fill_holes) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  // Written whole before they are read (the splat; the copy of grad and the average's gradient).
  std::unique_ptr<A[]> sums(new A[3 * plane]);
  std::unique_ptr<A[]> gradients(new A[3 * plane]);  // of the averaged x, y (then of the sums), and of the summed weight
  for (int64_t b = 0; b < batch; ++b) {
    const T* flow_x = flow + b * 2 * plane;
    const T* flow_y = flow_x + plane;
    const T* weights = weight + b * plane;
    const T* grad_x = grad + b * 2 * plane;
    // The forward again: averaged values and summed weights.
    const int64_t holes = splat_and_average(flow_x, flow_y, weights, sums.get(), height, width);
    const A* averaged_x = sums.get();
    const A* averaged_y = averaged_x + plane;
    const A* weight_sum = averaged_y + plane;
    A* gx = gradients.get();
    A* gy = gx + plane;
    A* gw = gy + plane;
    for (int64_t pixel = 0; pixel < plane; ++pixel) {
      gx[pixel] = Storage<T>::load(grad_x[pixel]);
      gy[pixel] = Storage<T>::load(grad_x[plane + pixel]);
    }
    if (fill_holes) fill_gradient(weight_sum, gx, gy, height, width, holes);
#pragma omp parallel for schedule(static)
    for (int64_t pixel = 0; pixel < plane; ++pixel)
      projection_average_gradient(weight_sum[pixel], averaged_x[pixel], averaged_y[pixel], &gx[pixel], &gy[pixel],
                                  &gw[pixel]);
#pragma omp parallel for schedule(static)
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int64_t pixel = static_cast<int64_t>(y) * width + x;
        A d_fx, d_fy, d_w;
        projection_source_gradient<A>(x, y, width, height, Storage<T>::load(flow_x[pixel]),
                                      Storage<T>::load(flow_y[pixel]), Storage<T>::load(weights[pixel]), gx, gy, gw,
                                      &d_fx, &d_fy, &d_w);
        grad_flow[b * 2 * plane + pixel] = Storage<T>::store(d_fx);
        grad_flow[b * 2 * plane + plane + pixel] = Storage<T>::store(d_fy);
        grad_weight[b * plane + pixel] = Storage<T>::store(d_w);
      }
    }
  }
}

#define DAINCTL_INSTANTIATE(T)                                                                             \
  template void depth_flow_projection<T>(const T*, const T*, T*, int64_t, int, int, bool);                \
  template void filter_interpolation<T>(const T*, const T*, const T*, T*, int64_t, int, int, int);         \
  template void correlation<T>(const T*, const T*, T*, int64_t, int, int, int, int);                       \
  template void backward_warp<T>(const T*, const T*, T*, int64_t, int, int, int);                          \
  template void bicubic_warp<T>(const T*, const T*, T*, int64_t, int, int, int);                           \
  template void backward_warp_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int, int, int);        \
  template void filter_interpolation_backward<T>(const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int, \
                                                 int, int);                                                        \
  template void correlation_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int, int, int, int);      \
  template void depth_flow_projection_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int, int, bool);

DAINCTL_INSTANTIATE(float)
DAINCTL_INSTANTIATE(double)

}  // namespace cpu
}  // namespace dainctl
