// CRC-32C (Castagnoli), as used by iSCSI, ext4 and RocksDB. Uses the SSE4.2 crc32
// instruction when the CPU has it (checked once at startup) and a table-driven portable
// implementation otherwise; both are tested against the RFC 3720 vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cairn::crc32c {

// Returns the crc32c of data[0, n) continuing from `crc` (the crc of preceding bytes).
uint32_t Extend(uint32_t crc, const char* data, size_t n);
inline uint32_t Value(const char* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

// The portable implementation, exposed so tests can compare both paths.
uint32_t ExtendPortable(uint32_t crc, const char* data, size_t n);
// True when Extend uses the hardware instruction.
bool HardwareAccelerated();

// Stored CRCs are masked (as LevelDB does) so that a CRC over data that itself contains
// CRCs does not degenerate.
inline constexpr uint32_t kMaskDelta = 0xa282ead8u;
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace cairn::crc32c
