#include "src/wal/wal.h"

#include <algorithm>
#include <optional>

#include "src/base/check.h"
#include "src/base/coding.h"
#include "src/base/limits.h"
#include "src/base/logging.h"
#include "src/wal/wal_format.h"

namespace cairn::wal {
namespace {

using format::ParseOutcome;
using format::RecordView;

// Every this many entries a segment remembers a record offset (8 bytes per 64 entries).
constexpr uint64_t kCheckpointStride = 64;
// Reads are done in chunks of this size (more when a record is larger).
constexpr size_t kReadChunkBytes = 1 << 20;
// AppendBatch writes its buffer out once it holds this many bytes.
constexpr size_t kWriteBufferBytesMax = 4 << 20;
constexpr size_t kSegmentSizeBytesMin = 4096;
static_assert(kSegmentSizeBytesMin > format::kSegmentHeaderBytes + format::kRecordHeaderBytes);

Status CorruptionAt(const std::string& path, uint64_t offset, std::string_view reason) {
  std::string message = "wal segment " + path + " at offset " + std::to_string(offset) + ": ";
  message += reason;
  return Status::Corruption(message);
}

// Reads the records of one segment front to back, through a buffer.
class SegmentReader {
 public:
  // Reads records from `offset`, never past `limit`.
  SegmentReader(const env::ReadableFile* file, uint64_t offset, uint64_t limit)
      : file_(file), offset_(offset), limit_(limit), buffer_offset_(offset) {}

  // Parses the record at offset(); on kRecord, `record` points into the reader's buffer
  // (valid until the next call) and offset() moves past it.
  Status Next(ParseOutcome* outcome, RecordView* record) {
    CAIRN_RETURN_IF_ERROR(Fill(format::kRecordHeaderBytes));
    std::string_view available = Available();
    if (available.size() >= format::kRecordHeaderBytes) {
      const uint32_t length = coding::DecodeFixed32(available.data() + 4);
      if (length <= limits::kWalRecordBytesMax) {
        CAIRN_RETURN_IF_ERROR(Fill(format::kRecordHeaderBytes + length));
        available = Available();
      }
    }
    *outcome = format::ParseRecord(available, record);
    if (*outcome == ParseOutcome::kRecord) offset_ += record->size_bytes;
    return Status::Ok();
  }

  uint64_t offset() const { return offset_; }

 private:
  std::string_view Available() const {
    return std::string_view(buffer_).substr(offset_ - buffer_offset_);
  }

  // Makes the buffer hold `bytes` bytes from offset() (fewer if the limit comes first).
  Status Fill(size_t bytes) {
    bytes = static_cast<size_t>(std::min<uint64_t>(bytes, limit_ - offset_));
    if (Available().size() >= bytes) return Status::Ok();
    buffer_.erase(0, offset_ - buffer_offset_);
    buffer_offset_ = offset_;
    const uint64_t read_from = buffer_offset_ + buffer_.size();
    const size_t read_bytes = static_cast<size_t>(
        std::min<uint64_t>(std::max(bytes - buffer_.size(), kReadChunkBytes), limit_ - read_from));
    CAIRN_RETURN_IF_ERROR(file_->Read(read_from, read_bytes, &scratch_));
    buffer_ += scratch_;
    return Status::Ok();
  }

