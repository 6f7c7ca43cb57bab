// Column schemas (data/schema.h): Criteo's as the default path, delimited files
// with and without a header, each transform and encoding, binding errors that name
// the column, and a header-file dataset read through the loader.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/generator.h"
#include "tandem/data/loader.h"
#include "tandem/data/schema.h"
#include "tandem/util/error.h"

using namespace tandem::data;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name, const std::string& text) {
  const auto dir = fs::temp_directory_path() / ("tandem-schema-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// label,age,income,city,tags,id: the delimited spec most tests use.
SchemaSpec csv_spec() {
  SchemaSpec s;
  s.format = "delimited";
  s.header = true;
  s.label = "label";
  s.dense = "age:none, income:log1p, score:clip:-1:2";
  s.categorical = "city, id:hex";
  s.ignore = "note";
  return s;
}
const char* kHeader = "label,age,income,city,score,id,note";

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Schema, FnvOfTheBytes) {
  // FNV-1a 64's published test vectors.
  EXPECT_EQ(hash_bytes(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(hash_bytes("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(hash_bytes("foobar"), 0x85944171f73967e8ULL);
}

TEST(Schema, CriteoIsTheFastPathBitForBit) {
  const auto s = Schema::criteo();
  EXPECT_TRUE(s->is_criteo());
  ASSERT_EQ(s->num_dense(), kNumDense);
  ASSERT_EQ(s->num_categorical(), kNumCategorical);
  EXPECT_EQ(s->dense_name(12), "I13");
  EXPECT_EQ(s->categorical_name(0), "C1");
  GenerateOptions o;
  o.rows = 50;
  o.seed = 3;
  o.out = tmp("criteo.tsv", "");
  o.cardinalities = {50};
  generate(o);
  const std::string path = o.out;
  std::ifstream in(path);
  const std::vector<int64_t> rows(kNumCategorical, 1000);
  for (std::string line; std::getline(in, line);) {
    float d1[kNumDense], d2[kNumDense], l1 = 0, l2 = 0;
    int64_t s1[kNumCategorical], s2[kNumCategorical];
    std::string w1, w2;
    uint32_t n1 = 0;
    uint64_t n2 = 0;
    ASSERT_TRUE(parse_line(line, rows, d1, s1, &l1, &w1, &n1));
    ASSERT_TRUE(s->parse(line, rows, d2, s2, &l2, &w2, &n2));
    EXPECT_EQ(0, std::memcmp(d1, d2, sizeof d1));  // NaN included
    EXPECT_EQ(0, std::memcmp(s1, s2, sizeof s1));
    EXPECT_EQ(l1, l2);
    EXPECT_EQ(n1, n2);
  }
}

TEST(Schema, AnExplicitCriteoSchemaParsesTheSameValues) {
  SchemaSpec spec;
  spec.format = "delimited";
  spec.delimiter = "tab";
  spec.columns = kNumFields;
  spec.label = "1";
  for (int i = 0; i < kNumDense; ++i) spec.dense += std::to_string(2 + i) + ",";
  for (int i = 0; i < kNumCategorical; ++i)
    spec.categorical += std::to_string(2 + kNumDense + i) + ":hex,";
  const auto s = Schema::from_spec(spec)->bind();
  EXPECT_EQ(s->dense_name(0), "column 2");
  const std::vector<int64_t> rows(kNumCategorical, 977);
  const std::string line =
      "1\t5\t\t-3\t0\t1\t2\t3\t4\t5\t6\t7\t8\t123456\tab\t\tff\tdeadbeef\t1\t2\t3\t4\t5\t6\t7\t8\t"
      "9\ta\tb\tc\td\te\tf\t10\t11\t12\t13\t14\t15\t16";
  float d1[kNumDense], d2[kNumDense], l1 = 0, l2 = 0;
  int64_t s1[kNumCategorical], s2[kNumCategorical];
  std::string why;
  uint32_t n1 = 0;
  uint64_t n2 = 0;
  ASSERT_TRUE(parse_line(line, rows, d1, s1, &l1, &why, &n1)) << why;
  ASSERT_TRUE(s->parse(line, rows, d2, s2, &l2, &why, &n2)) << why;
  EXPECT_EQ(0, std::memcmp(d1, d2, sizeof d1));
  EXPECT_EQ(0, std::memcmp(s1, s2, sizeof s1));
  EXPECT_EQ(n1, n2);
  EXPECT_EQ(n2, 1u << 2);  // I3 = -3
}

TEST(Schema, DelimitedValuesTransformsAndEncodings) {
  const auto s = Schema::from_spec(csv_spec())->bind(kHeader, "f.csv");
  ASSERT_EQ(s->num_dense(), 3);
  ASSERT_EQ(s->num_categorical(), 2);
  EXPECT_EQ(s->dense_name(1), "income");
  EXPECT_EQ(s->categorical_name(1), "id");
  const std::vector<int64_t> rows{1000, 50};
  float dense[3], label = -1;
  int64_t sparse[2];
  std::string why;
  uint64_t negative = 0;
  ASSERT_TRUE(
      s->parse("1,-2.5,1e3,Paris,7.5,ff,whatever\r", rows, dense, sparse, &label, &why, &negative))
      << why;
  EXPECT_EQ(label, 1.0f);
  EXPECT_EQ(dense[0], -2.5f);                                         // none
  EXPECT_EQ(dense[1], static_cast<float>(std::log1p(1000.0)));        // log1p
  EXPECT_EQ(dense[2], 2.0f);                                          // clipped to [-1, 2]
  EXPECT_EQ(sparse[0], hash_category(0, hash_bytes("Paris"), 1000));  // hashed bytes
  EXPECT_EQ(sparse[1], hash_category(1, 0xff, 50));                   // hex
  EXPECT_EQ(negative, 0u);
  // Missing values: NaN and row 0; a negative under log1p is flagged and read as 0.
  ASSERT_TRUE(s->parse("0,,-4,,-9,,", rows, dense, sparse, &label, &why, &negative)) << why;
  EXPECT_TRUE(std::isnan(dense[0]));
  EXPECT_EQ(dense[1], 0.0f);
  EXPECT_EQ(dense[2], -1.0f);
  EXPECT_EQ(sparse[0], 0);
  EXPECT_EQ(sparse[1], 0);
  EXPECT_EQ(negative, 2u);
  // Strings that look like numbers are still strings when hashed.
  ASSERT_TRUE(s->parse("0,1,1,10,1,a,x", rows, dense, sparse, &label, &why, nullptr));
  EXPECT_EQ(sparse[0], hash_category(0, hash_bytes("10"), 1000));
}

TEST(Schema, MalformedLinesNameTheColumn) {
  const auto s = Schema::from_spec(csv_spec())->bind(kHeader, "f.csv");
  const std::vector<int64_t> rows{1000, 50};
  float dense[3], label;
  int64_t sparse[2];
  const auto why = [&](const std::string& line) {
    std::string w;
    EXPECT_FALSE(s->parse(line, rows, dense, sparse, &label, &w, nullptr)) << line;
    return w;
  };
  EXPECT_EQ(why("1,2,3,x,4,ff"), "expected 7 fields separated by ',', found 6");
  EXPECT_EQ(why("1,2,3,x,4,ff,n,extra"), "expected 7 fields separated by ',', found 8");
  EXPECT_EQ(why("yes,2,3,x,4,ff,n"), "label 'yes' is not 0 or 1");
  EXPECT_EQ(why("1,2x,3,x,4,ff,n"), "field age '2x' is not a finite number");
  EXPECT_EQ(why("1,2,inf,x,4,ff,n"), "field income 'inf' is not a finite number");
  EXPECT_EQ(why("1,2,nan,x,4,ff,n"), "field income 'nan' is not a finite number");
  EXPECT_EQ(why("1,4e38,3,x,4,ff,n"), "field age '4e38' is beyond float32's range (3.4e38)");
  EXPECT_EQ(why("1,2,3,x,4,Paris,n"), "field id 'Paris' is not hexadecimal");
  EXPECT_EQ(why("1,2,3,x,4,12345678901234567,n"),
            "field id '12345678901234567' is not hexadecimal");
}

TEST(Schema, MultiHotFieldsFillTheirSlots) {
  // city is one id; tags up to 3 hashed ids split at '|', summed; codes up to 2 hex
  // ids split at ';', averaged. Slots: city 0, tags 1-3, codes 4-5.
  SchemaSpec spec = csv_spec();
  spec.dense = "age";
  spec.categorical = "city, tags:sep=pipe:max=3, codes:hex:sep=;:max=2:mean";
  spec.ignore = "";
  const auto s = Schema::from_spec(spec)->bind("label,age,city,tags,codes", "f.csv");
  ASSERT_EQ(s->num_categorical(), 3);
  ASSERT_EQ(s->num_slots(), 6);
  EXPECT_TRUE(s->multi_hot());
  EXPECT_FALSE(Schema::criteo()->multi_hot());
  EXPECT_EQ(s->slot_columns(), (std::vector<int64_t>{0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(s->categorical()[1].slot, 1);
  EXPECT_EQ(s->categorical()[2].slot, 4);
  EXPECT_TRUE(s->categorical()[2].mean);
  EXPECT_FALSE(s->categorical()[1].mean);
  const std::vector<int64_t> rows{100, 1000, 50};
  float dense[1], label;
  int64_t sparse[6];
  std::string why;
  const auto tag = [](const char* t) { return hash_category(1, hash_bytes(t), 1000); };
  ASSERT_TRUE(s->parse("1,3,Oslo,a|b|a,ff;1", rows, dense, sparse, &label, &why, nullptr)) << why;
  EXPECT_EQ(sparse[0], hash_category(0, hash_bytes("Oslo"), 100));
  EXPECT_EQ(sparse[1], tag("a"));  // a repeated id stays: it counts twice
  EXPECT_EQ(sparse[2], tag("b"));
  EXPECT_EQ(sparse[3], tag("a"));
  EXPECT_EQ(sparse[4], hash_category(2, 0xff, 50));
  EXPECT_EQ(sparse[5], hash_category(2, 0x1, 50));
  // Fewer ids: the rest of the slots hold no id; an empty list holds none at all,
  // where an empty single field is row 0.
  ASSERT_TRUE(s->parse("0,3,,b,", rows, dense, sparse, &label, &why, nullptr)) << why;
  EXPECT_EQ(sparse[0], 0);
  EXPECT_EQ(sparse[1], tag("b"));
  EXPECT_EQ(sparse[2], Schema::kNoId);
  EXPECT_EQ(sparse[3], Schema::kNoId);
  EXPECT_EQ(sparse[4], Schema::kNoId);
  EXPECT_EQ(sparse[5], Schema::kNoId);
  const auto bad = [&](const std::string& line) {
    std::string w;
    EXPECT_FALSE(s->parse(line, rows, dense, sparse, &label, &w, nullptr)) << line;
    return w;
  };
  EXPECT_EQ(bad("1,3,x,a|b|c|d,1"), "field tags has more than its max=3 ids");
  EXPECT_EQ(bad("1,3,x,a||b,1"), "field tags 'a||b' has an empty id (id 2)");
  EXPECT_EQ(bad("1,3,x,a|,1"), "field tags 'a|' has an empty id (id 2)");
  EXPECT_EQ(bad("1,3,x,|a,1"), "field tags '|a' has an empty id (id 1)");
  EXPECT_EQ(bad("1,3,x,a,1;zz"), "field codes 'zz' is not hexadecimal");
}

TEST(Schema, BindingNamesTheColumn) {
  const auto spec = Schema::from_spec(csv_spec());
  EXPECT_EQ(error_of([&] { spec->bind("label,age,income,town,score,id,note", "f.csv"); }),
            "f.csv: schema.categorical: column 'city' is not in the header line");
  EXPECT_EQ(error_of([&] { spec->bind("label,age,income,city,score,id,note,extra", "f.csv"); }),
            "f.csv: column 8 'extra' has no role: name it in schema.dense, schema.categorical "
            "or schema.ignore");
  EXPECT_EQ(error_of([&] { spec->bind("label,age,age,city,score,id,note", "f.csv"); }),
            "f.csv: schema.dense: the header names column 'age' twice");
  SchemaSpec twice = csv_spec();
  twice.categorical = "city, age";
  EXPECT_EQ(error_of([&] { Schema::from_spec(twice)->bind(kHeader, "f.csv"); }),
            "f.csv: schema.categorical: column 'age' is already in schema.dense");
  SchemaSpec count = csv_spec();
  count.columns = 6;
  EXPECT_EQ(error_of([&] { Schema::from_spec(count)->bind(kHeader, "f.csv"); }),
            "f.csv: the header line has 7 columns, schema.columns says 6");
  // Without a header: positions only, within schema.columns.
  SchemaSpec plain;
  plain.format = "delimited";
  plain.columns = 3;
  plain.label = "1";
  plain.dense = "2";
  plain.categorical = "4";
  EXPECT_EQ(error_of([&] { Schema::from_spec(plain)->bind(); }),
            "schema.categorical: column 4 is past the last column (3)");
  plain.categorical = "city";
  EXPECT_EQ(error_of([&] { Schema::from_spec(plain)->bind(); }),
            "schema.categorical: 'city' is not a column position (1-3); names need "
            "schema.header=true");
  plain.categorical = "3";
  const auto bound = Schema::from_spec(plain)->bind();
  EXPECT_EQ(bound->categorical_name(0), "column 3");
}

TEST(Schema, SpecErrorsNameTheKey) {
  const auto with = [](auto change) {
    SchemaSpec s = csv_spec();
    change(s);
    return error_of([&] { Schema::from_spec(s); });
  };
  EXPECT_EQ(with([](SchemaSpec& s) { s.format = "parquet"; }),
            "schema.format: 'parquet' is not criteo or delimited");
  EXPECT_EQ(with([](SchemaSpec& s) { s.format = "criteo"; }),
            "schema.format: criteo takes no other schema.* keys (set schema.format=delimited to "
            "describe the columns)");
  EXPECT_EQ(with([](SchemaSpec& s) { s.delimiter = "::"; }),
            "schema.delimiter: '::' is not one character (or tab, comma, space, semicolon, pipe)");
  EXPECT_EQ(with([](SchemaSpec& s) { s.dense = "age:sqrt"; }),
            "schema.dense: 'age:sqrt': 'sqrt' is not log1p, none or clip:LO:HI");
  EXPECT_EQ(with([](SchemaSpec& s) { s.dense = "age:clip:1"; }),
            "schema.dense: 'age:clip:1' is not COLUMN, COLUMN:log1p, COLUMN:none or "
            "COLUMN:clip:LO:HI");
  EXPECT_EQ(with([](SchemaSpec& s) { s.dense = "age:clip:3:1"; }),
            "schema.dense: 'age:clip:3:1': the lower bound is above the upper");
  EXPECT_EQ(with([](SchemaSpec& s) { s.dense = "age:clip:a:1"; }),
            "schema.dense: 'age:clip:a:1': 'a' is not a number");
  const std::string form = " (COLUMN[:hash|hex][:sep=C:max=N[:sum|mean]])";
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:md5"; }),
            "schema.categorical: 'city:md5': 'md5' is not an option" + form);
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:sep=|"; }),
            "schema.categorical: 'city:sep=|': a multi-hot field (sep=) needs max=, the most "
            "ids in one field" +
                form);
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:max=3"; }),
            "schema.categorical: 'city:max=3': max= needs sep=, the separator of a multi-hot "
            "field's ids" +
                form);
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:mean"; }),
            "schema.categorical: 'city:mean': sum or mean pools a multi-hot field (sep=)" + form);
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:sep=comma:max=2"; }),
            "schema.categorical: 'city:sep=comma:max=2': the separator is schema.delimiter, "
            "which splits the fields" +
                form);
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:sep=|:max=0"; }),
            "schema.categorical: 'city:sep=|:max=0': max=0 is not a number of ids from 1 to "
            "1024" +
                form);
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = "city:sep=ab:max=2"; }),
            "schema.categorical: 'ab' is not one character (or tab, comma, space, semicolon, "
            "pipe)");
  EXPECT_EQ(with([](SchemaSpec& s) { s.categorical = ""; }),
            "schema.categorical: names no column (the model needs at least one table)");
  EXPECT_EQ(with([](SchemaSpec& s) { s.label = " "; }),
            "schema.label: is not set (the column of 0/1 labels)");
  EXPECT_EQ(with([](SchemaSpec& s) { s.header = false; }),
            "schema.columns: is needed without a header line (schema.header=false)");
  EXPECT_EQ(with([](SchemaSpec& s) { s.dense = "age,:none"; }),
            "schema.dense: ':none' names no column");
  EXPECT_EQ(with([](SchemaSpec&) {}), "(no error)");
}

