// Roles, the RPC table against the services' descriptors, token files and
// token lookup; no gRPC server.
#include "server/api/access.h"

#include <stdlib.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/file_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace spinnet::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Every RPC of every service in every spinnet.v1 proto file (SPINNET_PROTOS,
// the list proto/CMakeLists.txt compiles) has a row, and every row is an RPC.
TEST(RpcRolesTest, EveryRpcOfEveryServiceHasExactlyOneRow) {
  std::set<std::string> rows;
  for (const RpcRole& row : RpcRoles()) {
    EXPECT_TRUE(rows.insert(row.rpc).second) << row.rpc << " twice";
  }
  std::set<std::string> methods;
  int services = 0;
  for (absl::string_view name : absl::StrSplit(SPINNET_PROTOS, ',')) {
    const std::string file = absl::StrCat("spinnet/v1/", name, ".proto");
    const google::protobuf::FileDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
            file);
    ASSERT_NE(descriptor, nullptr) << file << " is not linked in";
    for (int s = 0; s < descriptor->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service =
          descriptor->service(s);
      ++services;
      for (int m = 0; m < service->method_count(); ++m) {
        const std::string rpc =
            absl::StrCat(service->full_name(), "/", service->method(m)->name());
        methods.insert(rpc);
        EXPECT_TRUE(RequiredRole(rpc).has_value())
            << rpc << " has no row in RpcRoles() (server/api/access.cc)";
      }
    }
  }
  EXPECT_EQ(services, 6);
  for (const std::string& row : rows) {
    EXPECT_TRUE(methods.count(row)) << row << " is no RPC of spinnet.v1";
  }
  EXPECT_EQ(rows.size(), methods.size());
}

TEST(RoleTest, NamesAndOrder) {
  for (Role role : {Role::kReader, Role::kTrainer, Role::kAdmin}) {
    EXPECT_EQ(RoleNamed(RoleName(role)), role);
  }
  EXPECT_FALSE(RoleNamed("Admin").has_value());
  EXPECT_FALSE(RoleNamed("").has_value());
  EXPECT_LT(Role::kReader, Role::kTrainer);
  EXPECT_LT(Role::kTrainer, Role::kAdmin);
}

