#include "services/gateway/spool/spool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "services/gateway/spool/crc32c.h"

namespace tollgate::gateway {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "spool_test.XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

SpoolOptions Options(const std::string& dir) {
  SpoolOptions options;
  options.dir = dir;
  options.commit_delay = std::chrono::microseconds(100);
  return options;
}

std::unique_ptr<v1::UsageEvent> Event(const std::string& id) {
  auto event = std::make_unique<v1::UsageEvent>();
  event->set_event_id(id);
  event->set_request_id(id);
  event->mutable_usage()->set_input_tokens(11);
  event->mutable_usage()->set_output_tokens(7);
  return event;
}

std::unique_ptr<Spool> MustOpen(const SpoolOptions& options) {
  absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(options, nullptr);
  EXPECT_TRUE(spool.ok()) << spool.status();
  return spool.ok() ? std::move(*spool) : nullptr;
}

// Every durable record from `from` on.
std::vector<SpoolRecord> ReadAll(Spool& spool, uint64_t from = 0) {
  std::vector<SpoolRecord> out;
  while (true) {
    const size_t before = out.size();
    absl::Status status = spool.Read(out.empty() ? from : out.back().seq + 1, 1000, &out);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok() || out.size() == before) return out;
  }
}

std::vector<std::string> Ids(const std::vector<SpoolRecord>& records) {
  std::vector<std::string> ids;
  for (const SpoolRecord& r : records) ids.push_back(r.event.event_id());
  return ids;
}

std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".seg") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void AppendAndFlush(Spool& spool, const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    ASSERT_EQ(spool.Append(*Event(id)), Spool::AppendResult::kWritten);
  }
  ASSERT_TRUE(spool.Flush(std::chrono::seconds(10)));
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4: 32 bytes of zeros, and "123456789".
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32cExtend(Crc32c("1234", 4), "56789", 5), 0xE3069283u);
}

TEST(Spool, AppendRecoverRoundTrip) {
  TempDir dir;
  const SpoolOptions options = Options(dir.Sub("spool"));
  {
    auto spool = MustOpen(options);
    AppendAndFlush(*spool, {"a", "b", "c"});
    EXPECT_EQ(spool->durable_end(), 3u);
    std::vector<SpoolRecord> records = ReadAll(*spool);
    EXPECT_EQ(Ids(records), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(records[2].seq, 2u);
    EXPECT_EQ(records[1].event.usage().input_tokens(), 11);
    ASSERT_TRUE(spool->Acknowledge(1).ok());  // "a" committed by the ledger
  }
  {
    // Nothing acknowledged beyond "a" is lost; new appends continue the sequence.
    auto spool = MustOpen(options);
    EXPECT_EQ(spool->acked_end(), 1u);
    EXPECT_EQ(Ids(ReadAll(*spool, spool->acked_end())), (std::vector<std::string>{"b", "c"}));
    AppendAndFlush(*spool, {"d"});
    std::vector<SpoolRecord> records = ReadAll(*spool, 1);
    EXPECT_EQ(Ids(records), (std::vector<std::string>{"b", "c", "d"}));
    EXPECT_EQ(records.back().seq, 3u);
    ASSERT_TRUE(spool->Acknowledge(4).ok());
  }
  {
    auto spool = MustOpen(options);
    EXPECT_TRUE(ReadAll(*spool, spool->acked_end()).empty());
    EXPECT_EQ(spool->durable_end(), 4u);
  }
}

TEST(Spool, SecondProcessCannotOpenTheSameDirectory) {
  TempDir dir;
  auto spool = MustOpen(Options(dir.path()));
  // flock locks are per open file description, so a second Open in this process also fails.
  absl::StatusOr<std::unique_ptr<Spool>> second = Spool::Open(Options(dir.path()), nullptr);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Spool, TornTailAtEveryByteOffsetIsDroppedCleanly) {
  TempDir dir;
  const std::string source = dir.Sub("source");
  {
    auto spool = MustOpen(Options(source));
    AppendAndFlush(*spool, {"first", "second"});
    AppendAndFlush(*spool, {"last-record-xyz"});
  }
  std::vector<std::string> segments = Segments(source);
  ASSERT_EQ(segments.size(), 1u);  // the empty active segment of the closed spool is not kept
  const uint64_t full = fs::file_size(segments[0]);
  const uint64_t last_size = 8 + Event("last-record-xyz")->ByteSizeLong();
  const uint64_t last_start = full - last_size;

  for (uint64_t cut = last_start; cut < full; ++cut) {
    SCOPED_TRACE(absl::StrCat("cut at byte ", cut));
    const std::string copy = dir.Sub(absl::StrCat("cut", cut));
    fs::copy(source, copy);
    const std::string segment = copy + "/" + fs::path(segments[0]).filename().string();
    fs::resize_file(segment, cut);
    auto spool = MustOpen(Options(copy));
    EXPECT_EQ(Ids(ReadAll(*spool)), (std::vector<std::string>{"first", "second"}));
    EXPECT_EQ(fs::file_size(segment), last_start) << "the torn tail is truncated away";
    // The spool keeps working after recovery.
    AppendAndFlush(*spool, {"after"});
    EXPECT_EQ(Ids(ReadAll(*spool)), (std::vector<std::string>{"first", "second", "after"}));
    spool.reset();
    fs::remove_all(copy);
  }

  // Zeros after the last record (preallocated or half-written blocks) are a torn tail too.
  {
    std::ofstream(segments[0], std::ios::app | std::ios::binary) << std::string(100, '\0');
    auto spool = MustOpen(Options(source));
    EXPECT_EQ(Ids(ReadAll(*spool)),
              (std::vector<std::string>{"first", "second", "last-record-xyz"}));
  }
}

TEST(Spool, CrcCorruptionIsDetected) {
  TempDir dir;
  SpoolOptions options = Options(dir.Sub("spool"));
  options.segment_bytes = 4096;
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i)
    ids.push_back(absl::StrFormat("event-%04d%s", i, std::string(40, 'x')));
  {
    auto spool = MustOpen(options);
    AppendAndFlush(*spool, ids);
  }
  std::vector<std::string> segments = Segments(options.dir);
  ASSERT_GE(segments.size(), 3u);
  // Flip one payload byte of the second record of the first (sealed) segment.
  const uint64_t record = 8 + Event(ids[0])->ByteSizeLong();
  {
    std::fstream f(segments[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(record + 8 + 5));
    f.put('#');
  }
  auto spool = MustOpen(options);
  std::vector<SpoolRecord> records = ReadAll(*spool);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records[0].event.event_id(), ids[0]);
  for (const SpoolRecord& r : records) {
    EXPECT_EQ(r.event.event_id(), ids[r.seq]) << "a record never comes back under another seq";
  }
  // Only the first segment's records after the bad one are lost; later segments are intact.
  const uint64_t per_segment = 4096 / record;
  EXPECT_EQ(records.size(), ids.size() - (per_segment - 1));
  EXPECT_EQ(records.back().event.event_id(), ids.back());
}

