#include "services/gateway/spool/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/logging.h"
#include "services/common/status.h"
#include "services/gateway/spool/crc32c.h"

namespace tollgate::gateway {
namespace {

constexpr size_t kHeaderBytes = 8;
// Far above any real event; a larger length field can only be garbage.
constexpr uint32_t kMaxRecordBytes = 64 * 1024 * 1024;
constexpr char kSegmentSuffix[] = ".seg";
constexpr char kAckedFile[] = "ACKED";
constexpr char kLockFile[] = "LOCK";

using Clock = std::chrono::steady_clock;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void PutU32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
               static_cast<char>(v >> 24)};
  out.append(b, 4);
}

uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | static_cast<uint32_t>(u[1]) << 8 |
         static_cast<uint32_t>(u[2]) << 16 | static_cast<uint32_t>(u[3]) << 24;
}

// The CRC covers the length field too, so a zeroed region never parses as a record.
uint32_t RecordCrc(const char* length_bytes, const char* payload, size_t size) {
  return Crc32cExtend(Crc32c(length_bytes, 4), payload, size);
}

std::string SegmentName(uint64_t base) { return absl::StrFormat("%020d%s", base, kSegmentSuffix); }

absl::Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadFileToString(const std::string& path, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("open ", path));
  out->clear();
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Errno(absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::Status PreadAll(int fd, char* data, size_t size, uint64_t offset) {
  while (size > 0) {
    const ssize_t n = ::pread(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("pread");
    }
    if (n == 0) return absl::DataLossError("spool segment shorter than its durable size");
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

void SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Length of the valid prefix of `data` (whole records with good CRCs) and its record count.
std::pair<uint64_t, uint64_t> ScanRecords(const std::string& data) {
  uint64_t offset = 0;
  uint64_t records = 0;
  while (data.size() - offset >= kHeaderBytes) {
    const char* p = data.data() + offset;
    const uint32_t length = GetU32(p);
    if (length == 0 || length > kMaxRecordBytes) break;
    if (data.size() - offset - kHeaderBytes < length) break;
    if (RecordCrc(p, p + kHeaderBytes, length) != GetU32(p + 4)) break;
    offset += kHeaderBytes + length;
    ++records;
  }
  return {offset, records};
}

}  // namespace

absl::StatusOr<SpoolFullPolicy> ParseSpoolFullPolicy(const std::string& text) {
  if (text == "reject") return SpoolFullPolicy::kReject;
  if (text == "drop") return SpoolFullPolicy::kDrop;
  return absl::InvalidArgumentError(
      absl::StrCat("spool full policy must be \"reject\" or \"drop\" (got \"", text, "\")"));
}

Spool::Spool(SpoolOptions options, SpoolMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(SpoolOptions options, SpoolMetrics* metrics) {
  if (options.dir.empty()) return absl::InvalidArgumentError("spool directory is empty");
  if (options.segment_bytes < 4096) options.segment_bytes = 4096;
  std::unique_ptr<Spool> spool(new Spool(std::move(options), metrics));
  TOLLGATE_RETURN_IF_ERROR(spool->Recover());
  {
    absl::MutexLock lock(&spool->sync_mu_);
    spool->written_ = {spool->active_base_, 0, 0, spool->active_fd_};
  }
  if (spool->options_.fsync) spool->syncer_ = std::thread([s = spool.get()] { s->SyncerLoop(); });
  return spool;
}

Spool::~Spool() {
  Close();
  if (read_fd_ >= 0) ::close(read_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status Spool::Recover() {
  const std::string& dir = options_.dir;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Errno(absl::StrCat("cannot create spool directory ", dir));
  }
  const std::string lock_path = dir + "/" + kLockFile;
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return Errno(absl::StrCat("cannot open ", lock_path));
  // One process per spool: two writers would interleave records. The lock dies with the process.
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("spool directory ", dir, " is in use by another process"));
  }

  uint64_t acked = 0;
  std::string text;
  if (ReadFileToString(dir + "/" + kAckedFile, &text).ok()) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    if (!absl::SimpleAtoi(text, &acked)) {
      LogWarn("spool ACKED file is unreadable; resending everything in the spool", {{"dir", dir}});
      acked = 0;
    }
  }

  std::vector<std::pair<uint64_t, std::string>> files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Errno(absl::StrCat("cannot list spool directory ", dir));
  while (dirent* entry = ::readdir(d)) {
    std::string name = entry->d_name;
    const size_t suffix = sizeof(kSegmentSuffix) - 1;
    if (name.size() <= suffix || name.compare(name.size() - suffix, suffix, kSegmentSuffix) != 0) {
      continue;
    }
    uint64_t base = 0;
    if (!absl::SimpleAtoi(name.substr(0, name.size() - suffix), &base)) continue;
    files.emplace_back(base, dir + "/" + name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());

  uint64_t next = acked;
  uint64_t bytes = 0;
  uint64_t unacked = 0;
  absl::MutexLock append_lock(&append_mu_);
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [base, path] = files[i];
    std::string data;
    TOLLGATE_RETURN_IF_ERROR(ReadFileToString(path, &data));
    const auto [valid, records] = ScanRecords(data);
    if (valid < data.size()) {
      const bool last = i + 1 == files.size();
      const std::string valid_text = absl::StrCat(valid);
      const std::string dropped_text = absl::StrCat(data.size() - valid);
      const std::string kept_text = absl::StrCat(records);
      if (last) {
        LogWarn("spool: dropping the torn tail of the newest segment",
                {{"segment", path},
                 {"valid_bytes", valid_text},
                 {"dropped_bytes", dropped_text},
                 {"records_kept", kept_text}});
      } else {
        LogError(
            "spool: bad record in an older segment (corruption, or a machine crash before "
            "its final sync); dropping the rest of it",
            {{"segment", path},
             {"valid_bytes", valid_text},
             {"dropped_bytes", dropped_text},
             {"records_kept", kept_text}});
      }
      if (::truncate(path.c_str(), static_cast<off_t>(valid)) != 0) {
        return Errno(absl::StrCat("cannot truncate ", path));
      }
    }
    next = std::max(next, base + records);
    if (records == 0 || base + records <= acked) {
      ::unlink(path.c_str());
      continue;
    }
    Segment segment;
    segment.path = path;
    segment.base = base;
    segment.records = records;
    segment.bytes = valid;
    segment.sealed = true;
    bytes += valid;
    unacked += base + records - std::max(base, acked);
    segments_.emplace(base, std::move(segment));
  }
  acked_end_ = acked;
  durable_end_ = next;
  total_bytes_.store(bytes, std::memory_order_relaxed);
  TOLLGATE_RETURN_IF_ERROR(OpenActive(next));
  SyncDir(dir);
  LogInfo("spool opened", {{"dir", dir},
                           {"segments", absl::StrCat(segments_.size())},
                           {"bytes", absl::StrCat(bytes)},
                           {"unacked_events", absl::StrCat(unacked)},
                           {"acked_end", absl::StrCat(acked)},
                           {"next_seq", absl::StrCat(next)}});
  PublishGauges();
  return absl::OkStatus();
}

absl::Status Spool::OpenActive(uint64_t base) {
  Segment segment;
  segment.path = options_.dir + "/" + SegmentName(base);
  segment.base = base;
  const int fd =
      ::open(segment.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("cannot create spool segment ", segment.path));
  active_fd_ = fd;
  active_base_ = base;
  written_records_ = 0;
  written_bytes_ = 0;
  segments_[base] = std::move(segment);
  return absl::OkStatus();
}

bool Spool::Admitting() const {
  return options_.full_policy != SpoolFullPolicy::kReject ||
         total_bytes_.load(std::memory_order_relaxed) < options_.max_bytes;
}

Spool::AppendResult Spool::Append(const v1::UsageEvent& event) {
  appended_.fetch_add(1, std::memory_order_acq_rel);
  auto drop = [this](const char* why) {
    {
      absl::MutexLock lock(&mu_);
      ++committed_events_;
    }
    CountDropped(1, why);
    return AppendResult::kDropped;
  };
  if (closing_.load(std::memory_order_acquire)) return drop("the spool is closed");
  if (options_.full_policy == SpoolFullPolicy::kDrop &&
      total_bytes_.load(std::memory_order_relaxed) >= options_.max_bytes) {
    return drop("the spool is full (policy drop)");
  }
  // The record is built outside the lock, in a buffer each thread reuses.
  thread_local std::string record;
  const size_t size = event.ByteSizeLong();
  record.clear();
  PutU32(record, static_cast<uint32_t>(size));
  PutU32(record, 0);
  record.resize(kHeaderBytes + size);
  char* payload = record.data() + kHeaderBytes;
  event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(payload));
  const uint32_t crc = RecordCrc(record.data(), payload, size);
  for (int i = 0; i < 4; ++i) record[4 + i] = static_cast<char>(crc >> (8 * i));

  absl::MutexLock lock(&append_mu_);
  if (append_closed_) return drop("the spool is closed");
  if (written_records_ > 0 && written_bytes_ + record.size() > options_.segment_bytes) Roll();
  if (absl::Status status = WriteAll(active_fd_, record.data(), record.size()); !status.ok()) {
    // Cut back to the last whole record so the segment stays parseable.
    if (::ftruncate(active_fd_, static_cast<off_t>(written_bytes_)) != 0) {
      LogError("spool: cannot truncate after a failed write", {{"error", strerror(errno)}});
    }
    LogError("spool write failed", {{"error", std::string(status.message())}});
    return drop("the spool write failed");
  }
  written_bytes_ += record.size();
  ++written_records_;
  total_bytes_.fetch_add(record.size(), std::memory_order_relaxed);
  if (options_.fsync) {
    absl::MutexLock sync_lock(&sync_mu_);  // wakes the syncer (its Await condition)
    written_ = {active_base_, written_records_, written_bytes_, active_fd_};
  } else {
    Publish(active_base_, written_records_, written_bytes_);
  }
  return AppendResult::kWritten;
}

