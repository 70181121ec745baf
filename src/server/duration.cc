#include "src/server/duration.h"

#include <cctype>
#include <utility>

namespace cairn::server {

int64_t ParseDurationMs(const std::string& text) {
  if (text == "0") return 0;
  static const std::pair<const char*, double> kUnits[] = {
      {"ns", 1e-6}, {"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}};
  double total_ms = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t digits_end = at;
    while (digits_end < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits_end])) || text[digits_end] == '.'))
      ++digits_end;
    if (digits_end == at) return -1;
    double number = 0;
    try {
      number = std::stod(text.substr(at, digits_end - at));
    } catch (const std::exception&) {
      return -1;
    }
    size_t unit_end = digits_end;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end])))
      ++unit_end;
    const std::string unit = text.substr(digits_end, unit_end - digits_end);
    bool known = false;
    for (const auto& [name, ms] : kUnits) {
      if (unit == name) {
        total_ms += number * ms;
        known = true;
      }
    }
    if (!known) return -1;
    at = unit_end;
  }
  return at == 0 ? -1 : static_cast<int64_t>(total_ms);
}

}  // namespace cairn::server