  const env::ReadableFile* const file_;
  uint64_t offset_;
  const uint64_t limit_;
  std::string buffer_;  // file bytes [buffer_offset_, buffer_offset_ + size)
  uint64_t buffer_offset_;
  std::string scratch_;
};

// The offset just past the last non-zero byte in [from, size); `from` if there is none.
Result<uint64_t> FindDataEnd(const env::ReadableFile& file, uint64_t from, uint64_t size) {
  uint64_t data_end = from;
  std::string chunk;
  for (uint64_t offset = from; offset < size; offset += chunk.size()) {
    CAIRN_RETURN_IF_ERROR(file.Read(offset, kReadChunkBytes, &chunk));
    if (chunk.empty()) break;
    size_t last = chunk.find_last_not_of('\0');
    if (last != std::string::npos) data_end = offset + last + 1;
  }
  return data_end;
}

// The offset of the first complete, checksummed record starting in (from, data_end), if
// any. Records may extend past data_end (a payload can end in zeros).
Result<std::optional<uint64_t>> FindValidRecordAfter(const env::ReadableFile& file, uint64_t from,
                                                     uint64_t data_end, uint64_t size) {
  const uint64_t end = std::min(size, data_end + format::kRecordBytesMax);
  std::string region;
  CAIRN_RETURN_IF_ERROR(file.Read(from, static_cast<size_t>(end - from), &region));
  RecordView record;
  for (uint64_t candidate = 1; from + candidate < data_end && candidate < region.size();
       ++candidate) {
    if (format::ParseRecord(std::string_view(region).substr(candidate), &record) ==
        ParseOutcome::kRecord) {
      return std::optional<uint64_t>(from + candidate);
    }
  }
  return std::optional<uint64_t>();
}

struct FoundSegment {
  uint64_t sequence = 0, first_index = 0;
  std::string path;
};

// The segment files in `dir`, in sequence order.
Result<std::vector<FoundSegment>> ListSegments(env::FileSystem* fs, const std::string& dir) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> children, fs->GetChildren(dir));
  std::vector<FoundSegment> found;
  for (const std::string& name : children) {
    FoundSegment segment;
    if (!format::ParseSegmentFileName(name, &segment.sequence, &segment.first_index)) continue;
    segment.path = env::JoinPath(dir, name);
    found.push_back(std::move(segment));
  }
  std::sort(found.begin(), found.end(),
            [](const FoundSegment& a, const FoundSegment& b) { return a.sequence < b.sequence; });
  for (size_t i = 1; i < found.size(); ++i) {
    if (found[i].sequence == found[i - 1].sequence) {
      return CorruptionAt(found[i].path, 0,
                          "two segments have the same sequence as " + found[i - 1].path);
    }
  }
  return found;
}

// The position of the newest segment whose (valid) header resets the log, 0 if none: every
// segment before it is obsolete.
Result<size_t> FindNewestReset(env::FileSystem* fs, const std::vector<FoundSegment>& found) {
  size_t start = 0;
  for (size_t i = 0; i < found.size(); ++i) {
    CAIRN_ASSIGN_OR_RETURN(auto file, fs->NewReadableFile(found[i].path));
    std::string bytes;
    CAIRN_RETURN_IF_ERROR(file->Read(0, format::kSegmentHeaderBytes, &bytes));
    format::SegmentHeader header;
    if (format::DecodeSegmentHeader(bytes, &header).ok() &&
        (header.flags & format::kSegmentFlagResetsLog) != 0) {
      start = i;
    }
  }
  return start;
}

std::shared_ptr<spdlog::logger> Logger() {
  static std::shared_ptr<spdlog::logger> logger = log::Get("wal");
  return logger;
}

}  // namespace

Wal::Wal(env::FileSystem* fs, std::string dir, const WalOptions& options)
    : fs_(fs), dir_(std::move(dir)), options_(options) {}

Wal::~Wal() {
  if (prepare_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(prepare_mutex_);
      prepare_stop_ = true;
    }
    prepare_cv_.notify_all();
    prepare_thread_.join();
  }
  if (active_ != nullptr) active_->Close().ok();  // errors do not matter: nothing to lose
}

Result<std::unique_ptr<Wal>> Wal::Open(env::FileSystem* fs, const std::string& dir,
                                       const WalOptions& options) {
  if (options.segment_size_bytes < kSegmentSizeBytesMin) {
    return Status::InvalidArgument("wal: segment_size_bytes " +
                                   std::to_string(options.segment_size_bytes) + " is below " +
                                   std::to_string(kSegmentSizeBytesMin));
  }
  std::unique_ptr<Wal> wal(new Wal(fs, dir, options));
  CAIRN_RETURN_IF_ERROR(wal->Recover());
  if (options.preallocate && options.zero_filled_segments) {
    wal->prepare_thread_ = std::thread(&Wal::PrepareLoop, wal.get());
  }
  return wal;
}

