// The authorization matrix on the real server: every role (and the
// --auth-token-file client) calls every RPC of every service with an empty
// request. A call its role may make gets the RPC's own answer (OK or the
// error an empty request earns), one it may not gets PERMISSION_DENIED, and
// a call without a valid token UNAUTHENTICATED. The matrix observed is the
// one README.md shows.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/file_util.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/api/access.h"
#include "server/app/server.h"

namespace spinnet::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The policy as issue 10 states it, written out apart from RpcRoles(): the
// RPCs that change state and need trainer, those that delete and need
// admin; every other RPC is a read.
const std::set<std::string>& TrainerRpcs() {
  static const auto* rpcs =
      new std::set<std::string>{"spinnet.v1.TrainingService/SubmitTrainingJob",
                                "spinnet.v1.TrainingService/CancelTrainingJob",
                                "spinnet.v1.SweepService/SubmitSweep",
                                "spinnet.v1.SweepService/CancelSweep",
                                "spinnet.v1.DatasetService/UploadDataset",
                                "spinnet.v1.ModelService/ImportModel"};
  return *rpcs;
}
const std::set<std::string>& AdminRpcs() {
  static const auto* rpcs =
      new std::set<std::string>{"spinnet.v1.DatasetService/DeleteDataset",
                                "spinnet.v1.ModelService/DeleteModel"};
  return *rpcs;
}

struct Caller {
  std::string client;  // as in the token file
  std::string token;
  Role role;
};

class AuthorizationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "authorization_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    callers_ = {{"rita", "reader-token", Role::kReader},
                {"tom", "trainer-token", Role::kTrainer},
                {"ada", "admin-token", Role::kAdmin},
                {"token-file", "legacy-token", Role::kAdmin}};
    std::string tokens = "# the matrix's clients\n";
    for (const Caller& c : callers_) {
      if (c.client == kTokenFileClient) continue;
      absl::StrAppend(&tokens, TokenFileLine(c.client, c.role, c.token), "\n");
    }
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.data_dir = dir_ + "/data";
    options.auth_tokens_file = dir_ + "/tokens";
    options.auth_token_file = dir_ + "/token";
    ASSERT_TRUE(WriteFileAtomically(options.auth_tokens_file, tokens).ok());
    ASSERT_TRUE(
        WriteFileAtomically(options.auth_token_file, "legacy-token\n").ok());
    server_ = std::make_unique<SpinnetServer>(options);
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    channel_ = grpc::CreateChannel(server_->address(),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Calls `rpc` as a bidi stream (which fits every kind on the wire): one
  // empty request, half-close, read to the end. The status.
  grpc::Status Call(const std::string& rpc, const std::string& token) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    grpc::CompletionQueue cq;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
        stub.PrepareCall(&ctx, "/" + rpc, &cq);
    void* tag;
    bool ok;
    call->StartCall(reinterpret_cast<void*>(1));
    cq.Next(&tag, &ok);
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
    grpc::ByteBuffer response;
    do {
      call->Read(&response, reinterpret_cast<void*>(3));
      cq.Next(&tag, &ok);
    } while (ok);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  }

  std::string dir_;
  std::vector<Caller> callers_;
  std::unique_ptr<SpinnetServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(AuthorizationTest, EveryRoleTimesEveryRpc) {
  std::string matrix =
      "| RPC | reader | trainer | admin |\n| --- | --- | --- | --- |\n";
  for (const RpcRole& row : RpcRoles()) {
    SCOPED_TRACE(row.rpc);
    const Role policy = AdminRpcs().count(row.rpc)     ? Role::kAdmin
                        : TrainerRpcs().count(row.rpc) ? Role::kTrainer
                                                       : Role::kReader;
    EXPECT_EQ(row.role, policy) << "RpcRoles() disagrees with the policy";

    for (const std::string token : {"", "not-a-token"}) {
      const grpc::Status status = Call(row.rpc, token);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << "token '" << token << "': " << status.error_message();
    }
    std::map<Role, bool> allowed;
    for (const Caller& c : callers_) {
      SCOPED_TRACE(c.client);
      const grpc::Status status = Call(row.rpc, c.token);
      const bool denied =
          status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
      EXPECT_EQ(denied, c.role < policy) << status.error_message();
      if (denied) {
        EXPECT_EQ(
            status.error_message(),
            absl::StrCat("client '", c.client, "' has role ", RoleName(c.role),
                         "; ", row.rpc, " needs role ", RoleName(policy)));
        EXPECT_THAT(status.error_message(), Not(HasSubstr(c.token)));
      } else {
        // The RPC's own answer to an empty request.
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
        EXPECT_NE(status.error_code(), grpc::StatusCode::INTERNAL)
            << status.error_message();
        EXPECT_NE(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
      }
      if (c.client != kTokenFileClient) allowed[c.role] = !denied;
    }
    const std::vector<std::string> name = absl::StrSplit(row.rpc, '.');
    absl::StrAppend(&matrix, "| ", name.back(), " | ",
                    allowed[Role::kReader] ? "yes" : "denied", " | ",
                    allowed[Role::kTrainer] ? "yes" : "denied", " | ",
                    allowed[Role::kAdmin] ? "yes" : "denied", " |\n");
  }
  const absl::StatusOr<std::string> readme =
      ReadFile(SPINNET_SOURCE_DIR "/README.md");
  ASSERT_TRUE(readme.ok()) << readme.status();
  EXPECT_TRUE(absl::StrContains(*readme, matrix))
      << "README.md's authorization matrix should read:\n"
      << matrix;
}

}  // namespace
}  // namespace spinnet::server
