#include "src/base/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace cairn::log {
namespace {
std::mutex& Mutex() {
  static std::mutex mutex;
  return mutex;
}
spdlog::level::level_enum& Level() {
  static spdlog::level::level_enum level = spdlog::level::info;
  return level;
}
}  // namespace

std::shared_ptr<spdlog::logger> Get(const std::string& module) {
  std::lock_guard<std::mutex> lock(Mutex());
  if (auto existing = spdlog::get(module)) return existing;
  auto logger = spdlog::stderr_color_mt(module);
  logger->set_level(Level());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%f %^%l%$ [%n] %v");
  return logger;
}

bool SetLevel(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  std::lock_guard<std::mutex> lock(Mutex());
  Level() = parsed;
  spdlog::apply_all([parsed](const std::shared_ptr<spdlog::logger>& l) { l->set_level(parsed); });
  return true;
}

}  // namespace cairn::log
