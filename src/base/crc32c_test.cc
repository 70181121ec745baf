#include "src/base/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace cairn::crc32c {
namespace {

// Vectors from RFC 3720, appendix B.4.
TEST(Crc32cTest, Rfc3720Vectors) {
  std::string zeros(32, '\0');
  std::string ones(32, '\xff');
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  for (auto fn : {&Extend, &ExtendPortable}) {
    EXPECT_EQ(fn(0, zeros.data(), zeros.size()), 0x8a9136aau);
    EXPECT_EQ(fn(0, ones.data(), ones.size()), 0x62a8ab43u);
    EXPECT_EQ(fn(0, ascending.data(), ascending.size()), 0x46dd794eu);
    EXPECT_EQ(fn(0, descending.data(), descending.size()), 0x113fdb5cu);
    EXPECT_EQ(fn(0, "123456789", 9), 0xe3069283u);
  }
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  std::string data = "hello world, this is a crc32c continuation test of some length";
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t a = Extend(Extend(0, data.data(), split), data.data() + split, data.size() - split);
    EXPECT_EQ(a, Value(data));
    EXPECT_EQ(ExtendPortable(0, data.data(), data.size()), Value(data));
  }
}

TEST(Crc32cTest, MaskRoundTripAndDiffers) {
  uint32_t crc = Value("foo");
  EXPECT_NE(Mask(crc), crc);
  EXPECT_NE(Mask(Mask(crc)), crc);
  EXPECT_EQ(Unmask(Mask(crc)), crc);
  EXPECT_EQ(Unmask(Unmask(Mask(Mask(crc)))), crc);
}

}  // namespace
}  // namespace cairn::crc32c
