#include "server/jobs/job_events.h"

namespace spinnet::server {
namespace {
constexpr size_t kMaxTrackedJobs = 4096;
}  // namespace

void JobEvents::Changed(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (by_job_.size() >= kMaxTrackedJobs) by_job_.clear();
    by_job_[job_id] = ++sequence_;
  }
  cv_.notify_all();
}

uint64_t JobEvents::SnapshotLocked(const std::string& job_id) {
  if (job_id.empty()) return sequence_;
  auto it = by_job_.find(job_id);
  // An untracked job's next hint will be above the current sequence.
  return it == by_job_.end() ? sequence_ : it->second;
}

uint64_t JobEvents::Snapshot(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  // Tracked from now on, so that other jobs' hints do not wake its waiters.
  if (!job_id.empty()) by_job_.emplace(job_id, sequence_);
  return SnapshotLocked(job_id);
}

bool JobEvents::Wait(const std::string& job_id, uint64_t snapshot,
                     absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] {
    return shutdown_ || SnapshotLocked(job_id) > snapshot;
  });
  return !shutdown_;
}

void JobEvents::Poke() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++sequence_;
    for (auto& [id, sequence] : by_job_) sequence = sequence_;
  }
  cv_.notify_all();
}

void JobEvents::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace spinnet::server