void Spool::CountDropped(uint64_t n, const char* why) {
  if (n == 0) return;
  const uint64_t before = dropped_.fetch_add(n, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->AddDropped(static_cast<double>(n));
  // The first drop, then at powers of two: a long outage cannot flood the log.
  const uint64_t after = before + n;
  if (before == 0 || std::bit_width(before) != std::bit_width(after)) {
    LogError("usage events dropped by the spool",
             {{"reason", why}, {"dropped_total", absl::StrCat(after)}, {"dir", options_.dir}});
  }
}

namespace {
struct SyncWait {
  const Spool::Written* written;
  const std::vector<Spool::Written>* seals;
  const bool* appends_done;
  uint64_t base, records;
};
bool SyncHasWork(SyncWait* w) {
  return *w->appends_done || !w->seals->empty() || w->written->base != w->base ||
         w->written->records != w->records;
}
}  // namespace

void Spool::SyncerLoop() {
  // Nothing synced yet: the first round syncs (and publishes) whatever is written by then.
  uint64_t synced_base = UINT64_MAX;
  uint64_t synced_records = 0;
  std::vector<Written> seals;
  auto timed_fdatasync = [this](int fd) {
    const Clock::time_point start = Clock::now();
    if (::fdatasync(fd) != 0) LogError("spool fdatasync failed", {{"error", strerror(errno)}});
    if (metrics_ != nullptr) {
      metrics_->ObserveFsync(std::chrono::duration<double>(Clock::now() - start).count());
    }
  };
  while (true) {
    bool active_changed;
    {
      absl::MutexLock lock(&sync_mu_);
      SyncWait wait{&written_, &seals_, &appends_done_, synced_base, synced_records};
      sync_mu_.Await(absl::Condition(&SyncHasWork, &wait));
      seals.swap(seals_);
      active_changed = written_.base != synced_base || written_.records != synced_records;
      if (seals.empty() && !active_changed) break;  // appends are done and all is synced
    }
    // Full segments first, oldest first: each is synced and published to its end, then sealed,
    // before any record of a later segment is published, so the reader never skips a record.
    for (const Written& full : seals) {
      timed_fdatasync(full.fd);
      ::close(full.fd);
      Publish(full.base, full.records, full.bytes);
      absl::MutexLock lock(&mu_);
      segments_[full.base].sealed = true;
    }
    if (!seals.empty()) SyncDir(options_.dir);  // the successors' directory entries
    seals.clear();
    if (!active_changed) continue;
    // Group commit: let appends add whatever arrives within the window to this sync.
    if (options_.commit_delay.count() > 0) std::this_thread::sleep_for(options_.commit_delay);
    Written target;
    int fd;
    {
      absl::MutexLock lock(&sync_mu_);
      target = written_;
      fd = ::dup(written_.fd);  // a roll hands the descriptor over to a seal
      if (!seals_.empty()) {
        // A roll happened meanwhile: `target` is already the successor, whose records must
        // not be published before the full segment's; the next round takes them in order.
        if (fd >= 0) ::close(fd);
        continue;
      }
    }
    if (fd >= 0) {
      timed_fdatasync(fd);
      ::close(fd);
    }
    Publish(target.base, target.records, target.bytes);
    synced_base = target.base;
    synced_records = target.records;
  }
}

void Spool::Roll() {
  // Never waits for the disk: the full segment's final fdatasync, publication and seal are the
  // syncer's (without fsync every record is published when written and the segment is sealed
  // here).
  absl::MutexLock sync_lock(&sync_mu_);
  absl::MutexLock lock(&mu_);
  const Written full{active_base_, written_records_, written_bytes_, active_fd_};
  absl::Status status = OpenActive(active_base_ + written_records_);
  if (!status.ok()) {
    // Keep appending to the old file rather than lose events; retried at the next roll.
    LogError("spool: cannot roll to a new segment", {{"error", std::string(status.message())}});
    return;
  }
  if (options_.fsync) {
    seals_.push_back(full);
  } else {
    ::close(full.fd);
    segments_[full.base].sealed = true;
  }
  written_ = {active_base_, written_records_, written_bytes_, active_fd_};
}

void Spool::Publish(uint64_t base, uint64_t records, uint64_t bytes) {
  uint64_t delta = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = segments_.find(base);
    if (it == segments_.end() || records <= it->second.records) return;  // nothing new
    delta = records - it->second.records;
    it->second.records = records;
    it->second.bytes = bytes;
    durable_end_ = std::max(durable_end_, base + records);
    committed_events_ += delta;
    PublishGauges();
    // Under the lock, so that SetCommitCallback(nullptr) guarantees no later call.
    if (commit_callback_) commit_callback_();
  }
  if (metrics_ != nullptr) metrics_->AddAppended(static_cast<double>(delta));
}

