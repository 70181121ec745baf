#include "src/wal/group_committer.h"

#include <chrono>
#include <future>
#include <vector>

#include "src/base/check.h"
#include "src/base/limits.h"

namespace cairn::wal {

GroupCommitter::GroupCommitter(Wal* wal, Options options) : wal_(wal), options_(options) {
  CAIRN_CHECK(wal_ != nullptr);
  CAIRN_CHECK(options_.batch_entries_max > 0 && options_.batch_bytes_max > 0);
  CAIRN_CHECK(options_.queue_entries_max > 0 && options_.queue_bytes_max > 0);
  thread_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() { Stop(); }

Status GroupCommitter::Submit(std::string payload, Callback done) {
  std::unique_lock<std::mutex> lock(mutex_);
  not_full_.wait(lock, [&] {
    if (stopping_ || queue_.empty()) return true;
    return queue_.size() < options_.queue_entries_max &&
           queue_bytes_ + payload.size() <= options_.queue_bytes_max;
  });
  if (stopping_) return Status::Unavailable("wal group committer is stopped");
  queue_bytes_ += payload.size();
  queue_.push_back({std::move(payload), std::move(done)});
  if (queue_.size() == 1) not_empty_.notify_one();
  return Status::Ok();
}

Result<uint64_t> GroupCommitter::Append(std::string payload) {
  CAIRN_CHECK(std::this_thread::get_id() != thread_.get_id());
  std::promise<Result<uint64_t>> promise;
  std::future<Result<uint64_t>> future = promise.get_future();
  CAIRN_RETURN_IF_ERROR(
      Submit(std::move(payload), [&promise](const Status& status, uint64_t index) {
        if (status.ok()) {
          promise.set_value(index);
        } else {
          promise.set_value(status);
        }
      }));
  return future.get();
}

void GroupCommitter::Stop() {
  CAIRN_CHECK(std::this_thread::get_id() != thread_.get_id());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  std::lock_guard<std::mutex> join_lock(join_mutex_);
  if (thread_.joinable()) thread_.join();
}

Status GroupCommitter::RunExclusive(const std::function<Status(Wal*)>& fn) {
  CAIRN_CHECK(std::this_thread::get_id() != thread_.get_id());
  std::lock_guard<std::mutex> writer(writer_mutex_);
  return fn(wal_);
}

GroupCommitter::Stats GroupCommitter::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void GroupCommitter::Run() {
  std::deque<Pending> batch;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      not_empty_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is committed
      size_t batch_bytes = 0;
      while (!queue_.empty() && batch.size() < options_.batch_entries_max) {
        const size_t bytes = queue_.front().payload.size();
        if (!batch.empty() && batch_bytes + bytes > options_.batch_bytes_max) break;
        batch_bytes += bytes;
        queue_bytes_ -= bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    not_full_.notify_all();
    CommitBatch(&batch);
    batch.clear();
  }
}

void GroupCommitter::CommitBatch(std::deque<Pending>* batch) {
  std::vector<std::string_view> payloads;
  payloads.reserve(batch->size());
  for (const Pending& pending : *batch) {
    if (pending.payload.size() <= limits::kWalRecordBytesMax) payloads.push_back(pending.payload);
  }
  Status status;
  uint64_t next_index = 0;
  if (!payloads.empty()) {
    std::lock_guard<std::mutex> writer(writer_mutex_);
    Result<uint64_t> first = wal_->AppendBatch(payloads);
    const auto sync_start = std::chrono::steady_clock::now();
    status = first.ok() ? wal_->Sync() : first.status();
    if (status.ok()) next_index = *first;
    if (status.ok() && options_.on_sync) {
      options_.on_sync(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - sync_start).count(),
          payloads.size());
    }
  }
  uint64_t ok = 0, failed = 0;
  for (Pending& pending : *batch) {
    if (pending.payload.size() > limits::kWalRecordBytesMax) {
      ++failed;
      pending.done(
          Status::InvalidArgument("wal: payload of " + std::to_string(pending.payload.size()) +
                                  " bytes exceeds the record limit"),
          0);
    } else if (!status.ok()) {
      ++failed;
      pending.done(status, 0);
    } else {
      ++ok;
      pending.done(Status::Ok(), next_index++);
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (!payloads.empty()) ++stats_.batches;
  stats_.entries += ok;
  stats_.entries_failed += failed;
  stats_.batch_entries_max = std::max<uint64_t>(stats_.batch_entries_max, batch->size());
}

}  // namespace cairn::wal