Wal::Stats Wal::stats() const {
  Stats stats;
  stats.entries_appended = entries_appended_.load(std::memory_order_relaxed);
  stats.bytes_appended = bytes_appended_.load(std::memory_order_relaxed);
  stats.syncs = syncs_.load(std::memory_order_relaxed);
  stats.segments_created = segments_created_.load(std::memory_order_relaxed);
  stats.segments_deleted = segments_deleted_.load(std::memory_order_relaxed);
  stats.segments_prepared = segments_prepared_.load(std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(prepare_mutex_);
    stats.next_segment_ready = prepared_;
  }
  return stats;
}

std::string Wal::SegmentPath(uint64_t sequence, uint64_t first_index) const {
  return env::JoinPath(dir_, format::SegmentFileName(sequence, first_index));
}

Status Wal::Fail(Status status) {
  CAIRN_CHECK(!status.ok());
  if (failure_.ok()) {
    Logger()->error("{}: refusing further writes after: {}", dir_, status.ToString());
    failure_ = status;
  }
  return status;
}

// ---- Recovery ----------------------------------------------------------------------------

Status Wal::Recover() {
  CAIRN_RETURN_IF_ERROR(fs_->CreateDirs(dir_));
  CAIRN_ASSIGN_OR_RETURN(std::vector<FoundSegment> found, ListSegments(fs_, dir_));
  CAIRN_ASSIGN_OR_RETURN(const size_t start, FindNewestReset(fs_, found));
  for (size_t i = 0; i < start; ++i) {
    Logger()->info("{}: deleting {}, obsoleted by the reset in {}", dir_, found[i].path,
                   found[start].path);
    CAIRN_RETURN_IF_ERROR(fs_->DeleteFile(found[i].path));
    ++recovery_.obsolete_segments_deleted;
  }

  std::vector<Segment> segments;
  for (size_t i = start; i < found.size(); ++i) {
    const FoundSegment& f = found[i];
    const bool is_last = i + 1 == found.size();
    Segment segment;
    CAIRN_RETURN_IF_ERROR(RecoverSegment(f.path, f.sequence, f.first_index, is_last, &segment));
    if (segment.path.empty()) {  // the last segment's header was torn: it was removed
      if (segments.empty()) CAIRN_RETURN_IF_ERROR(CreateSegment(f.sequence, f.first_index, 0));
      break;
    }
    if (!segments.empty() && segment.first_index != segments.back().last_index + 1) {
      return CorruptionAt(f.path, 0,
                          "index gap: first index " + std::to_string(segment.first_index) +
                              " does not follow last index " +
                              std::to_string(segments.back().last_index) + " of " +
                              segments.back().path);
    }
    segments.push_back(std::move(segment));
  }

  if (!segments.empty()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      segments_ = std::move(segments);
    }
    CAIRN_RETURN_IF_ERROR(OpenActiveSegment());
  } else if (active_ == nullptr) {
    CAIRN_RETURN_IF_ERROR(CreateSegment(1, 1, 0));  // a new log
  }
  // Everything recovery reports is durable when Open returns: the active segment was synced
  // by OpenActiveSegment/Sync, older ones when the log rotated past them, and the directory
  // is synced unconditionally because the previous process may have stopped after creating
  // a segment but before syncing its name.
  CAIRN_RETURN_IF_ERROR(Sync());
  CAIRN_RETURN_IF_ERROR(fs_->SyncDir(dir_));

  first_index_.store(segments_.front().first_index, std::memory_order_release);
  last_index_.store(segments_.back().last_index, std::memory_order_release);
  recovery_.segments = segments_.size();
  if (LastIndex() >= FirstIndex()) {
    recovery_.first_index = FirstIndex();
    recovery_.last_index = LastIndex();
  }
  Logger()->info("{}: opened, entries [{}, {}], {} segments{}", dir_, FirstIndex(), LastIndex(),
                 segments_.size(), recovery_.tail_truncated ? ", torn tail cut off" : "");
  return Status::Ok();
}

