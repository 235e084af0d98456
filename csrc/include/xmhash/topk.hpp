// Exact selection of the k smallest (distance, index) pairs without a heap. Distances are small integers
// (<= nbits), so a histogram over distance values gives the k-th distance directly; candidates arrive in
// increasing index order, so a stable counting sort by distance yields (distance, index) order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "xmhash/types.hpp"

namespace xmhash {

class TopK {
 public:
  // k == 0 means unbounded (range search). `limit` is the largest distance ever accepted (radius or nbits).
  TopK(std::size_t k, int limit, int nbits)
      : k_(k), threshold_(limit), hist_(static_cast<std::size_t>(nbits) + 2, 0) {}

  // Current acceptance threshold: a candidate with distance <= threshold() may still enter the result.
  int threshold() const { return threshold_; }

  // Appends a candidate; indices must be non-decreasing across calls (scan order).
  void push(std::uint16_t d, idx_t idx) {
    dist_.push_back(d);
    idx_.push_back(idx);
    ++hist_[d];
  }

  // Appends n hits of a scan kernel: distances d[j] at indices base + rel[j] (increasing).
  void push_hits(const std::uint16_t* d, const std::uint32_t* rel, std::size_t n, idx_t base) {
    const std::size_t m = dist_.size();
    if (m + n > dist_.capacity()) {  // grow geometrically (resize alone may grow by exactly n)
      dist_.reserve(std::max(2 * dist_.capacity(), m + n));
      idx_.reserve(std::max(2 * idx_.capacity(), m + n));
    }
    dist_.insert(dist_.end(), d, d + n);
    idx_.resize(m + n);
    idx_t* out = idx_.data() + m;
    for (std::size_t j = 0; j < n; ++j) {
      out[j] = base + rel[j];
      ++hist_[d[j]];
    }
  }

  // Candidates held (at most k after finish()).

  // Tightens the threshold once k candidates are held; compacts when the buffer grows well past k.
  void update() {
    if (k_ == 0 || dist_.size() < k_) return;
    kth_ = kth_distance();
    threshold_ = std::min(threshold_, kth_ - 1);
    if (dist_.size() >= 2 * k_ + 256) compact(kth_);
  }

  // The k-th smallest distance held (as of the last update()), or INT_MAX while fewer than k are held: no code
  // farther than this can be among the k nearest of any set that contains these candidates.
  int kth() const { return kth_; }

  // Writes the result in (distance, index) order; at most k entries (all when k == 0).
  void finish(std::vector<std::uint16_t>& d_out, std::vector<idx_t>& i_out) {
    if (k_ != 0 && dist_.size() > k_) compact(kth_distance());
    const std::size_t n = dist_.size();
    std::vector<std::size_t> start(hist_.size() + 1, 0);
    for (std::size_t d = 0; d < hist_.size(); ++d) start[d + 1] = start[d] + hist_[d];
    d_out.resize(n);
    i_out.resize(n);
    for (std::size_t j = 0; j < n; ++j) {
      std::size_t pos = start[dist_[j]]++;
      d_out[pos] = dist_[j];
      i_out[pos] = idx_[j];
    }
  }

 private:
  int kth_distance() const {
    std::size_t cum = 0;
    for (std::size_t d = 0; d < hist_.size(); ++d) {
      cum += hist_[d];
      if (cum >= k_) return static_cast<int>(d);
    }
    return static_cast<int>(hist_.size());
  }

  // Keeps every candidate below dk and the earliest (smallest-index) ones at dk, k in all.
  void compact(int dk) {
    std::size_t below = 0;
    for (int d = 0; d < dk; ++d) below += hist_[d];
    std::size_t ties_left = k_ - below;
    std::size_t w = 0;
    std::fill(hist_.begin(), hist_.end(), 0);
    for (std::size_t j = 0; j < dist_.size(); ++j) {
      int d = dist_[j];
      if (d < dk || (d == dk && ties_left > 0)) {
        if (d == dk) --ties_left;
        dist_[w] = dist_[j];
        idx_[w] = idx_[j];
        ++hist_[d];
        ++w;
      }
    }
    dist_.resize(w);
    idx_.resize(w);
  }

  std::size_t k_;
  int threshold_;
  int kth_ = std::numeric_limits<int>::max();
  std::vector<std::uint32_t> hist_;
  std::vector<std::uint16_t> dist_;
  std::vector<idx_t> idx_;
};

}  // namespace xmhash
