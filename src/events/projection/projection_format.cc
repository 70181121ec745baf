#include "src/events/projection/projection_format.h"

namespace cairn::events::projection::format {

std::string DefinitionKey(std::string_view name) { return DefinitionPrefix() + std::string(name); }

std::string DefinitionPrefix() { return std::string{kDefinitionTag, 'p'}; }

std::string UpcasterKey(std::string_view event_type, uint32_t from_schema_version) {
  std::string key = UpcasterPrefix();
  key.append(event_type);
  key.push_back('\0');
  for (int shift = 24; shift >= 0; shift -= 8) {
    key.push_back(static_cast<char>((from_schema_version >> shift) & 0xff));
  }
  return key;
}

std::string UpcasterPrefix() { return std::string{kDefinitionTag, 'u'}; }

bool DecodeUpcasterKey(std::string_view key, std::string* event_type, uint32_t* from_version) {
  const std::string prefix = UpcasterPrefix();
  if (key.size() < prefix.size() + 5 || key.substr(0, prefix.size()) != prefix) return false;
  if (key[key.size() - 5] != '\0') return false;
  *event_type = std::string(key.substr(prefix.size(), key.size() - 5 - prefix.size()));
  uint32_t version = 0;
  for (size_t i = key.size() - 4; i < key.size(); ++i) {
    version = (version << 8) | static_cast<unsigned char>(key[i]);
  }
  *from_version = version;
  return true;
}

std::string GenerationKey() { return std::string{kDefinitionTag, 'g'}; }

std::string RunnerPrefix(std::string_view name) {
  std::string key(1, kRunnerTag);
  key.append(name);
  key.push_back('\0');
  return key;
}

std::string RunnerPrefixEnd(std::string_view name) {
  std::string key(1, kRunnerTag);
  key.append(name);
  key.push_back('\1');
  return key;
}

std::string ProgressKey(std::string_view name) { return RunnerPrefix(name) + "s"; }

std::string StateKey(std::string_view name, std::string_view partition) {
  return RunnerPrefix(name) + "p" + std::string(partition);
}

bool DecodeRunnerName(std::string_view key, std::string* name) {
  if (key.empty() || key[0] != kRunnerTag) return false;
  const size_t end = key.find('\0');
  if (end == std::string_view::npos) return false;
  *name = std::string(key.substr(1, end - 1));
  return true;
}

}  // namespace cairn::events::projection::format