// Validates one segment. On success fills *segment, or leaves segment->path empty when the
// last segment had a torn header and was deleted.
Status Wal::RecoverSegment(const std::string& path, uint64_t sequence, uint64_t first_index,
                           bool is_last, Segment* segment) {
  CAIRN_ASSIGN_OR_RETURN(auto file, fs_->NewReadableFile(path));
  CAIRN_ASSIGN_OR_RETURN(const uint64_t size, fs_->GetFileSize(path));
  std::string bytes;
  CAIRN_RETURN_IF_ERROR(file->Read(0, format::kSegmentHeaderBytes, &bytes));
  format::SegmentHeader header;
  Status header_status = format::DecodeSegmentHeader(bytes, &header);
  if (!header_status.ok()) {
    // Only the segment being created when the machine stopped may have a broken header, and
    // then it holds no valid record: it never held an entry, so removing it loses nothing.
    if (!is_last || format::SegmentHeaderIntact(bytes)) {
      return CorruptionAt(path, 0, header_status.message());
    }
    CAIRN_ASSIGN_OR_RETURN(uint64_t data_end, FindDataEnd(*file, 0, size));
    CAIRN_ASSIGN_OR_RETURN(auto valid, FindValidRecordAfter(*file, 0, data_end, size));
    if (valid.has_value()) {
      return CorruptionAt(path, 0,
                          std::string(header_status.message()) +
                              ", but a valid record follows at offset " + std::to_string(*valid));
    }
    Logger()->warn("{}: removing last segment {}: torn header ({} non-zero bytes)", dir_, path,
                   data_end);
    file.reset();
    CAIRN_RETURN_IF_ERROR(fs_->DeleteFile(path));
    recovery_.tail_truncated = data_end > 0;
    recovery_.truncated_segment = path;
    recovery_.truncated_offset = 0;
    recovery_.truncated_bytes = data_end;
    return Status::Ok();
  }
  if (header.sequence != sequence || header.first_index != first_index) {
    return CorruptionAt(path, 0,
                        "header holds sequence " + std::to_string(header.sequence) +
                            " and first index " + std::to_string(header.first_index) +
                            ", the file name does not");
  }

  segment->sequence = sequence;
  segment->first_index = first_index;
  segment->path = path;
  SegmentReader reader(file.get(), format::kSegmentHeaderBytes, size);
  uint64_t expected = first_index;
  ParseOutcome outcome;
  RecordView record;
  while (true) {
    const uint64_t offset = reader.offset();
    CAIRN_RETURN_IF_ERROR(reader.Next(&outcome, &record));
    if (outcome != ParseOutcome::kRecord) break;
    if (record.type != format::RecordType::kEntry) {
      return CorruptionAt(
          path, offset, "unsupported record type " + std::to_string(static_cast<int>(record.type)));
    }
    if (record.index != expected) {
      return CorruptionAt(path, offset,
                          "record index " + std::to_string(record.index) + ", expected " +
                              std::to_string(expected));
    }
    if ((expected - first_index) % kCheckpointStride == 0) segment->checkpoints.push_back(offset);
    ++expected;
  }
  const uint64_t stop = reader.offset();
  segment->end_offset = stop;
  segment->last_index = expected - 1;

  CAIRN_ASSIGN_OR_RETURN(uint64_t data_end, FindDataEnd(*file, stop, size));
  if (data_end == stop) return Status::Ok();  // only zeros (preallocated space) follow
  std::string reason(format::ParseOutcomeName(outcome));
  if (outcome == ParseOutcome::kEndOfData) reason = "non-zero bytes after the end of the data";
  if (!is_last) return CorruptionAt(path, stop, reason);
  CAIRN_ASSIGN_OR_RETURN(auto valid, FindValidRecordAfter(*file, stop, data_end, size));
  if (valid.has_value()) {
    return CorruptionAt(
        path, stop, reason + ", but a valid record follows at offset " + std::to_string(*valid));
  }
  Logger()->warn("{}: cutting torn tail of {} at offset {} ({}, {} bytes)", dir_, path, stop,
                 reason, data_end - stop);
  recovery_.tail_truncated = true;
  recovery_.truncated_segment = path;
  recovery_.truncated_offset = stop;
  recovery_.truncated_bytes = data_end - stop;
  return Status::Ok();
}

// ---- Segments ----------------------------------------------------------------------------

