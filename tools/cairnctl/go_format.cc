#include "tools/cairnctl/go_format.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <regex>

namespace cairnctl {
namespace {

int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

// Formats a fraction of `unit` nanoseconds with Go's trailing-zero trimming.
std::string FormatFraction(uint64_t value, uint64_t unit) {
  std::string text = std::to_string(value / unit);
  uint64_t fraction = value % unit;
  if (fraction == 0) return text;
  std::string digits = std::to_string(fraction);
  std::string padded = std::string(std::to_string(unit).size() - 1 - digits.size(), '0') + digits;
  while (!padded.empty() && padded.back() == '0') padded.pop_back();
  return text + "." + padded;
}

void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// Reads `count` digits of `base` from the front of *text into *value.
bool ConsumeDigits(std::string_view* text, size_t count, int base, uint32_t* value) {
  if (text->size() < count) return false;
  *value = 0;
  for (size_t i = 0; i < count; ++i) {
    int digit = DigitValue((*text)[i]);
    if (digit >= base) return false;
    *value = *value * base + digit;
  }
  text->remove_prefix(count);
  return true;
}

// One escape sequence after a backslash (Go's strconv.UnquoteChar).
bool ConsumeEscape(std::string_view* text, std::string* out) {
  if (text->empty()) return false;
  char c = text->front();
  text->remove_prefix(1);
  uint32_t value = 0;
  switch (c) {
    case 'a':
      out->push_back('\a');
      return true;
    case 'b':
      out->push_back('\b');
      return true;
    case 'f':
      out->push_back('\f');
      return true;
    case 'n':
      out->push_back('\n');
      return true;
    case 'r':
      out->push_back('\r');
      return true;
    case 't':
      out->push_back('\t');
      return true;
    case 'v':
      out->push_back('\v');
      return true;
    case '\\':
      out->push_back('\\');
      return true;
    case '"':
      out->push_back('"');
      return true;
    case 'x':
      if (!ConsumeDigits(text, 2, 16, &value)) return false;
      out->push_back(static_cast<char>(value));
      return true;
    case 'u':
    case 'U':
      if (!ConsumeDigits(text, c == 'u' ? 4 : 8, 16, &value) || value > 0x10FFFF) return false;
      AppendUtf8(value, out);
      return true;
    default: {
      // Octal: exactly three digits, at most \377.
      uint32_t low_digits = 0;
      if (c < '0' || c > '7' || !ConsumeDigits(text, 2, 8, &low_digits)) return false;
      value = static_cast<uint32_t>(c - '0') * 64 + low_digits;
      if (value > 255) return false;
      out->push_back(static_cast<char>(value));
      return true;
    }
  }
}

}  // namespace

std::optional<uint64_t> ParseGoUint(std::string_view text, int base, std::string* error) {
  const std::string prefix = "strconv.ParseUint: parsing " + GoQuote(text) + ": ";
  if (text.empty()) {
    *error = prefix + "invalid syntax";
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    const int digit = DigitValue(c);
    if (digit >= base) {
      *error = prefix + "invalid syntax";
      return std::nullopt;
    }
    // Go stops at the first digit that overflows, before looking at the rest.
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / base) {
      *error = prefix + "value out of range";
      return std::nullopt;
    }
    value = value * base + digit;
  }
  return value;
}

std::optional<int64_t> ParseGoInt(std::string_view text, int base, std::string* error) {
  std::string prefix = "strconv.ParseInt: parsing " + GoQuote(text) + ": ";
  std::string_view digits = text;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) {
    *error = prefix + "invalid syntax";
    return std::nullopt;
  }
  uint64_t magnitude = 0;
  bool overflow = false;
  for (char c : digits) {
    int digit = DigitValue(c);
    if (digit >= base) {
      *error = prefix + "invalid syntax";
      return std::nullopt;
    }
    if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / base) overflow = true;
    magnitude = magnitude * base + digit;
  }
  uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (overflow || magnitude > limit) {
    *error = prefix + "value out of range";
    return std::nullopt;
  }
  return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

std::string GoQuote(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c >= 0x20 && c < 0x7F) {
          out.push_back(static_cast<char>(c));
        } else {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
          out += escaped;
        }
    }
  }
  return out + "\"";
}