void Spool::PublishGauges() {
  if (metrics_ == nullptr) return;
  metrics_->SetBytes(static_cast<double>(total_bytes_.load(std::memory_order_relaxed)));
  metrics_->SetSegments(static_cast<double>(segments_.size()));
}

absl::Status Spool::Read(uint64_t from, size_t max, std::vector<SpoolRecord>* out) {
  Segment segment;
  {
    absl::MutexLock lock(&mu_);
    if (segments_.empty() || from >= durable_end_) return absl::OkStatus();
    auto it = segments_.upper_bound(from);
    if (it != segments_.begin()) --it;
    if (from < it->second.base) from = it->second.base;  // before the oldest kept record
    while (from >= it->second.base + it->second.records) {
      if (!it->second.sealed) return absl::OkStatus();  // nothing durable yet
      ++it;
      if (it == segments_.end()) return absl::OkStatus();
      from = std::max(from, it->second.base);
    }
    segment = it->second;
  }
  if (read_base_ != segment.base || read_fd_ < 0 || read_seq_ > from) {
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = ::open(segment.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (read_fd_ < 0) {
      read_base_ = UINT64_MAX;
      return Errno(absl::StrCat("cannot open spool segment ", segment.path));
    }
    read_base_ = segment.base;
    read_seq_ = segment.base;
    read_offset_ = 0;
  }
  const uint64_t end = segment.base + segment.records;
  std::string payload;
  while (read_seq_ < end && out->size() < max) {
    char header[kHeaderBytes];
    TOLLGATE_RETURN_IF_ERROR(PreadAll(read_fd_, header, kHeaderBytes, read_offset_));
    const uint32_t length = GetU32(header);
    if (length == 0 || length > kMaxRecordBytes) {
      return absl::DataLossError(absl::StrCat("bad record length in ", segment.path));
    }
    if (read_seq_ >= from) {
      payload.resize(length);
      TOLLGATE_RETURN_IF_ERROR(
          PreadAll(read_fd_, payload.data(), length, read_offset_ + kHeaderBytes));
      if (RecordCrc(header, payload.data(), length) != GetU32(header + 4)) {
        return absl::DataLossError(absl::StrCat("CRC mismatch in ", segment.path));
      }
      SpoolRecord record;
      record.seq = read_seq_;
      if (!record.event.ParseFromString(payload)) {
        // A record that passed its CRC but does not parse: skip it rather than wedge the sender.
        LogError("spool: undecodable usage event skipped",
                 {{"segment", segment.path}, {"seq", absl::StrCat(read_seq_)}});
        CountDropped(1, "undecodable spool record");
      } else {
        out->push_back(std::move(record));
      }
    }
    read_offset_ += kHeaderBytes + length;
    ++read_seq_;
  }
  return absl::OkStatus();
}

absl::Status Spool::Acknowledge(uint64_t acked_end) {
  std::vector<Segment> deletable;
  {
    absl::MutexLock lock(&mu_);
    if (acked_end <= acked_end_) return absl::OkStatus();
    acked_end_ = acked_end;
    for (auto it = segments_.begin(); it != segments_.end();) {
      if (it->second.sealed && it->second.base + it->second.records <= acked_end) {
        deletable.push_back(it->second);
        it = segments_.erase(it);
      } else {
        ++it;
      }
    }
  }
  absl::Status status = PersistAcked(acked_end);
  for (const Segment& segment : deletable) {
    if (::unlink(segment.path.c_str()) != 0 && errno != ENOENT) {
      LogWarn("spool: cannot delete an acknowledged segment",
              {{"segment", segment.path}, {"error", strerror(errno)}});
    }
    total_bytes_.fetch_sub(segment.bytes, std::memory_order_relaxed);
    if (read_base_ == segment.base && read_fd_ >= 0) {
      ::close(read_fd_);
      read_fd_ = -1;
      read_base_ = UINT64_MAX;
    }
  }
  if (!deletable.empty()) {
    absl::MutexLock lock(&mu_);
    PublishGauges();
  }
  return status;
}

absl::Status Spool::PersistAcked(uint64_t acked_end) {
  const std::string tmp = options_.dir + "/" + kAckedFile + ".tmp";
  const std::string path = options_.dir + "/" + kAckedFile;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("cannot write ", tmp));
  const std::string text = absl::StrCat(acked_end, "\n");
  absl::Status status = WriteAll(fd, text.data(), text.size());
  ::close(fd);
  TOLLGATE_RETURN_IF_ERROR(status);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno(absl::StrCat("cannot rename ", tmp));
  return absl::OkStatus();
}