TEST(Schema, HeaderFilesIndexAndLoad) {
  // Two files with the same header; the header is never a row. A third file whose
  // header differs is refused, naming the column.
  const std::string a =
      tmp("a.csv", std::string(kHeader) + "\n1,30,100,Paris,0.5,a,x\n0,40,,Rome,3,,y\n");
  const std::string b =
      tmp("b.csv", std::string("\xEF\xBB\xBF") + kHeader + "\r\n0,50,7,Oslo,-2,b,z\r\n");
  IndexOptions o;
  o.schema = Schema::from_spec(csv_spec());
  o.fail_on_error = true;
  const Dataset ds = Dataset::index(a + "," + b, o);
  EXPECT_EQ(ds.rows, 3);
  EXPECT_EQ(ds.positives, 1);
  ASSERT_TRUE(ds.schema->bound());
  Loader loader(ds, {1000, 50}, LoaderOptions{0, false, 3, 0, 1});
  const Batch batch = loader.read(0, 0, 3);
  ASSERT_EQ(batch.dense.sizes(), (at::IntArrayRef{3, 3}));
  ASSERT_EQ(batch.sparse.sizes(), (at::IntArrayRef{3, 2}));
  EXPECT_TRUE(at::equal(batch.labels, at::tensor({1.0f, 0.0f, 0.0f})));
  EXPECT_EQ(batch.dense[2][0].item<float>(), 50.0f);
  EXPECT_EQ(batch.dense[2][2].item<float>(), -1.0f);
  EXPECT_EQ(batch.sparse[1][0].item<int64_t>(), hash_category(0, hash_bytes("Rome"), 1000));
  EXPECT_EQ(batch.sparse[1][1].item<int64_t>(), 0);

  const std::string c = tmp("c.csv", "label,age,income,town,score,id,note\n1,1,1,x,1,1,1\n");
  EXPECT_EQ(error_of([&] { Dataset::index(a + "," + c, o); }),
            c + ":1: header: column 4 is 'town' where the first file's header has 'city'");
  const std::string empty = tmp("empty.csv", "");
  EXPECT_EQ(error_of([&] { Dataset::index(empty, o); }),
            empty + ": empty; the schema expects a header line");
  // A wrong field count is a malformed line, with its file:line.
  const std::string d = tmp("d.csv", std::string(kHeader) + "\n1,2,3\n");
  EXPECT_EQ(error_of([&] { Dataset::index(d, o); }),
            d + ":2: expected 7 fields separated by ',', found 3");
  // Files indexed apart (tandem continuous) merge only when their columns lie alike.
  const std::string swapped =
      tmp("swapped.csv", "age,label,income,city,score,id,note\n30,1,100,Paris,0.5,a,x\n");
  const Dataset same = Dataset::merged({Dataset::index(a, o), Dataset::index(b, o)});
  EXPECT_EQ(same.rows, 3);
  EXPECT_EQ(error_of([&] {
              Dataset::merged({Dataset::index(a, o), Dataset::index(swapped, o)});
            }),
            swapped + ": its header orders the columns unlike " + a + "'s");
  // The loader refuses table sizes that do not match the categorical columns.
  EXPECT_EQ(error_of([&] { Loader(ds, std::vector<int64_t>(26, 10), LoaderOptions{}); }),
            "model.embedding_rows: 26 tables for 2 categorical columns");
}
