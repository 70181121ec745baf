#include "src/base/coding.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <limits>

namespace cairn::coding {
namespace {

TEST(CodingTest, FixedRoundTrip) {
  std::string s;
  PutFixed32(&s, 0xdeadbeef);
  PutFixed64(&s, 0x0123456789abcdefull);
  ASSERT_EQ(s.size(), 12u);
  EXPECT_EQ(static_cast<uint8_t>(s[0]), 0xef);  // little-endian
  EXPECT_EQ(DecodeFixed32(s.data()), 0xdeadbeefu);
  EXPECT_EQ(DecodeFixed64(s.data() + 4), 0x0123456789abcdefull);
}

TEST(CodingTest, BigEndianOrderMatchesNumericOrder) {
  std::string a, b;
  PutBigEndian64(&a, 255);
  PutBigEndian64(&b, 256);
  EXPECT_LT(a, b);
  EXPECT_EQ(DecodeBigEndian64(b.data()), 256u);
}

RC_GTEST_PROP(CodingProperty, BigEndianPreservesOrder, (uint64_t x, uint64_t y)) {
  std::string a, b;
  PutBigEndian64(&a, x);
  PutBigEndian64(&b, y);
  RC_ASSERT((x < y) == (a < b));
  RC_ASSERT(DecodeBigEndian64(a.data()) == x);
}

RC_GTEST_PROP(CodingProperty, VarintRoundTrip, (uint64_t x, int64_t y)) {
  std::string s;
  PutVarint64(&s, x);
  PutVarint64(&s, ZigZagEncode(y));
  std::string_view in(s);
  uint64_t a = 0, b = 0;
  RC_ASSERT(GetVarint64(&in, &a));
  RC_ASSERT(GetVarint64(&in, &b));
  RC_ASSERT(in.empty());
  RC_ASSERT(a == x);
  RC_ASSERT(ZigZagDecode(b) == y);
}

TEST(CodingTest, VarintRejectsTruncatedAndOverlong) {
  std::string s;
  PutVarint64(&s, std::numeric_limits<uint64_t>::max());
  ASSERT_EQ(s.size(), 10u);
  for (size_t n = 0; n < s.size(); ++n) {
    std::string_view in(s.data(), n);
    uint64_t v;
    EXPECT_FALSE(GetVarint64(&in, &v)) << n;
  }
  std::string overlong(10, '\xff');
  overlong.push_back('\x01');
  std::string_view in(overlong);
  uint64_t v;
  EXPECT_FALSE(GetVarint64(&in, &v));
}

TEST(CodingTest, LengthPrefixedRejectsShortInput) {
  std::string s;
  PutLengthPrefixed(&s, "hello");
  std::string_view in(s.data(), s.size() - 1);
  std::string_view out;
  EXPECT_FALSE(GetLengthPrefixed(&in, &out));
  in = s;
  ASSERT_TRUE(GetLengthPrefixed(&in, &out));
  EXPECT_EQ(out, "hello");
}

}  // namespace
}  // namespace cairn::coding
