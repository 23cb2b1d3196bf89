#include "shared_table.h"

#include <utility>

namespace pm {

void SharedTable::Reset(const Options& opts, std::string boot) {
  std::lock_guard<std::mutex> lk(mu_);
  table_.Reset(opts, std::move(boot));
  subtree_ = opts.subtree;
  seed_ = opts.seed;
  seeded_ = !NeedsSeed();
}

// Runs after the subscription: a process that starts meanwhile is seen by its events as well.
void SharedTable::Seed(const std::atomic<bool>& stop) {
  // With a subtree, only its roots (and, seeding, their descendants) are learned: nothing else
  // is followed.
  std::vector<int32_t> pids = subtree_.empty() ? ListPids() : seed_ ? ListSubtree(subtree_) : subtree_;
  for (int32_t pid : pids) {
    if (stop) break;
    std::lock_guard<std::mutex> lk(mu_);  // per process: events are handled between
    if (!table_.Learn(pid)) break;
  }
  std::lock_guard<std::mutex> lk(mu_);
  seeded_ = true;
  pthread_cond_broadcast(&seeded_cv_);
}

// Until the scan is over, the table lacks processes that are running. The reader thread
// always ends the scan (Seed() marks it over even when it stops early), and only the JS
// thread, which waits here, could stop it. An untimed wait: a timed one needs
// pthread_cond_clockwait (glibc 2.30+), which the prebuilds must not.
void SharedTable::WaitSeeded(std::unique_lock<std::mutex>& lk, const std::atomic<bool>& running) {
  while (!seeded_ && running) pthread_cond_wait(&seeded_cv_, lk.mutex()->native_handle());
}

void SharedTable::Snapshot(std::vector<ProcRecord>& out, const std::atomic<bool>& running) {
  std::unique_lock<std::mutex> lk(mu_);
  out.clear();
  if (!running) return;
  WaitSeeded(lk, running);
  table_.Snapshot(out);
}

bool SharedTable::Ancestry(int32_t pid, std::vector<ProcRecord>& out, const std::atomic<bool>& running) {
  std::unique_lock<std::mutex> lk(mu_);
  out.clear();
  if (!running) return false;
  WaitSeeded(lk, running);
  table_.Ancestry(pid, out);
  return !out.empty();
}

void SharedTable::Sizes(uint64_t* size, uint64_t* full) {
  std::lock_guard<std::mutex> lk(mu_);
  *size = table_.size();
  *full = table_.full_count();
}

}  // namespace pm