TEST(Spool, RollsSegmentsAndDeletesOnlyFullyAcknowledgedOnes) {
  TempDir dir;
  SpoolOptions options = Options(dir.path());
  options.segment_bytes = 4096;
  auto spool = MustOpen(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i)
    ids.push_back(absl::StrFormat("roll-%04d%s", i, std::string(40, 'y')));
  AppendAndFlush(*spool, ids);
  const size_t segments = Segments(dir.path()).size();
  ASSERT_GE(segments, 4u);
  EXPECT_EQ(spool->segments(), segments);
  for (const std::string& path : Segments(dir.path())) {
    EXPECT_LE(fs::file_size(path), 4096u);
  }
  const uint64_t record = 8 + Event(ids[0])->ByteSizeLong();
  const uint64_t per_segment = 4096 / record;

  // One event short of the first segment: nothing may be deleted.
  ASSERT_TRUE(spool->Acknowledge(per_segment - 1).ok());
  EXPECT_EQ(Segments(dir.path()).size(), segments);
  // The whole first segment: exactly it goes.
  ASSERT_TRUE(spool->Acknowledge(per_segment).ok());
  EXPECT_EQ(Segments(dir.path()).size(), segments - 1);
  EXPECT_EQ(Ids(ReadAll(*spool, per_segment)).front(), ids[per_segment]);
  // Everything: only the active segment remains, and bytes drop accordingly.
  const uint64_t before = spool->bytes();
  ASSERT_TRUE(spool->Acknowledge(ids.size()).ok());
  EXPECT_EQ(Segments(dir.path()).size(), 1u);
  EXPECT_LT(spool->bytes(), before);
  spool.reset();
  auto reopened = MustOpen(options);
  EXPECT_TRUE(ReadAll(*reopened, reopened->acked_end()).empty());
}

TEST(Spool, FullPolicyDropCountsDrops) {
  TempDir dir;
  SpoolOptions options = Options(dir.path());
  options.max_bytes = 1000;
  options.full_policy = SpoolFullPolicy::kDrop;
  auto spool = MustOpen(options);
  int dropped = 0;
  for (int i = 0; i < 200; ++i) {
    if (spool->Append(*Event(absl::StrCat("full-", i))) == Spool::AppendResult::kDropped) {
      ++dropped;
    }
    ASSERT_TRUE(spool->Flush(std::chrono::seconds(10)));
  }
  EXPECT_GT(dropped, 0);
  EXPECT_EQ(spool->dropped(), static_cast<uint64_t>(dropped));
  EXPECT_TRUE(spool->Admitting()) << "policy drop never refuses requests";
  EXPECT_LT(spool->bytes(), 1000u + 100u);
  // Acknowledging frees space (once segments roll) and appends are accepted again.
  ASSERT_TRUE(spool->Acknowledge(spool->durable_end()).ok());
}

