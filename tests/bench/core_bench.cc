// Training and inference throughput of the core on the default configuration
// (3 x 32 STNO, 64 steps, 4 substeps, batch 32). items_per_second is
// training (or classified) sequences per second.
#include <benchmark/benchmark.h>

#include "core/bptt.h"
#include "core/dataset.h"
#include "core/inference.h"
#include "core/parallel.h"
#include "core/parameters.h"
#include "core/small_gemm.h"
#include "core/trainer.h"

namespace spinnet {
namespace {

const Dataset& Digits() {
  static const Dataset* d = [] {
    auto loaded = LoadDigits(DefaultDigitsPath());
    if (!loaded.ok()) std::abort();
    return new Dataset(std::move(*loaded));
  }();
  return *d;
}

NetworkConfig DefaultConfig(CellType cell) {
  NetworkConfig c;
  c.cell = cell;
  return c;
}

// Matrix-product FLOPs (2 per multiply-add) of one training sequence: the
// forward products W_int y, W_ext x (W_ext[0] u once per input interval),
// the same products transposed in the backward pass, the weight-gradient
// products and the readout. Element-wise work adds about 15 % (MODEL.md).
double GemmFlopsPerSample(const NetworkConfig& c, int steps) {
  const double N = c.neurons, L = c.layers, T = steps * c.substeps;
  const double per_step = 2 * N * N * (L + (L - 1));  // W_int, W_ext[l>0]
  const double forward = T * per_step + steps * 2 * N * c.input_dim;
  const double backward = T * per_step;  // W^T dz, without W_ext[0]
  const double weight_grads = forward;   // dz x^T over all steps
  const double readout = 3 * 2 * N * c.num_classes;
  return forward + backward + weight_grads + readout;
}

// One forward + backward pass of a batch of 32 in precision T (what a
// training step costs besides the optimizer's O(params) update), split over
// state.range(1) threads.
template <typename T>
void BM_TrainBatch(benchmark::State& state) {
  const NetworkConfig config =
      DefaultConfig(static_cast<CellType>(state.range(0)));
  const int threads = static_cast<int>(state.range(1));
  const DeviceParams device;
  const Vector mask = MakeTrainableMask(config, 0);
  const VectorT<T> params =
      InitParameters(config, mask, 0.5, 0).template cast<T>();
  const int B = 32;
  const MatrixT<T> inputs = Digits().values.leftCols(B).template cast<T>();
  const std::vector<int> labels(Digits().labels.begin(),
                                Digits().labels.begin() + B);
  std::vector<Bptt<T>> runners(threads, Bptt<T>(config, device));
  std::vector<VectorT<T>> grads(threads, VectorT<T>::Zero(params.size()));
  for (auto _ : state) {
    ParallelFor(threads, B, [&](int part, int b, int e) {
      std::vector<int> l(labels.begin() + b, labels.begin() + e);
      runners[part].Run(params, inputs.middleCols(b, e - b), l, 1.0 / B,
                        &grads[part]);
    });
    benchmark::DoNotOptimize(grads[0].data());
  }
  state.SetItemsProcessed(state.iterations() * B);
  state.counters["gemm_flops_per_sample"] = GemmFlopsPerSample(config, 64);
  state.counters["gemm_flops"] = benchmark::Counter(
      GemmFlopsPerSample(config, 64) * B * state.iterations(),
      benchmark::Counter::kIsRate);
}
BENCHMARK_TEMPLATE(BM_TrainBatch, float)
    ->ArgNames({"cell", "threads"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_TrainBatch, double)
    ->ArgNames({"cell", "threads"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The machine's attainable peak: a large matrix product in Eigen, one
// thread. The counter gemm_flops is the reference for the training FLOP rate.
template <typename T>
void BM_PeakGemm(benchmark::State& state) {
  const int n = 512;
  const MatrixT<T> a = MatrixT<T>::Random(n, n), b = MatrixT<T>::Random(n, n);
  MatrixT<T> c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["gemm_flops"] = benchmark::Counter(
      2.0 * n * n * n * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK_TEMPLATE(BM_PeakGemm, float)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_PeakGemm, double)->Unit(benchmark::kMillisecond);

// The per-step product of a layer l >= 1 at the defaults, [W_ext W_int]
// (32 x 64) times [y_{l-1}; y_l] (64 x 32), in core/small_gemm.h's kernel:
// the product rate training could reach if nothing else cost time.
void BM_StepGemm(benchmark::State& state) {
  const int n = 32, b = 32;
  const MatrixT<float> w = MatrixT<float>::Random(n, 2 * n);
  const MatrixT<float> y = MatrixT<float>::Random(2 * n, b);
  MatrixT<float> z(n, b);
  for (auto _ : state) {
    SmallGemm<false>(n, b, 2 * n, Lhs(w), Rhs(y), z.data(), n);
    benchmark::DoNotOptimize(z.data());
    benchmark::ClobberMemory();
  }
  state.counters["gemm_flops"] = benchmark::Counter(
      2.0 * n * 2 * n * b * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_StepGemm);

// Inference speed does not depend on the weights' values.
std::shared_ptr<const Model> UntrainedModel() {
  auto model = std::make_shared<Model>();
  model->network = DefaultConfig(CellType::kStno);
  model->mask = MakeTrainableMask(model->network, 0);
  model->params = InitParameters(model->network, model->mask, 0.5, 0);
  for (int i = 0; i < 10; ++i) model->class_labels.push_back(std::to_string(i));
  model->sequence_steps = 64;
  return model;
}

// Whole-sequence classification of 256 sequences on one thread.
void BM_Classify(benchmark::State& state) {
  const auto model = UntrainedModel();
  const Matrix inputs = Digits().values.leftCols(256);
  for (auto _ : state) {
    auto out = Classify(*model, inputs, 1);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * inputs.cols());
}
BENCHMARK(BM_Classify)->Unit(benchmark::kMillisecond)->UseRealTime();

// One streamed time step (4 Euler steps of a single sequence).
void BM_StreamStep(benchmark::State& state) {
  const auto model = UntrainedModel();
  StreamingSession session(model);
  const double u = 0.5;
  for (auto _ : state) {
    if (!session.Feed({&u, 1}).ok()) std::abort();
    if (session.steps() == 64) session.Reset();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamStep);

}  // namespace
}  // namespace spinnet

BENCHMARK_MAIN();