TEST(TokenTableTest, ParsesLinesCommentsAndBlanks) {
  const std::string text = absl::StrCat(
      "# spinnet clients\n\n", TokenFileLine("alice", Role::kReader, "tok-a"),
      "\n   \t\n", TokenFileLine("ci.bot@example-1", Role::kTrainer, "tok-b"),
      "  # the CI\r\n",
      // Upper-case hex and tabs are fine.
      "Ops\tadmin\tsha256:",
      absl::AsciiStrToUpper(TokenFileLine("x", Role::kAdmin, "tok-c")
                                .substr(std::string("x admin sha256:").size())),
      "\n");
  const absl::StatusOr<TokenTable> table = TokenTable::Parse(text, "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->clients().size(), 3u);
  EXPECT_EQ(table->clients()[1].name, "ci.bot@example-1");
  EXPECT_EQ(table->clients()[1].role, Role::kTrainer);
  EXPECT_EQ(table->clients()[1].where, "tokens:5");
  EXPECT_EQ(table->Find("tok-a"), &table->clients()[0]);
  EXPECT_EQ(table->Find("tok-b"), &table->clients()[1]);
  EXPECT_EQ(table->Find("tok-c"), &table->clients()[2]);
}

TEST(TokenTableTest, CertificateSubjects) {
  const absl::StatusOr<TokenTable> table = TokenTable::Parse(
      absl::StrCat("ci trainer x509:CN=ci runner,O=My Lab  # spaces kept\n",
                   TokenFileLine("alice", Role::kReader, "tok-a"), "\n"),
      "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->has_subjects());
  ASSERT_NE(table->FindSubject("CN=ci runner,O=My Lab"), nullptr);
  EXPECT_EQ(table->FindSubject("CN=ci runner,O=My Lab")->role, Role::kTrainer);
  EXPECT_EQ(table->FindSubject("CN=ci runner"), nullptr);
  EXPECT_EQ(table->FindSubject(""), nullptr);
  EXPECT_EQ(table->Find("CN=ci runner,O=My Lab"), nullptr);
  EXPECT_EQ(table->Find(""), nullptr);  // a subject entry has no token
  EXPECT_EQ(table->Find("tok-a")->name, "alice");
  EXPECT_FALSE(TokenTable::Parse(TokenFileLine("a", Role::kReader, "t"), "f")
                   ->has_subjects());
}

// Find compares digests in full for every entry (by construction); here its
// answers: only the exact token matches.
TEST(TokenTableTest, FindMatchesExactTokenOnly) {
  TokenTable table;
  ASSERT_TRUE(table.Add("a", Role::kReader, "s3cr3t", "test").ok());
  ASSERT_TRUE(table.Add("b", Role::kAdmin, "s3cr3T", "test").ok());
  EXPECT_EQ(table.Find("s3cr3t")->name, "a");
  EXPECT_EQ(table.Find("s3cr3T")->name, "b");
  for (const std::string& wrong :
       std::vector<std::string>{"", "s3cr3", "s3cr3tt", " s3cr3t", "s3cr3t ",
                                "S3CR3T", std::string("s3cr3t\0", 7)}) {
    EXPECT_EQ(table.Find(wrong), nullptr) << "'" << wrong << "'";
  }
  // The digest of a token is not the token.
  const std::string line = TokenFileLine("a", Role::kReader, "s3cr3t");
  EXPECT_EQ(table.Find(line.substr(line.find("sha256:"))), nullptr);
  EXPECT_EQ(TokenTable().Find("s3cr3t"), nullptr);
}

TEST(TokenTableTest, ErrorsNameFileAndLineAndNeverTheSecret) {
  const std::string good = TokenFileLine("alice", Role::kReader, "tok-a");
  const std::string hex = good.substr(good.find("sha256:") + 7);
  struct Case {
    std::string text;
    std::string where;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "tokens", "no clients"},
      {"# only a comment\n\n", "tokens", "no clients"},
      {"raw-token-pasted-here\n", "tokens:1", "1 fields"},
      {"alice reader\n", "tokens:1", "2 fields"},
      {good + " extra\n", "tokens:1", "4 fields"},
      {"\nalice owner sha256:" + hex, "tokens:2", "unknown role 'owner'"},
      {"alice reader raw-token-pasted-here", "tokens:1", "not the token"},
      {"alice reader sha256:" + hex.substr(1), "tokens:1", "64 hex digits"},
      {"alice reader sha256:" + hex + "0", "tokens:1", "64 hex digits"},
      {"alice reader sha256:" + hex.substr(1) + "g", "tokens:1",
       "64 hex digits"},
      {"alice reader sha1:" + hex, "tokens:1", "'sha256:'"},
      {good + "\n" + TokenFileLine("alice", Role::kAdmin, "tok-b"), "tokens:2",
       "client 'alice' is already defined at tokens:1"},
      {good + "\n" + TokenFileLine("bob", Role::kAdmin, "tok-a"), "tokens:2",
       "client 'bob' has the same token as 'alice' at tokens:1"},
      {"-alice reader sha256:" + hex, "tokens:1", "client name '-alice'"},
      {"al/ice reader sha256:" + hex, "tokens:1", "client name 'al/ice'"},
      {std::string(65, 'a') + " reader sha256:" + hex, "tokens:1",
       "must be 1-64"},
      {"alice reader x509:", "tokens:1", "without a certificate subject"},
      {"alice reader x509:CN=a\nbob admin x509:CN=a", "tokens:2",
       "client 'bob' has the same certificate subject as 'alice'"},
      {"anonymous reader sha256:" + hex, "tokens:1", "reserved"},
      {"unauthenticated reader sha256:" + hex, "tokens:1", "reserved"},
      {"token-file admin sha256:" + hex, "tokens:1", "reserved"},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<TokenTable> table =
        TokenTable::Parse(c.text, "tokens");
    ASSERT_FALSE(table.ok()) << c.text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(table.status().message(), HasSubstr(c.where + ": ")) << c.text;
    EXPECT_THAT(table.status().message(), HasSubstr(c.message)) << c.text;
    EXPECT_THAT(table.status().message(), Not(HasSubstr("raw-token")));
    EXPECT_THAT(table.status().message(), Not(HasSubstr(hex.substr(1, 20))));
  }
}

TEST(TokenTableTest, NewTokenAndFileLineRoundTrip) {
  const absl::StatusOr<std::string> a = NewToken();
  const absl::StatusOr<std::string> b = NewToken();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->size(), 43u);  // 256 bits, base64url without padding
  for (char c : *a) {
    EXPECT_TRUE(absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                c == '-' || c == '_')
        << *a;
  }
  const std::string line = TokenFileLine("ci", Role::kTrainer, *a);
  EXPECT_THAT(line, Not(HasSubstr(*a)));
  const absl::StatusOr<TokenTable> table = TokenTable::Parse(line, "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_NE(table->Find(*a), nullptr);
  EXPECT_EQ(table->Find(*a)->name, "ci");
  EXPECT_EQ(table->Find(*a)->role, Role::kTrainer);
  EXPECT_EQ(table->Find(*b), nullptr);
}

class TokenFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "access_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }
  std::string dir_;
};

// The single raw token of --auth-token-file is one admin client among the
// others, in the same table.
TEST_F(TokenFilesTest, TokenFileIsAnAdminClientInTheSameTable) {
  const std::string tokens =
      Write("tokens", TokenFileLine("alice", Role::kReader, "tok-a") + "\n");
  const std::string token = Write("token", " raw-token\n");
  const absl::StatusOr<TokenTable> both = LoadTokenTable({tokens, token});
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->clients().size(), 2u);
  EXPECT_EQ(both->Find("raw-token")->name, kTokenFileClient);
  EXPECT_EQ(both->Find("raw-token")->role, Role::kAdmin);
  EXPECT_EQ(both->Find("tok-a")->name, "alice");

  const absl::StatusOr<TokenTable> only_token = LoadTokenTable({"", token});
  ASSERT_TRUE(only_token.ok()) << only_token.status();
  EXPECT_EQ(only_token->clients().size(), 1u);

  // The same secret in both files is refused.
  const std::string same = Write("same", "tok-a");
  const absl::StatusOr<TokenTable> twice = LoadTokenTable({tokens, same});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.status().message(), HasSubstr("same token as 'alice'"));
  EXPECT_THAT(twice.status().message(), HasSubstr(same));

  const absl::StatusOr<TokenTable> missing =
      LoadTokenTable({dir_ + "/nope", ""});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir_ + "/nope"));
}

}  // namespace
}  // namespace spinnet::server
