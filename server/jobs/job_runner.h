// Runs training jobs from the store's queue on this replica: worker threads
// claim the oldest queued job under a lease, train it with the core's
// trainer (never on an RPC thread), heartbeat its progress, record each
// epoch with its checkpoint, and publish the model with the final state in
// one transaction. Every write names the lease's fencing token, so a worker
// whose lease was taken over (it stalled, or the store thought it dead)
// changes nothing and stops. A maintenance thread heartbeats, reaps expired
// leases (any replica may) and refreshes the job gauges. gRPC-free.
#ifndef SPINNET_SERVER_JOBS_JOB_RUNNER_H_
#define SPINNET_SERVER_JOBS_JOB_RUNNER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/catalog/registry.h"
#include "server/jobs/job_events.h"
#include "server/storage/store.h"

namespace spinnet::server {

// Where the runner reports for monitoring (the Prometheus metrics).
class JobMetrics {
 public:
  virtual ~JobMetrics() = default;
  virtual void ObserveEpoch(double seconds, double samples_per_second) = 0;
  // Jobs by state in the whole store.
  virtual void SetJobCounts(const StoreCounts& counts) = 0;
  // Jobs this replica is running.
  virtual void SetActiveJobs(int n) = 0;
};

struct RunnerOptions {
  std::string worker;  // this replica's name in leases, e.g. "host:pid"
  int workers = 1;     // jobs trained at once
  // A lease lasts this long past its last heartbeat; a worker silent for
  // longer is presumed dead and its job is requeued by any replica.
  absl::Duration lease_ttl = absl::Seconds(15);
  // Heartbeats (progress, cancel checks) and reaper runs.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Claims of a job whose worker dies every time end FAILED after this many.
  int max_attempts = 3;
  // Idle workers look for queued jobs at least this often (hints from the
  // store wake them sooner).
  absl::Duration poll_interval = absl::Seconds(1);
};

class JobRunner {
 public:
  // The pointers must outlive the runner. `metrics` may be null.
  JobRunner(Store* store, DatasetRegistry* datasets, JobEvents* events,
            JobMetrics* metrics, RunnerOptions options);
  // Stop(absl::InfiniteFuture()).
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  void Start();
  // Stops claiming; running jobs stop at their next batch and go back to
  // the queue (released: another replica resumes them from their last
  // epoch's checkpoint). True when every worker stopped by `deadline`;
  // false when some are still in a batch (the process may then exit: their
  // leases lapse and they resume elsewhere).
  bool Stop(absl::Time deadline);

  int active_jobs();

 private:
  struct Active;
  class Observer;

  void WorkerLoop();
  void Run(const ClaimedJob& claimed);
  // Trains the job; returns the status of the training itself.
  absl::Status Train(Active* active);
  // Writes of a leased job retry UNAVAILABLE (the store restarting) for up
  // to one lease ttl: while the store is down nobody can take the lease.
  absl::Status WithRetry(const std::function<absl::Status()>& write);
  void Maintain();
  void Heartbeat(Active& active);

  Store* const store_;
  DatasetRegistry* const datasets_;
  JobEvents* const events_;
  JobMetrics* const metrics_;
  const RunnerOptions options_;

  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;  // a worker exited, or maintenance must stop
  // By job id. Shared with the maintenance thread, which heartbeats
  // without holding mu_ (a store call may block while the database is away).
  std::map<std::string, std::shared_ptr<Active>> active_;
  int live_workers_ = 0;
  bool stop_maintenance_ = false;
  std::vector<std::thread> workers_;
  std::thread maintenance_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_JOBS_JOB_RUNNER_H_