Status Wal::CreateSegment(uint64_t sequence, uint64_t first_index, uint32_t flags) {
  CAIRN_CHECK(active_ == nullptr);
  const std::string path = SegmentPath(sequence, first_index);
  if (prepare_thread_.joinable()) {
    CAIRN_ASSIGN_OR_RETURN(active_, TakePrepared(path));
  }
  active_prepared_ = active_ != nullptr;
  if (!active_prepared_) {
    CAIRN_ASSIGN_OR_RETURN(active_, fs_->NewWritableFile(path));
  }
  std::string header;
  format::EncodeSegmentHeader({format::kFormatVersion, flags, sequence, first_index}, &header);
  CAIRN_RETURN_IF_ERROR(active_->Append(header));
  if (options_.preallocate && !active_prepared_)
    CAIRN_RETURN_IF_ERROR(active_->Preallocate(options_.segment_size_bytes));
  Segment segment;
  segment.sequence = sequence;
  segment.first_index = first_index;
  segment.last_index = first_index - 1;
  segment.end_offset = format::kSegmentHeaderBytes;
  segment.path = path;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    segments_.push_back(std::move(segment));
  }
  unsynced_ = true;
  dir_sync_needed_ = true;
  segments_created_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

// Opens segments_.back() for appending at its end_offset, cutting anything after it and
// restoring the preallocation; durable on return.
Status Wal::OpenActiveSegment() {
  CAIRN_CHECK(active_ == nullptr);
  const Segment& segment = segments_.back();
  CAIRN_ASSIGN_OR_RETURN(const uint64_t size, fs_->GetFileSize(segment.path));
  if (size != segment.end_offset) {
    CAIRN_RETURN_IF_ERROR(fs_->TruncateFile(segment.path, segment.end_offset));
  }
  CAIRN_ASSIGN_OR_RETURN(active_, fs_->ReopenWritableFile(segment.path));
  CAIRN_CHECK(active_->Size() == segment.end_offset);
  active_prepared_ = false;
  if (options_.preallocate)
    CAIRN_RETURN_IF_ERROR(active_->Preallocate(options_.segment_size_bytes));
  CAIRN_RETURN_IF_ERROR(active_->Sync());
  syncs_.fetch_add(1, std::memory_order_relaxed);
  unsynced_ = false;
  return Status::Ok();
}

// ---- Zero-filled segments (WalOptions::zero_filled_segments) ---------------------------

std::string Wal::PreparedPath() const { return env::JoinPath(dir_, "next-segment.tmp"); }

void Wal::PrepareLoop() {
  std::unique_lock<std::mutex> lock(prepare_mutex_);
  while (true) {
    prepare_cv_.wait(lock, [&] { return prepare_stop_ || !prepared_; });
    if (prepare_stop_) return;
    lock.unlock();
    Status filled = FillWithZeros(PreparedPath());
    lock.lock();
    if (prepare_stop_) return;
    if (!filled.ok()) {
      // The log goes on with fallocate'd segments.
      Logger()->warn("{}: could not prepare the next segment: {}", dir_, filled.ToString());
      return;
    }
    prepared_ = true;
    segments_prepared_.fetch_add(1, std::memory_order_relaxed);
  }
}

Status Wal::FillWithZeros(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(auto file, fs_->NewWritableFile(path));
  const std::string zeros(size_t{1} << 20, '\0');
  while (file->Size() < options_.segment_size_bytes) {
    if (prepare_stop_) return Status::Ok();  // the caller sees the stop
    const size_t n = std::min<uint64_t>(zeros.size(), options_.segment_size_bytes - file->Size());
    CAIRN_RETURN_IF_ERROR(file->Append(std::string_view(zeros.data(), n)));
  }
  CAIRN_RETURN_IF_ERROR(file->Sync());
  return file->Close();
}

bool Wal::PreparedReady() {
  std::lock_guard<std::mutex> lock(prepare_mutex_);
  return prepared_;
}

Result<std::unique_ptr<env::WritableFile>> Wal::TakePrepared(const std::string& path) {
  if (!PreparedReady()) return std::unique_ptr<env::WritableFile>();
  // The thread is idle while prepared_ holds: the file is the writer's now.
  CAIRN_RETURN_IF_ERROR(fs_->RenameFile(PreparedPath(), path));
  CAIRN_ASSIGN_OR_RETURN(auto file, fs_->ReopenWritableFileAt(path, 0));
  {
    std::lock_guard<std::mutex> lock(prepare_mutex_);
    prepared_ = false;
  }
  prepare_cv_.notify_one();
  return file;
}

