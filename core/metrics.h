// Per-epoch training metrics (reported by the trainer, stored in checkpoints).
#ifndef SPINNET_CORE_METRICS_H_
#define SPINNET_CORE_METRICS_H_

namespace spinnet {

struct EpochMetrics {
  int epoch = 0;  // 1-based
  double learning_rate = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double samples_per_second = 0;  // training samples / training wall time
  double epoch_seconds = 0;
  double cumulative_drive = 0;           // model.md 7, mean over test set
  double energy_per_sample_joules = 0;   // model.md 8, mean over test set
  double grad_norm = 0;  // mean pre-clipping gradient norm over the batches
};

}  // namespace spinnet

#endif  // SPINNET_CORE_METRICS_H_