void Spool::SetCommitCallback(std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  commit_callback_ = std::move(callback);
}

bool Spool::Flush(std::chrono::milliseconds timeout) {
  const uint64_t target = appended_.load(std::memory_order_acquire);
  struct Wait {
    const uint64_t* committed;
    uint64_t target;
  };
  absl::MutexLock lock(&mu_);
  Wait wait{&committed_events_, target};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Wait* w) { return *w->committed >= w->target; }, &wait),
                              absl::FromChrono(timeout));
}

void Spool::Close() {
  if (closed_.exchange(true)) return;
  closing_.store(true, std::memory_order_release);
  {
    absl::MutexLock lock(&append_mu_);  // waits for appends in progress
    append_closed_ = true;
  }
  {
    absl::MutexLock lock(&sync_mu_);
    appends_done_ = true;
  }
  if (syncer_.joinable()) syncer_.join();  // syncs what was written last, then exits
  absl::MutexLock lock(&append_mu_);
  if (active_fd_ >= 0) {
    ::close(active_fd_);
    active_fd_ = -1;
  }
}

uint64_t Spool::durable_end() const {
  absl::MutexLock lock(&mu_);
  return durable_end_;
}

uint64_t Spool::acked_end() const {
  absl::MutexLock lock(&mu_);
  return acked_end_;
}

uint64_t Spool::bytes() const { return total_bytes_.load(std::memory_order_relaxed); }

size_t Spool::segments() const {
  absl::MutexLock lock(&mu_);
  return segments_.size();
}

}  // namespace tollgate::gateway