Status Wal::Rotate() {
  CAIRN_CHECK(buffer_.empty());
  // The old segment is made durable before the new one exists, so that only the last
  // segment can ever have a torn tail.
  if (Status s = active_->Sync(); !s.ok()) return Fail(s);
  syncs_.fetch_add(1, std::memory_order_relaxed);
  unsynced_ = false;
  Status closed = active_->Close();
  active_.reset();
  if (!closed.ok()) return Fail(closed);
  if (Status s = CreateSegment(segments_.back().sequence + 1, LastIndex() + 1, 0); !s.ok()) {
    return Fail(s);
  }
  return Status::Ok();
}

Status Wal::DeleteSegmentsFrom(size_t position) {
  while (segments_.size() > position) {
    CAIRN_RETURN_IF_ERROR(fs_->DeleteFile(segments_.back().path));
    std::lock_guard<std::mutex> lock(mutex_);
    segments_.pop_back();
    segments_deleted_.fetch_add(1, std::memory_order_relaxed);
  }
  return Status::Ok();
}

// ---- Writing -----------------------------------------------------------------------------

Result<uint64_t> Wal::Append(std::string_view payload) {
  return AppendBatch(std::span<const std::string_view>(&payload, 1));
}

Result<uint64_t> Wal::AppendBatch(std::span<const std::string_view> payloads) {
  if (!failure_.ok()) return failure_;
  if (payloads.empty()) return Status::InvalidArgument("wal: empty batch");
  for (std::string_view payload : payloads) {
    if (payload.size() > limits::kWalRecordBytesMax) {
      return Status::InvalidArgument("wal: payload of " + std::to_string(payload.size()) +
                                     " bytes exceeds the record limit of " +
                                     std::to_string(limits::kWalRecordBytesMax));
    }
  }
  CAIRN_CHECK(buffer_.empty() && active_ != nullptr);
  // Leave a segment that was not zero-filled ahead (wal.h) once one is ready.
  if (!active_prepared_ && prepare_thread_.joinable() &&
      LastIndex() >= segments_.back().first_index && PreparedReady()) {
    CAIRN_RETURN_IF_ERROR(Rotate());
  }
  const uint64_t first = LastIndex() + 1;
  uint64_t buffered_entries = 0;
  std::vector<uint64_t> checkpoints;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const uint64_t index = first + i;
    const uint64_t record_bytes = format::kRecordHeaderBytes + payloads[i].size();
    const Segment& segment = segments_.back();
    const bool segment_has_entries = index > segment.first_index;
    if (segment_has_entries &&
        segment.end_offset + buffer_.size() + record_bytes > options_.segment_size_bytes) {
      CAIRN_RETURN_IF_ERROR(FlushBuffer(buffered_entries, &checkpoints));
      buffered_entries = 0;
      CAIRN_RETURN_IF_ERROR(Rotate());
    } else if (buffer_.size() + record_bytes > kWriteBufferBytesMax && !buffer_.empty()) {
      CAIRN_RETURN_IF_ERROR(FlushBuffer(buffered_entries, &checkpoints));
      buffered_entries = 0;
    }
    const Segment& target = segments_.back();
    if ((index - target.first_index) % kCheckpointStride == 0) {
      checkpoints.push_back(target.end_offset + buffer_.size());
    }
    format::AppendRecord(format::RecordType::kEntry, index, payloads[i], &buffer_);
    ++buffered_entries;
  }
  CAIRN_RETURN_IF_ERROR(FlushBuffer(buffered_entries, &checkpoints));
  return first;
}

