#include "src/base/status.h"

#include <gtest/gtest.h>

#include "src/base/result.h"

namespace cairn {
namespace {

TEST(StatusTest, OkIsEmptyAndCheap) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = Status::OutOfRange("etcdserver: mvcc: required revision has been compacted");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.Is(StatusCode::kOutOfRange));
  EXPECT_EQ(s.message(), "etcdserver: mvcc: required revision has been compacted");
  EXPECT_EQ(s.ToString(), "OutOfRange: etcdserver: mvcc: required revision has been compacted");
  Status copy = s;
  EXPECT_EQ(copy, s);
  EXPECT_EQ(s.WithContext("segment 3").message(),
            "segment 3: etcdserver: mvcc: required revision has been compacted");
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  CAIRN_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(ResultTest, ValueOrError) {
  Result<int> r = Half(4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 2);
  Result<int> e = Half(3);
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "odd");
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  EXPECT_EQ(UseHalf(7, &out).code(), StatusCode::kInvalidArgument);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> e = Half(3);
  EXPECT_DEATH((void)e.value(), "CAIRN_CHECK failed");
}

}  // namespace
}  // namespace cairn
