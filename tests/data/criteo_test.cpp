#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tandem/data/criteo.h"

using namespace tandem::data;

namespace {

std::string make_line(const std::string& label = "1") {
  std::string s = label;
  for (int i = 0; i < kNumDense; ++i) s += "\t" + std::to_string(i);
  for (int i = 0; i < kNumCategorical; ++i) s += "\t" + std::string("a1b2c3d") + char('0' + i % 10);
  return s;
}

struct Parsed {
  float dense[kNumDense];
  int64_t sparse[kNumCategorical];
  float label;
  std::string why;
  bool ok;
};

Parsed parse(const std::string& line,
             std::vector<int64_t> rows = std::vector<int64_t>(kNumCategorical, 100)) {
  Parsed p;
  p.ok = parse_line(line, rows, p.dense, p.sparse, &p.label, &p.why);
  return p;
}

TEST(Criteo, ParsesAWellFormedLine) {
  const Parsed p = parse(make_line());
  ASSERT_TRUE(p.ok) << p.why;
  EXPECT_EQ(p.label, 1.0f);
  for (int i = 0; i < kNumDense; ++i)
    EXPECT_FLOAT_EQ(p.dense[i], std::log1p(static_cast<float>(i)));
  for (int i = 0; i < kNumCategorical; ++i) {
    EXPECT_GE(p.sparse[i], 1);
    EXPECT_LT(p.sparse[i], 100);
  }
}

TEST(Criteo, EmptyFieldsAreMissing) {
  std::string s = "0";
  for (int i = 0; i < kNumDense + kNumCategorical; ++i) s += "\t";
  const Parsed p = parse(s);
  ASSERT_TRUE(p.ok) << p.why;
  for (float d : p.dense) EXPECT_TRUE(std::isnan(d));  // counted as missing by statistics
  for (int64_t c : p.sparse) EXPECT_EQ(c, 0);            // row 0 is the missing value
}

TEST(Criteo, NegativeCountsClampToZeroAndCrlfIsIgnored) {
  std::string s = make_line("0");
  s.replace(2, 1, "-5");  // I1 = -5
  const Parsed p = parse(s + "\r");
  ASSERT_TRUE(p.ok) << p.why;
  EXPECT_EQ(p.dense[0], 0.0f);
  EXPECT_EQ(p.label, 0.0f);
}

TEST(Criteo, ReportsMalformedLines) {
  EXPECT_NE(parse("1\t2\t3").why.find("expected 40 tab-separated fields, found 3"),
            std::string::npos);
  EXPECT_NE(parse(make_line() + "\textra").why.find("found 41"), std::string::npos);
  EXPECT_NE(parse(make_line("2")).why.find("label '2'"), std::string::npos);
  std::string bad_int = make_line();
  bad_int.replace(2, 1, "x7");
  EXPECT_NE(parse(bad_int).why.find("field I1 'x7' is not an integer"), std::string::npos);
  std::string bad_hex = make_line();
  bad_hex.replace(bad_hex.rfind('\t') + 1, std::string::npos, "zz");
  EXPECT_NE(parse(bad_hex).why.find("field C26 'zz' is not hexadecimal"), std::string::npos);
  EXPECT_FALSE(parse("").ok);
}

TEST(Criteo, VeryLongLinesAreMalformedNotFatal) {
  std::string s = make_line();
  s.replace(2, 1, std::string(1 << 20, '9'));  // an integer far beyond int64
  const Parsed p = parse(s);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.why.find("is not an integer"), std::string::npos);
  EXPECT_LT(p.why.size(), 200u);  // the message quotes only a prefix
}

TEST(Criteo, HashStaysInRangeAndIsStable) {
  for (uint64_t v = 0; v < 10000; ++v) {
    const int64_t h = hash_category(3, v, 7);
    EXPECT_GE(h, 1);
    EXPECT_LT(h, 7);
  }
  EXPECT_EQ(hash_category(0, 0xdeadbeef, 1000), hash_category(0, 0xdeadbeef, 1000));
  EXPECT_EQ(hash_category(5, 42, 2), 1);  // two rows: missing and everything else
}

}  // namespace