// Writes the buffered records to the active segment and publishes them to readers.
Status Wal::FlushBuffer(uint64_t entries, std::vector<uint64_t>* checkpoints) {
  if (buffer_.empty()) return Status::Ok();
  Status status = active_->Append(buffer_);
  if (!status.ok()) {
    buffer_.clear();
    return Fail(status);
  }
  uint64_t last_index;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Segment& segment = segments_.back();
    segment.end_offset += buffer_.size();
    segment.last_index += entries;
    segment.checkpoints.insert(segment.checkpoints.end(), checkpoints->begin(), checkpoints->end());
    last_index = segment.last_index;
    CAIRN_CHECK(segment.end_offset == active_->Size());
  }
  last_index_.store(last_index, std::memory_order_release);
  entries_appended_.fetch_add(entries, std::memory_order_relaxed);
  bytes_appended_.fetch_add(buffer_.size(), std::memory_order_relaxed);
  checkpoints->clear();
  buffer_.clear();
  unsynced_ = true;
  return Status::Ok();
}

Status Wal::Sync() {
  if (!failure_.ok()) return failure_;
  if (unsynced_) {
    if (Status s = active_->Sync(); !s.ok()) return Fail(s);
    syncs_.fetch_add(1, std::memory_order_relaxed);
    unsynced_ = false;
  }
  if (dir_sync_needed_) {
    if (Status s = fs_->SyncDir(dir_); !s.ok()) return Fail(s);
    dir_sync_needed_ = false;
  }
  return Status::Ok();
}

// ---- Reading -----------------------------------------------------------------------------

Status Wal::ReadFrom(uint64_t from_index,
                     const std::function<Status(uint64_t index, std::string_view payload)>& fn) {
  struct Plan {
    std::string path;
    uint64_t first_index, start_index, start_offset, last_index, end_offset;
  };
  std::vector<Plan> plan;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint64_t first = segments_.front().first_index;
    if (from_index < first && first > 1) {
      return Status::OutOfRange("wal: entries before " + std::to_string(first) +
                                " were discarded; cannot read from " + std::to_string(from_index));
    }
    for (const Segment& segment : segments_) {
      if (segment.last_index < std::max(from_index, segment.first_index)) continue;
      uint64_t k = from_index > segment.first_index
                       ? (from_index - segment.first_index) / kCheckpointStride
                       : 0;
      CAIRN_CHECK(k < segment.checkpoints.size());
      plan.push_back({segment.path, segment.first_index,
                      segment.first_index + k * kCheckpointStride, segment.checkpoints[k],
                      segment.last_index, segment.end_offset});
    }
  }
  for (const Plan& p : plan) {
    CAIRN_ASSIGN_OR_RETURN(auto file, fs_->NewReadableFile(p.path));
    SegmentReader reader(file.get(), p.start_offset, p.end_offset);
    for (uint64_t index = p.start_index; index <= p.last_index; ++index) {
      const uint64_t offset = reader.offset();
      ParseOutcome outcome;
      RecordView record;
      CAIRN_RETURN_IF_ERROR(reader.Next(&outcome, &record));
      if (outcome != ParseOutcome::kRecord) {
        return CorruptionAt(p.path, offset, format::ParseOutcomeName(outcome));
      }
      if (record.index != index) {
        return CorruptionAt(
            p.path, offset,
            "record index " + std::to_string(record.index) + ", expected " + std::to_string(index));
      }
      if (index >= from_index) CAIRN_RETURN_IF_ERROR(fn(index, record.payload));
    }
  }
  return Status::Ok();
}

Result<uint64_t> Wal::FindOffset(const Segment& segment, uint64_t index) {
  CAIRN_CHECK(index >= segment.first_index && index <= segment.last_index);
  const uint64_t k = (index - segment.first_index) / kCheckpointStride;
  CAIRN_CHECK(k < segment.checkpoints.size());
  CAIRN_ASSIGN_OR_RETURN(auto file, fs_->NewReadableFile(segment.path));
  SegmentReader reader(file.get(), segment.checkpoints[k], segment.end_offset);
  for (uint64_t at = segment.first_index + k * kCheckpointStride;; ++at) {
    const uint64_t offset = reader.offset();
    if (at == index) return offset;
    ParseOutcome outcome;
    RecordView record;
    CAIRN_RETURN_IF_ERROR(reader.Next(&outcome, &record));
    if (outcome != ParseOutcome::kRecord || record.index != at) {
      return CorruptionAt(segment.path, offset, "record changed since recovery");
    }
  }
}

// ---- Truncation --------------------------------------------------------------------------

