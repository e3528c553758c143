#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/bptt.h"
#include "core/parallel.h"
#include "core/parameters.h"
#include "core/random.h"
#include "core/status_macros.h"

namespace spinnet {
namespace {

absl::Status CheckData(const NetworkConfig& net, const Dataset& data,
                       const char* what) {
  if (data.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " set is empty"));
  }
  if (data.input_dim != net.input_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " set has input dimension ", data.input_dim,
                     "; the network takes ", net.input_dim));
  }
  if (static_cast<int>(data.class_labels.size()) != net.num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " set has ", data.class_labels.size(),
                     " classes; the network has ", net.num_classes));
  }
  return absl::OkStatus();
}

// Gathers the sequences of `order[begin, end)` into columns.
template <typename T>
void Gather(const Dataset& data, const std::vector<int>& order, int begin,
            int end, MatrixT<T>* inputs, std::vector<int>* labels) {
  inputs->resize(data.values.rows(), end - begin);
  labels->resize(end - begin);
  for (int i = begin; i < end; ++i) {
    inputs->col(i - begin) = data.values.col(order[i]).template cast<T>();
    (*labels)[i - begin] = data.labels[order[i]];
  }
}

// The mean-loss gradient of a batch, split over threads, in the training
// precision; parameters and gradient cross this interface in double.
class BatchGradient {
 public:
  virtual ~BatchGradient() = default;
  // Sets *grad to the gradient of the mean loss over order[begin, end) and
  // returns the summed loss and correct count.
  // `devices` (nullptr: nominal) is the chip the batch runs on; the
  // thermal noise of a sequence is keyed by its position in the batch.
  virtual BatchResult Compute(const Vector& params, const Dataset& data,
                              const std::vector<int>& order, int begin, int end,
                              const Devices* devices, Vector* grad) = 0;
};

template <typename T>
class BatchGradientT final : public BatchGradient {
 public:
  BatchGradientT(const Model& m)
      : workers_(m.train.threads, Worker(Bptt<T>(m.network, m.device))) {}

  BatchResult Compute(const Vector& params, const Dataset& data,
                      const std::vector<int>& order, int begin, int end,
                      const Devices* devices, Vector* grad) override {
    params_ = params.template cast<T>();
    const double scale = 1.0 / (end - begin);
    ParallelFor(static_cast<int>(workers_.size()), end - begin,
                [&](int part, int b, int e) {
                  Worker& w = workers_[part];
                  Gather(data, order, begin + b, begin + e, &w.inputs,
                         &w.labels);
                  w.grad.setZero(params_.size());
                  w.bptt.SetDevices(devices, b);
                  w.result =
                      w.bptt.Run(params_, w.inputs, w.labels, scale, &w.grad);
                });
    BatchResult sum;
    grad->setZero(params.size());
    const int used = std::min<int>(workers_.size(), end - begin);
    for (int t = 0; t < used; ++t) {
      *grad += workers_[t].grad.template cast<double>();
      sum.loss_sum += workers_[t].result.loss_sum;
      sum.correct += workers_[t].result.correct;
    }
    return sum;
  }

 private:
  struct Worker {
    explicit Worker(Bptt<T> b) : bptt(std::move(b)) {}
    Bptt<T> bptt;
    VectorT<T> grad;
    MatrixT<T> inputs;
    std::vector<int> labels;
    BatchResult result;
  };
  std::vector<Worker> workers_;
  VectorT<T> params_;
};

}  // namespace

Evaluation Evaluate(const Model& model, const Dataset& data, int threads,
                    const DeviceVariability& variability) {
  constexpr int kEvalBatch = 256;
  Devices devices;
  if (!variability.None()) DrawDevices(model.network, variability, &devices);
  std::vector<int> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  double loss = 0, drive = 0, energy = 0;
  int correct = 0;
  std::vector<Bptt<double>> runners(threads,
                                    Bptt<double>(model.network, model.device));
  std::vector<BatchResult> parts(threads);
  for (int begin = 0; begin < data.size(); begin += kEvalBatch) {
    const int end = std::min<int>(begin + kEvalBatch, data.size());
    ParallelFor(threads, end - begin, [&](int part, int b, int e) {
      Matrix inputs;
      std::vector<int> labels;
      Gather(data, order, begin + b, begin + e, &inputs, &labels);
      runners[part].SetDevices(variability.None() ? nullptr : &devices,
                               begin + b);
      parts[part] = runners[part].Run(model.params, inputs, labels, 0, nullptr);
    });
    for (int t = 0; t < threads; ++t) {
      loss += parts[t].loss_sum;
      correct += parts[t].correct;
      drive += parts[t].drive_sum;
      energy += parts[t].energy_sum;
      parts[t] = BatchResult();
    }
  }
  const double n = static_cast<double>(data.size());
  return Evaluation{loss / n, correct / n, drive / n, energy / n};
}

double TrainingBytes(const NetworkConfig& network, const TrainConfig& train,
                     int64_t steps, int64_t sequences) {
  const double params = static_cast<double>(ParamLayout(network).size());
  const double vectors = params * (4 + train.threads);
  // a, s, z and y of every layer and neuron at every Euler step (+1) of
  // every sequence of a batch.
  const double batch = static_cast<double>(
      std::min<int64_t>(train.batch, std::max<int64_t>(sequences, 1)));
  const double trajectory =
      4.0 * network.layers * network.neurons *
      (static_cast<double>(steps) * network.substeps + 1) * batch;
  return sizeof(double) * (vectors + trajectory);
}

