// Go's text formats that etcdctl's output and error messages are made of, so that cairnctl
// prints the same bytes: strconv.ParseInt errors, time.Duration.String, go-humanize's
// Bytes, fmt's %q scanning and etcdctl's Argify tokenizer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cairnctl {

// strconv.ParseInt(text, base, 64). On failure returns nullopt and sets *error to Go's
// message, e.g. `strconv.ParseInt: parsing "abc": invalid syntax`.
std::optional<int64_t> ParseGoInt(std::string_view text, int base, std::string* error);

// strconv.ParseUint(text, base, 64), with Go's messages, e.g.
// `strconv.ParseUint: parsing "zz": invalid syntax`.
std::optional<uint64_t> ParseGoUint(std::string_view text, int base, std::string* error);

// strconv.Quote (ASCII subset: printable bytes as is, the rest escaped).
std::string GoQuote(std::string_view text);

// time.Duration.String(), e.g. "3.840847ms", "1.5s", "2m0s".
std::string GoDurationString(int64_t nanoseconds);

// humanize.Bytes: SI units, e.g. 24576 -> "25 kB".
std::string HumanizeBytes(uint64_t size_bytes);

// Reads one Go quoted string ("..." with escapes, or `...`) at the start of *text and
// advances past it. Returns nullopt when *text does not start with a valid one.
std::optional<std::string> ConsumeGoQuoted(std::string_view* text);

// etcdctl's Argify: splits a line into words; "double" quoted words are unquoted with Go's
// rules, 'single' quoted words lose their quotes. Returns nullopt on a bad double quote.
std::optional<std::vector<std::string>> Argify(std::string_view line);

// Lower-case hex without leading zeros (Go's %x of an unsigned integer).
std::string HexNoPad(uint64_t value);

// Zero-padded 16-digit hex (Go's %016x), as etcdctl prints lease ids.
std::string Hex16(int64_t value);

// Space-padded 16-column hex (Go's %16x), as etcdctl prints member and cluster ids.
std::string HexSpacePadded16(uint64_t value);

}  // namespace cairnctl

namespace cairnctl {

// time.ParseDuration for the forms etcdctl's flags take ("5s", "500ms", "1m30s", "1.5s").
std::optional<int64_t> ParseGoDurationNanoseconds(std::string_view text);

}  // namespace cairnctl