TEST(Spool, FullPolicyRejectClosesAdmissionButKeepsAdmittedEvents) {
  TempDir dir;
  SpoolOptions options = Options(dir.path());
  options.max_bytes = 1000;
  options.segment_bytes = 4096;
  auto spool = MustOpen(options);
  int i = 0;
  while (spool->Admitting() && i < 1000) {
    ASSERT_EQ(spool->Append(*Event(absl::StrCat("rej-", i++))), Spool::AppendResult::kWritten);
    ASSERT_TRUE(spool->Flush(std::chrono::seconds(10)));
  }
  ASSERT_FALSE(spool->Admitting());
  // An already admitted request's event is still written.
  EXPECT_EQ(spool->Append(*Event("in-flight")), Spool::AppendResult::kWritten);
  ASSERT_TRUE(spool->Flush(std::chrono::seconds(10)));
  EXPECT_EQ(spool->dropped(), 0u);
  EXPECT_EQ(Ids(ReadAll(*spool)).back(), "in-flight");
}

TEST(Spool, AppendReturnsWithTheRecordInTheFile) {
  TempDir dir;
  std::unique_ptr<Spool> spool = MustOpen(Options(dir.path()));
  ASSERT_NE(spool, nullptr);
  auto file_bytes = [&dir] {
    uint64_t bytes = 0;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir.path())) {
      if (entry.path().extension() == ".seg") bytes += entry.file_size();
    }
    return bytes;
  };
  const uint64_t record = 8 + Event("first")->ByteSizeLong();
  ASSERT_EQ(spool->Append(*Event("first")), Spool::AppendResult::kWritten);
  // No thread hand-off: the write() happened before Append returned (a SIGKILL now keeps it).
  EXPECT_EQ(file_bytes(), record);
  ASSERT_EQ(spool->Append(*Event("secnd")), Spool::AppendResult::kWritten);
  EXPECT_EQ(file_bytes(), 2 * record);
}

TEST(Spool, AppendAfterCloseIsDroppedAndCounted) {
  TempDir dir;
  std::unique_ptr<Spool> spool = MustOpen(Options(dir.path()));
  ASSERT_NE(spool, nullptr);
  spool->Close();
  EXPECT_EQ(spool->Append(*Event("late")), Spool::AppendResult::kDropped);
  EXPECT_EQ(spool->dropped(), 1u);
  EXPECT_TRUE(spool->Flush(std::chrono::seconds(1)));
}

TEST(Spool, ConcurrentAppendsAreAllWrittenWhole) {
  TempDir dir;
  SpoolOptions options = Options(dir.path());
  options.segment_bytes = 4096;  // several rolls while threads append
  std::set<std::string> expected;
  {
    std::unique_ptr<Spool> spool = MustOpen(options);
    ASSERT_NE(spool, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&spool, t] {
        for (int i = 0; i < 250; ++i) {
          EXPECT_EQ(spool->Append(*Event(absl::StrCat("t", t, "-", i))),
                    Spool::AppendResult::kWritten);
        }
      });
      for (int i = 0; i < 250; ++i) expected.insert(absl::StrCat("t", t, "-", i));
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_TRUE(spool->Flush(std::chrono::seconds(10)));
    EXPECT_GT(Segments(dir.path()).size(), 2u);
  }
  // Reopened: every record passes its CRC, none is lost or repeated.
  std::unique_ptr<Spool> reopened = MustOpen(options);
  const std::vector<std::string> ids = Ids(ReadAll(*reopened));
  EXPECT_EQ(ids.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), expected);
  EXPECT_EQ(reopened->dropped(), 0u);
}

TEST(Spool, ReaderNeverSkipsRecordsAcrossRolls) {
  TempDir dir;
  SpoolOptions options = Options(dir.path());
  options.segment_bytes = 4096;  // a roll every few dozen records
  std::unique_ptr<Spool> spool = MustOpen(options);
  ASSERT_NE(spool, nullptr);
  constexpr int kEvents = 1500;
  std::thread appender([&spool] {
    for (int i = 0; i < kEvents; ++i) {
      ASSERT_EQ(spool->Append(*Event(absl::StrFormat("ev-%05d", i))),
                Spool::AppendResult::kWritten);
    }
  });
  // The sender's view while rolls happen: every record, in order, none skipped (a full segment
  // must not be passed over before the syncer has published its last records).
  std::vector<std::string> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (seen.size() < static_cast<size_t>(kEvents) &&
         std::chrono::steady_clock::now() < deadline) {
    std::vector<SpoolRecord> records;
    ASSERT_TRUE(spool->Read(seen.size(), 100, &records).ok());
    for (const SpoolRecord& r : records) {
      ASSERT_EQ(r.seq, seen.size());
      seen.push_back(r.event.event_id());
    }
  }
  appender.join();
  ASSERT_EQ(seen.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) EXPECT_EQ(seen[i], absl::StrFormat("ev-%05d", i));
  EXPECT_GT(Segments(dir.path()).size(), 10u);
}

TEST(Spool, ParsesPolicies) {
  EXPECT_EQ(*ParseSpoolFullPolicy("reject"), SpoolFullPolicy::kReject);
  EXPECT_EQ(*ParseSpoolFullPolicy("drop"), SpoolFullPolicy::kDrop);
  EXPECT_FALSE(ParseSpoolFullPolicy("block").ok());
}

}  // namespace
}  // namespace tollgate::gateway