Status Wal::TruncateSuffix(uint64_t last_index_kept) {
  if (!failure_.ok()) return failure_;
  if (last_index_kept >= LastIndex()) return Status::Ok();
  if (last_index_kept + 1 < FirstIndex()) {
    return Status::OutOfRange("wal: cannot truncate after " + std::to_string(last_index_kept) +
                              ": entries before " + std::to_string(FirstIndex()) +
                              " were discarded");
  }
  const uint64_t first_dropped = last_index_kept + 1;
  size_t position = segments_.size() - 1;
  while (segments_[position].first_index > first_dropped) --position;
  uint64_t offset = format::kSegmentHeaderBytes;
  if (first_dropped <= segments_[position].last_index) {
    CAIRN_ASSIGN_OR_RETURN(offset, FindOffset(segments_[position], first_dropped));
  }

  Status closed = active_->Close();
  active_.reset();
  if (!closed.ok()) return Fail(closed);
  // Newest segments go first and are gone for good before the kept one is cut, so a crash
  // part way never leaves a gap in the log.
  const bool deleting = position + 1 < segments_.size();
  if (Status s = DeleteSegmentsFrom(position + 1); !s.ok()) return Fail(s);
  if (deleting || dir_sync_needed_) {
    if (Status s = fs_->SyncDir(dir_); !s.ok()) return Fail(s);
    dir_sync_needed_ = false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Segment& segment = segments_.back();
    segment.end_offset = offset;
    segment.last_index = last_index_kept;
    const uint64_t kept_entries = last_index_kept + 1 - segment.first_index;
    segment.checkpoints.resize((kept_entries + kCheckpointStride - 1) / kCheckpointStride);
  }
  last_index_.store(last_index_kept, std::memory_order_release);
  if (Status s = OpenActiveSegment(); !s.ok()) return Fail(s);
  return Status::Ok();
}

Status Wal::TruncatePrefix(uint64_t first_index_needed) {
  if (!failure_.ok()) return failure_;
  size_t count = 0;
  while (count + 1 < segments_.size() && segments_[count].last_index < first_index_needed) {
    ++count;
  }
  if (count == 0) return Status::Ok();
  // Oldest first, so that a crash part way leaves a contiguous log.
  for (size_t i = 0; i < count; ++i) {
    CAIRN_RETURN_IF_ERROR(fs_->DeleteFile(segments_.front().path));
    std::lock_guard<std::mutex> lock(mutex_);
    segments_.erase(segments_.begin());
    first_index_.store(segments_.front().first_index, std::memory_order_release);
    segments_deleted_.fetch_add(1, std::memory_order_relaxed);
  }
  return fs_->SyncDir(dir_);
}

Status Wal::Reset(uint64_t next_index) {
  CAIRN_CHECK(next_index >= 1);
  if (!failure_.ok()) return failure_;
  Status closed = active_->Close();
  active_.reset();
  if (!closed.ok()) return Fail(closed);
  // The new segment is durable before any old one is deleted: recovery drops every segment
  // older than a segment flagged kSegmentFlagResetsLog.
  const size_t old_count = segments_.size();
  if (Status s =
          CreateSegment(segments_.back().sequence + 1, next_index, format::kSegmentFlagResetsLog);
      !s.ok()) {
    return Fail(s);
  }
  if (Status s = Sync(); !s.ok()) return s;
  std::vector<std::string> obsolete;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < old_count; ++i) obsolete.push_back(segments_[i].path);
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(old_count));
  }
  // Readers must never see first > last + 1 with stale bounds: move last first when the
  // log moves backwards, first first when it moves forwards.
  if (next_index - 1 < LastIndex()) {
    last_index_.store(next_index - 1, std::memory_order_release);
    first_index_.store(next_index, std::memory_order_release);
  } else {
    first_index_.store(next_index, std::memory_order_release);
    last_index_.store(next_index - 1, std::memory_order_release);
  }
  for (const std::string& path : obsolete) {
    CAIRN_RETURN_IF_ERROR(fs_->DeleteFile(path));  // else the next recovery deletes it
    segments_deleted_.fetch_add(1, std::memory_order_relaxed);
  }
  return fs_->SyncDir(dir_);
}

}  // namespace cairn::wal
