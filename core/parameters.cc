#include "core/parameters.h"

#include <cmath>
#include <numeric>

#include "core/random.h"

namespace spinnet {

ParamLayout::ParamLayout(const NetworkConfig& c) {
  for (int l = 0; l < c.layers; ++l) {
    w_ext_.push_back(Add(c.neurons, l == 0 ? c.input_dim : c.neurons));
    w_int_.push_back(Add(c.neurons, c.neurons));
    bias_.push_back(Add(c.neurons, 1));
  }
  w_out_ = Add(c.num_classes, c.neurons);
  b_out_ = Add(c.num_classes, 1);
  amp_ = Add(c.layers, 1);
}

ParamBlock ParamLayout::Add(Index rows, Index cols) {
  ParamBlock b{size_, rows, cols};
  size_ += rows * cols;
  return b;
}

namespace {

// Keeps round(density * size) entries of the block, chosen uniformly.
void DrawMask(const ParamBlock& b, double density, Rng* rng, Vector* mask) {
  const Index n = b.size();
  const Index keep = static_cast<Index>(std::llround(density * n));
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  rng->Shuffle(&order);
  for (Index i = keep; i < n; ++i) (*mask)[b.offset + order[i]] = 0.0;
}

}  // namespace

Vector MakeTrainableMask(const NetworkConfig& config, uint64_t seed) {
  const ParamLayout layout(config);
  Vector mask = Vector::Ones(layout.size());
  Rng rng(seed, kMaskStream);
  for (int l = 0; l < config.layers; ++l) {
    DrawMask(layout.w_ext(l), config.density_ext, &rng, &mask);
    DrawMask(layout.w_int(l), config.density_int, &rng, &mask);
  }
  const bool amp_trained =
      config.cell == CellType::kStno && config.train_amplification;
  ParamLayout::Map(mask, layout.amplification()).setConstant(amp_trained);
  return mask;
}

Vector InitParameters(const NetworkConfig& config, const Vector& mask,
                      double init_int_scale, uint64_t seed) {
  const ParamLayout layout(config);
  Vector params = Vector::Zero(layout.size());
  Rng rng(seed, kInitStream);
  auto fill = [&](const ParamBlock& b, double scale) {
    const double std_dev = scale / std::sqrt(static_cast<double>(b.cols));
    for (Index i = 0; i < b.size(); ++i) {
      params[b.offset + i] = std_dev * rng.Normal();
    }
  };
  for (int l = 0; l < config.layers; ++l) {
    fill(layout.w_ext(l), 1.0);
    fill(layout.w_int(l), init_int_scale);
  }
  fill(layout.w_out(), 1.0);
  ParamLayout::Map(params, layout.amplification())
      .setConstant(config.amplification);
  // Sparsity: masked weights start (and stay) at zero. The amplification
  // block's mask says "trained", not "present", so it is left alone.
  for (int l = 0; l < config.layers; ++l) {
    for (const ParamBlock* b : {&layout.w_ext(l), &layout.w_int(l)}) {
      params.segment(b->offset, b->size()).array() *=
          mask.segment(b->offset, b->size()).array();
    }
  }
  return params;
}

}  // namespace spinnet
