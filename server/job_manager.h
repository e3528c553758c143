// Training jobs: admission, a queue, worker threads running the core's
// trainer, per-epoch checkpoints and metrics, publication of the model, and
// recovery after a restart. Training never runs on an RPC thread.
#ifndef SPINNET_SERVER_JOB_MANAGER_H_
#define SPINNET_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/store.h"

namespace spinnet::server {

struct JobManagerOptions {
  int workers = 1;
  int max_queued = 64;
};

// The latest state of a job, for WatchTrainingJob. A watcher that lags may
// skip intermediate updates; job.latest_epoch and epochs_done always hold
// the newest epoch (GetTrainingMetrics has every one).
struct JobUpdate {
  v1::TrainingJob job;
  uint64_t sequence = 0;  // increases with every update of any job
};

class JobManager {
 public:
  JobManager(Store* store, DataDir dir, DatasetRegistry* datasets,
             ServerMetrics* metrics, JobManagerOptions options);
  ~JobManager();

  // Requeues QUEUED jobs and resumes RUNNING ones (restarts + 1) found in
  // the store, then starts the workers.
  absl::Status Start();
  // Stops taking jobs; running jobs stop at their next batch and stay
  // RUNNING in the store (their last epoch checkpoint resumes them on the
  // next start). Waits for the workers.
  void Shutdown();

  absl::StatusOr<v1::TrainingJob> Submit(const v1::SubmitTrainingJobRequest& r);
  absl::StatusOr<v1::TrainingJob> Get(const std::string& id);
  absl::StatusOr<v1::TrainingJob> Cancel(const std::string& id);

  // Blocks until the job changes after `after_sequence` (0: returns the
  // current state at once) or `deadline` passes (then nullopt).
  absl::StatusOr<std::optional<JobUpdate>> WaitForUpdate(
      const std::string& id, uint64_t after_sequence, absl::Time deadline);

  int queue_depth();

 private:
  struct Running;
  class Observer;

  void WorkerLoop();
  void RunJob(const std::string& id);
  // Runs the job's training; returns the final state to record.
  absl::Status Train(v1::TrainingJob* job, Running* running);
  absl::StatusOr<int> Publish(const v1::TrainingJob& job, const Model& model,
                              const EpochMetrics& last);
  // Writes the job to the store and wakes watchers.
  absl::Status Record(const v1::TrainingJob& job,
                      std::optional<v1::EpochMetrics> epoch = std::nullopt);
  void Notify(const v1::TrainingJob& job);
  void RefreshGauges();

  Store* store_;
  DataDir dir_;
  DatasetRegistry* datasets_;
  ServerMetrics* metrics_;
  JobManagerOptions options_;

  std::mutex mu_;
  std::condition_variable work_cv_;     // queue or shutdown changed
  std::condition_variable update_cv_;   // a job changed
  std::deque<std::string> queue_;
  std::map<std::string, Running*> running_;  // by job id
  std::map<std::string, JobUpdate> latest_;  // last update per watched job
  uint64_t sequence_ = 0;
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_JOB_MANAGER_H_