absl::StatusOr<Checkpoint> StartTraining(const NetworkConfig& network,
                                         const DeviceParams& device,
                                         const TrainConfig& train,
                                         const Dataset& train_data) {
  RETURN_IF_ERROR(network.Validate());
  RETURN_IF_ERROR(device.Validate());
  RETURN_IF_ERROR(train.Validate());
  RETURN_IF_ERROR(ValidateVariability(network, device, train));
  RETURN_IF_ERROR(CheckData(network, train_data, "training"));
  const double bytes =
      TrainingBytes(network, train, train_data.steps, train_data.size());
  if (bytes > kMaxTrainingBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training would take about ", std::ceil(bytes / (1 << 20)),
        " MiB (parameters, optimizer state, a gradient per thread and the "
        "trajectories of a batch); the limit is ",
        kMaxTrainingBytes / (1 << 20),
        " MiB: use fewer layers, neurons, substeps, threads or a smaller "
        "batch"));
  }
  Checkpoint c;
  Model& m = c.model;
  m.network = network;
  m.device = device;
  m.train = train;
  m.dataset_name = train_data.name;
  m.class_labels = train_data.class_labels;
  m.sequence_steps = train_data.steps;
  m.mask = MakeTrainableMask(network, train.seed);
  m.params = InitParameters(network, m.mask, train.init_int_scale, train.seed);
  c.adam_m = Vector::Zero(m.params.size());
  c.adam_v = Vector::Zero(m.params.size());
  return c;
}

absl::StatusOr<Checkpoint> Train(Checkpoint c, const Dataset& train_data,
                                 const Dataset& test_data,
                                 TrainingObserver* observer) {
  TrainingObserver default_observer;
  if (observer == nullptr) observer = &default_observer;
  Model& m = c.model;
  const TrainConfig& tc = m.train;
  RETURN_IF_ERROR(m.Validate());
  RETURN_IF_ERROR(CheckData(m.network, train_data, "training"));
  RETURN_IF_ERROR(CheckData(m.network, test_data, "test"));
  if (train_data.class_labels != m.class_labels ||
      test_data.class_labels != m.class_labels) {
    return absl::InvalidArgumentError(
        "training and test sets must have the model's class labels");
  }
  const int n = static_cast<int>(train_data.size());
  std::unique_ptr<BatchGradient> engine;
  if (tc.precision == Precision::kFloat32) {
    engine = std::make_unique<BatchGradientT<float>>(m);
  } else {
    engine = std::make_unique<BatchGradientT<double>>(m);
  }
  Vector grad(m.params.size());
  const int batches = (n + tc.batch - 1) / tc.batch;
  // Noise-aware training: each batch runs on freshly drawn devices
  // (MODEL.md "Device variability"); reused buffers.
  Devices train_devices;
  const bool vary_train = !tc.TrainVariability(m.device, 0, 0).None();

  for (int epoch = c.epochs_done; epoch < tc.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const double lr = tc.LearningRate(epoch);
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    Rng(tc.seed, kShuffleStream, epoch).Shuffle(&order);
    double loss_sum = 0, grad_norm_sum = 0;
    int correct = 0;
    for (int batch = 0; batch < batches; ++batch) {
      if (observer->StopRequested()) {
        return absl::CancelledError(absl::StrCat(
            "training cancelled in epoch ", epoch + 1, " before batch ",
            batch + 1, " of ", batches));
      }
      const int begin = batch * tc.batch;
      const int end = std::min(n, begin + tc.batch);
      if (vary_train) {
        DrawDevices(m.network, tc.TrainVariability(m.device, epoch, batch),
                    &train_devices);
      }
      const BatchResult r =
          engine->Compute(m.params, train_data, order, begin, end,
                          vary_train ? &train_devices : nullptr, &grad);
      loss_sum += r.loss_sum;
      correct += r.correct;
      grad.array() *= m.mask.array();
      const double norm = grad.norm();
      grad_norm_sum += norm;
      if (tc.clip_norm > 0 && norm > tc.clip_norm) grad *= tc.clip_norm / norm;
      // Adam with bias correction.
      ++c.adam_step;
      c.adam_m = tc.beta1 * c.adam_m + (1 - tc.beta1) * grad;
      c.adam_v = tc.beta2 * c.adam_v + (1 - tc.beta2) * grad.cwiseAbs2();
      const double bc1 = 1 - std::pow(tc.beta1, c.adam_step);
      const double bc2 = 1 - std::pow(tc.beta2, c.adam_step);
      m.params.array() -= (lr / bc1) * c.adam_m.array() /
                          ((c.adam_v.array() / bc2).sqrt() + tc.adam_eps);
      observer->OnBatch(epoch + 1, batch + 1, batches);
    }
    const double train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (!m.params.allFinite()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "training diverged in epoch ", epoch + 1,
          " (non-finite weights); lower lr or enable clip_norm"));
    }
    const Evaluation eval =
        Evaluate(m, test_data, tc.threads, tc.TestVariability(m.device));
    EpochMetrics em;
    em.epoch = epoch + 1;
    em.learning_rate = lr;
    em.train_loss = loss_sum / n;
    em.train_accuracy = static_cast<double>(correct) / n;
    em.test_loss = eval.loss;
    em.test_accuracy = eval.accuracy;
    em.samples_per_second = n / train_seconds;
    em.epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    em.cumulative_drive = eval.cumulative_drive;
    em.energy_per_sample_joules = eval.energy_per_sample_joules;
    em.grad_norm = grad_norm_sum / batches;
    c.epochs_done = epoch + 1;
    c.history.push_back(em);
    observer->OnEpoch(em, c);
  }
  return c;
}

}  // namespace spinnet