std::string GoDurationString(int64_t nanoseconds) {
  if (nanoseconds == 0) return "0s";
  bool negative = nanoseconds < 0;
  uint64_t value = negative ? 0 - static_cast<uint64_t>(nanoseconds) : nanoseconds;
  std::string sign = negative ? "-" : "";
  if (value < 1000) return sign + std::to_string(value) + "ns";
  if (value < 1000000) return sign + FormatFraction(value, 1000) + "µs";
  if (value < 1000000000) return sign + FormatFraction(value, 1000000) + "ms";
  uint64_t hours = value / 3600000000000ULL;
  value %= 3600000000000ULL;
  uint64_t minutes = value / 60000000000ULL;
  value %= 60000000000ULL;
  std::string seconds = FormatFraction(value, 1000000000) + "s";
  if (hours > 0)
    return sign + std::to_string(hours) + "h" + std::to_string(minutes) + "m" + seconds;
  if (minutes > 0) return sign + std::to_string(minutes) + "m" + seconds;
  return sign + seconds;
}

std::string HumanizeBytes(uint64_t size_bytes) {
  static const char* const kSizes[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  if (size_bytes < 10) return std::to_string(size_bytes) + " B";
  double exponent = std::floor(std::log(static_cast<double>(size_bytes)) / std::log(1000.0));
  double value =
      std::floor(static_cast<double>(size_bytes) / std::pow(1000.0, exponent) * 10 + 0.5) / 10;
  char text[64];
  std::snprintf(text, sizeof(text), value < 10 ? "%.1f %s" : "%.0f %s", value,
                kSizes[static_cast<int>(exponent)]);
  return text;
}

std::optional<std::string> ConsumeGoQuoted(std::string_view* text) {
  if (text->empty()) return std::nullopt;
  std::string_view rest = *text;
  char quote = rest.front();
  rest.remove_prefix(1);
  std::string out;
  if (quote == '`') {
    size_t end = rest.find('`');
    if (end == std::string_view::npos) return std::nullopt;
    out = std::string(rest.substr(0, end));
    *text = rest.substr(end + 1);
    return out;
  }
  if (quote != '"') return std::nullopt;
  while (!rest.empty()) {
    char c = rest.front();
    rest.remove_prefix(1);
    if (c == '"') {
      *text = rest;
      return out;
    }
    if (c == '\n') return std::nullopt;
    if (c != '\\') {
      out.push_back(c);
    } else if (!ConsumeEscape(&rest, &out)) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<std::vector<std::string>> Argify(std::string_view line) {
  static const std::regex kWord(R"RE("(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?)RE");
  std::vector<std::string> words;
  std::string input(line);
  for (auto it = std::sregex_iterator(input.begin(), input.end(), kWord);
       it != std::sregex_iterator(); ++it) {
    std::string word = it->str();
    if (!word.empty() && word.front() == '\'') {
      word = word.size() >= 2 ? word.substr(1, word.size() - 2) : "";
    } else if (!word.empty() && word.front() == '"') {
      std::string_view view = word;
      auto unquoted = ConsumeGoQuoted(&view);
      if (!unquoted) return std::nullopt;
      word = *unquoted;
    }
    words.push_back(std::move(word));
  }
  return words;
}

std::string HexNoPad(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "%llx", static_cast<unsigned long long>(value));
  return text;
}

std::string Hex16(int64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string HexSpacePadded16(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "%16llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace cairnctl

namespace cairnctl {

std::optional<int64_t> ParseGoDurationNanoseconds(std::string_view text) {
  static const std::pair<std::string_view, double> kUnits[] = {
      {"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
  if (text == "0") return 0;
  if (text.empty()) return std::nullopt;
  double total = 0;
  while (!text.empty()) {
    size_t number_end = 0;
    while (number_end < text.size() &&
           ((text[number_end] >= '0' && text[number_end] <= '9') || text[number_end] == '.')) {
      ++number_end;
    }
    if (number_end == 0) return std::nullopt;
    double number = std::stod(std::string(text.substr(0, number_end)));
    text.remove_prefix(number_end);
    size_t unit_end = 0;
    while (unit_end < text.size() && !(text[unit_end] >= '0' && text[unit_end] <= '9')) {
      ++unit_end;
    }
    std::string_view unit = text.substr(0, unit_end);
    text.remove_prefix(unit_end);
    bool known = false;
    for (const auto& [name, scale] : kUnits) {
      if (unit == name) {
        total += number * scale;
        known = true;
      }
    }
    if (!known) return std::nullopt;
  }
  return static_cast<int64_t>(total);
}

}  // namespace cairnctl
