// Wake-up hints for code that waits on jobs in the store: watchers waiting
// for a job to change and idle workers waiting for one to be queued. The
// store's change callback feeds it (this replica's writes and, through
// LISTEN/NOTIFY, other replicas'). Hints can be lost, so every waiter also
// polls the store at a bounded interval; a hint only makes it sooner.
#ifndef SPINNET_SERVER_JOBS_JOB_EVENTS_H_
#define SPINNET_SERVER_JOBS_JOB_EVENTS_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/time/time.h"

namespace spinnet::server {

class JobEvents {
 public:
  // A hint that job `job_id` changed.
  void Changed(const std::string& job_id);

  // The hint sequence of a job (or of any job, for an empty id). Take it
  // before reading the store, then Wait with it: a change in between is not
  // missed.
  uint64_t Snapshot(const std::string& job_id);
  // Returns when a hint newer than `snapshot` arrives for the job (any job
  // for an empty id) or at `deadline`: true; false after Shutdown.
  bool Wait(const std::string& job_id, uint64_t snapshot, absl::Time deadline);

  // Wakes every waiter once (they look at their own stop flags).
  void Poke();
  // Wakes every waiter now and from then on.
  void Shutdown();

 private:
  uint64_t SnapshotLocked(const std::string& job_id);

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t sequence_ = 0;  // of the newest hint, any job
  // The sequence of each job's newest hint. Bounded: when it is cleared,
  // later hints get sequences above every snapshot taken before.
  std::unordered_map<std::string, uint64_t> by_job_;
  bool shutdown_ = false;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_JOBS_JOB_EVENTS_H_
