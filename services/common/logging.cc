#include "services/common/logging.h"

#include <memory>

#include "spdlog/async.h"
#include "spdlog/details/thread_pool.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace tollgate {
namespace {

std::string& ServiceName() {
  static std::string name = "tollgate";
  return name;
}

std::shared_ptr<spdlog::logger> Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    spdlog::init_thread_pool(kLogQueueLines, 1);
    // create_async_nb: a full queue overruns its oldest line instead of blocking the caller.
    auto l = spdlog::create_async_nb<spdlog::sinks::stderr_sink_mt>("tollgate");
    l->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return logger;
}

void Log(spdlog::level::level_enum level, std::string_view msg,
         std::initializer_list<LogField> fields) {
  auto logger = Logger();
  if (!logger->should_log(level)) return;
  std::string line;
  line.reserve(96 + msg.size());
  line += "\"service\":\"";
  AppendJsonEscaped(line, ServiceName());
  line += "\",\"msg\":\"";
  AppendJsonEscaped(line, msg);
  line += '"';
  for (const auto& [key, value] : fields) {
    line += ",\"";
    AppendJsonEscaped(line, key);
    line += "\":\"";
    AppendJsonEscaped(line, value);
    line += '"';
  }
  logger->log(level, "{}", line);
}

}  // namespace

LogQueueStats GetLogQueueStats() {
  Logger();  // the pool exists once the logger does
  LogQueueStats stats;
  if (std::shared_ptr<spdlog::details::thread_pool> pool = spdlog::thread_pool()) {
    stats.depth = pool->queue_size();
    stats.dropped = pool->overrun_counter();
  }
  return stats;
}

void InitLogging(std::string_view service, std::string_view level) {
  ServiceName() = std::string(service);
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") lvl = spdlog::level::info;
  Logger()->set_level(lvl);
}

void LogDebug(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::debug, msg, fields);
}
void LogInfo(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::info, msg, fields);
}
void LogWarn(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::warn, msg, fields);
}
void LogError(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::err, msg, fields);
}

void AppendJsonEscaped(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

}  // namespace tollgate
