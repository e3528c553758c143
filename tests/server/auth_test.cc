#include "server/api/auth.h"

#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "proto/grpc_status.h"
#include "server/app/server.h"
#include "spinnet/v1/inference.grpc.pb.h"
#include "spinnet/v1/metrics.grpc.pb.h"
#include "spinnet/v1/model.grpc.pb.h"

namespace spinnet::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A fresh directory, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir() : path_(::testing::TempDir() + "auth_test.XXXXXX") {
    EXPECT_NE(mkdtemp(path_.data()), nullptr);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string WriteTemp(const std::string& dir, const std::string& name,
                      const std::string& contents) {
  const std::string path = dir + "/" + name;
  EXPECT_TRUE(WriteFileAtomically(path, contents).ok());
  return path;
}

TEST(LoadTokenTest, TrimsSurroundingWhitespace) {
  const TempDir temp;
  const std::string& dir = temp.path();
  const absl::StatusOr<std::string> token =
      LoadToken(WriteTemp(dir, "token", "  s3cr3t-Token_1\n"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "s3cr3t-Token_1");
}

TEST(LoadTokenTest, Errors) {
  const TempDir temp;
  const std::string& dir = temp.path();
  const absl::StatusOr<std::string> missing = LoadToken(dir + "/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir + "/nope"));

  for (const std::string contents : {"", " \n\t\n"}) {
    const std::string path = WriteTemp(dir, "empty", contents);
    const absl::StatusOr<std::string> empty = LoadToken(path);
    EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(empty.status().message(), HasSubstr(path));
    EXPECT_THAT(empty.status().message(), HasSubstr("empty"));
  }

  const absl::StatusOr<std::string> inner =
      LoadToken(WriteTemp(dir, "inner", "abc def\n"));
  EXPECT_EQ(inner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(inner.status().message(), HasSubstr("whitespace"));
  EXPECT_THAT(inner.status().message(), Not(HasSubstr("abc")));
}

// Handlers as the service writes them: Authorize first. One sync and one
// callback method, since Authorize takes either context.
class AuthorizedInference final : public v1::InferenceService::Service {
 public:
  explicit AuthorizedInference(const TokenAuthorizer* auth) : auth_(auth) {}
  grpc::Status Classify(grpc::ServerContext* ctx, const v1::ClassifyRequest*,
                        v1::ClassifyResponse*) override {
    return api::ToGrpcStatus(auth_->Authorize(*ctx, rpc::kClassify));
  }
  // A handler naming an RPC the table does not have: a bug, INTERNAL.
  grpc::Status TraceNeurons(grpc::ServerContext* ctx,
                            const v1::TraceNeuronsRequest*,
                            v1::TraceNeuronsResponse*) override {
    return api::ToGrpcStatus(
        auth_->Authorize(*ctx, "spinnet.v1.InferenceService/Trace"));
  }

 private:
  const TokenAuthorizer* auth_;
};

class AuthorizedModels final : public v1::ModelService::CallbackService {
 public:
  explicit AuthorizedModels(const TokenAuthorizer* auth) : auth_(auth) {}
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest*,
                                     v1::Model*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(api::ToGrpcStatus(auth_->Authorize(*ctx, rpc::kGetModel)));
    return reactor;
  }
  // Needs admin.
  grpc::ServerUnaryReactor* DeleteModel(grpc::CallbackServerContext* ctx,
                                        const v1::DeleteModelRequest*,
                                        v1::DeleteModelResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(
        api::ToGrpcStatus(auth_->Authorize(*ctx, rpc::kDeleteModel)));
    return reactor;
  }

 private:
  const TokenAuthorizer* auth_;
};

// A server on 127.0.0.1:0 with both services behind `auth`.
class TestServer {
 public:
  TestServer(const TokenAuthorizer* auth,
             std::shared_ptr<grpc::ServerCredentials> credentials)
      : inference_(auth), models_(auth) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port_);
    builder.RegisterService(&inference_);
    builder.RegisterService(&models_);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() {
    if (server_ != nullptr) server_->Shutdown();
  }

  bool started() const { return server_ != nullptr; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  AuthorizedInference inference_;
  AuthorizedModels models_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

void PrepareContext(grpc::ClientContext* ctx,
                    const std::string& authorization) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(10));
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
}

grpc::Status CallSync(const std::shared_ptr<grpc::Channel>& channel,
                      const std::string& authorization) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, authorization);
  v1::ClassifyResponse response;
  return v1::InferenceService::NewStub(channel)->Classify(
      &ctx, v1::ClassifyRequest(), &response);
}

grpc::Status CallCallback(const std::shared_ptr<grpc::Channel>& channel,
                          const std::string& authorization) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, authorization);
  v1::Model response;
  return v1::ModelService::NewStub(channel)->GetModel(
      &ctx, v1::GetModelRequest(), &response);
}

struct AuthCase {
  std::string authorization;  // metadata value; empty: none sent
  grpc::StatusCode code;
  std::string message;
};

grpc::Status CallDelete(const std::shared_ptr<grpc::Channel>& channel,
                        const std::string& authorization) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, authorization);
  v1::DeleteModelResponse response;
  return v1::ModelService::NewStub(channel)->DeleteModel(
      &ctx, v1::DeleteModelRequest(), &response);
}

TokenTable OneClient(const std::string& name, Role role,
                     const std::string& token) {
  TokenTable table;
  EXPECT_TRUE(table.Add(name, role, token, "test").ok());
  return table;
}

TEST(TokenAuthorizerTest, ChecksBearerTokenOnRealCalls) {
  const TokenAuthorizer auth(OneClient("tester", Role::kAdmin, "s3cr3t"));
  EXPECT_TRUE(auth.enabled());
  TestServer server(&auth, grpc::InsecureServerCredentials());
  ASSERT_TRUE(server.started());
  const auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  const std::vector<AuthCase> cases = {
      {"", grpc::StatusCode::UNAUTHENTICATED, "missing bearer token"},
      {"Bearer wrong!", grpc::StatusCode::UNAUTHENTICATED,
       "invalid bearer token"},
      {"Bearer s3cr3", grpc::StatusCode::UNAUTHENTICATED,
       "invalid bearer token"},
      {"Bearer s3cr3tt", grpc::StatusCode::UNAUTHENTICATED,
       "invalid bearer token"},
      {"Bearer ", grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token"},
      {"s3cr3t", grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token"},
      {"Basic s3cr3t", grpc::StatusCode::UNAUTHENTICATED,
       "invalid bearer token"},
      {"Bearer s3cr3t", grpc::StatusCode::OK, ""},
      {"bearer s3cr3t", grpc::StatusCode::OK, ""},
  };
  for (const AuthCase& c : cases) {
    for (const auto call : {&CallSync, &CallCallback, &CallDelete}) {
      const grpc::Status status = call(channel, c.authorization);
      EXPECT_EQ(status.error_code(), c.code)
          << "'" << c.authorization << "': " << status.error_message();
      EXPECT_EQ(status.error_message(), c.message);
    }
  }
}

TEST(TokenAuthorizerTest, AuthOffAllowsEverything) {
  const TokenAuthorizer auth;
  EXPECT_FALSE(auth.enabled());
  TestServer server(&auth, grpc::InsecureServerCredentials());
  ASSERT_TRUE(server.started());
  const auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  for (const std::string authorization : {"", "Bearer anything"}) {
    EXPECT_TRUE(CallSync(channel, authorization).ok());
    EXPECT_TRUE(CallCallback(channel, authorization).ok());
    EXPECT_TRUE(CallDelete(channel, authorization).ok());
  }
}

TEST(TokenAuthorizerTest, RoleTooLowIsPermissionDeniedNamingClientAndRight) {
  TokenTable table = OneClient("rita", Role::kReader, "reader-token");
  ASSERT_TRUE(table.Add("ada", Role::kAdmin, "admin-token", "test").ok());
  const TokenAuthorizer auth(std::move(table));
  TestServer server(&auth, grpc::InsecureServerCredentials());
  ASSERT_TRUE(server.started());
  const auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());

  EXPECT_TRUE(CallCallback(channel, "Bearer reader-token").ok());
  const grpc::Status denied = CallDelete(channel, "Bearer reader-token");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(),
            "client 'rita' has role reader; "
            "spinnet.v1.ModelService/DeleteModel needs role admin");
  EXPECT_TRUE(CallDelete(channel, "Bearer admin-token").ok());
  // Authentication comes first: no role is told to a stranger.
  EXPECT_EQ(CallDelete(channel, "Bearer nobody").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallDelete(channel, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(TokenAuthorizerTest, RpcWithoutRowIsInternalEvenWithAuthOff) {
  const TokenAuthorizer off;
  TestServer server(&off, grpc::InsecureServerCredentials());
  ASSERT_TRUE(server.started());
  grpc::ClientContext ctx;
  PrepareContext(&ctx, "");
  v1::TraceNeuronsResponse response;
  const grpc::Status status =
      v1::InferenceService::NewStub(
          grpc::CreateChannel(server.address(),
                              grpc::InsecureChannelCredentials()))
          ->TraceNeurons(&ctx, v1::TraceNeuronsRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("no row"));
}

// Reload swaps the whole table; a bad file keeps the old one.
TEST(TokenAuthorizerTest, ReloadSwapsTableOrKeepsOldOnError) {
  const TempDir temp;
  const std::string& dir = temp.path();
  const std::string tokens =
      WriteTemp(dir, "tokens", TokenFileLine("alice", Role::kReader, "a-tok"));
  const std::string token = WriteTemp(dir, "token", "raw-tok\n");
  absl::StatusOr<std::unique_ptr<TokenAuthorizer>> auth =
      TokenAuthorizer::Open({tokens, token});
  ASSERT_TRUE(auth.ok()) << auth.status();
  ASSERT_TRUE((*auth)->enabled());
  const auto client_of = [&](const std::string& bearer) {
    const std::string value = "Bearer " + bearer;
    const std::multimap<grpc::string_ref, grpc::string_ref> metadata = {
        {"authorization", value}};
    return (*auth)->ClientOf(metadata);
  };
  EXPECT_EQ(client_of("a-tok"), "alice");
  EXPECT_EQ(client_of("raw-tok"), "token-file");
  EXPECT_EQ(client_of("b-tok"), "unauthenticated");

  // alice revoked, bob added, the raw token rotated.
  WriteTemp(dir, "tokens",
            TokenFileLine("bob", Role::kTrainer, "b-tok") + "\n");
  WriteTemp(dir, "token", "new-raw-tok");
  const absl::StatusOr<size_t> reloaded = (*auth)->Reload();
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(*reloaded, 2u);
  EXPECT_EQ(client_of("a-tok"), "unauthenticated");
  EXPECT_EQ(client_of("b-tok"), "bob");
  EXPECT_EQ(client_of("raw-tok"), "unauthenticated");
  EXPECT_EQ(client_of("new-raw-tok"), "token-file");

  WriteTemp(dir, "tokens", "carol reader b-tok\n");  // a raw token: refused
  const absl::StatusOr<size_t> bad = (*auth)->Reload();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr(tokens + ":1"));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("b-tok")));
  EXPECT_EQ(client_of("b-tok"), "bob");  // the old table still answers
  std::filesystem::remove(tokens);
  EXPECT_EQ((*auth)->Reload().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_of("b-tok"), "bob");

  const TokenAuthorizer off;
  EXPECT_EQ(off.ClientOf({}), "anonymous");
  EXPECT_EQ(TokenAuthorizer(OneClient("x", Role::kReader, "t")).Reload()
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MakeServerCredentialsTest, InsecureWhenNothingIsSet) {
  const auto credentials = MakeServerCredentials(TlsOptions{});
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_NE(*credentials, nullptr);
}

TEST(MakeServerCredentialsTest, RejectsIncompleteOrUnreadableSettings) {
  const TempDir temp;
  const std::string& dir = temp.path();
  const std::string pem =
      WriteTemp(dir, "some.pem", "-----BEGIN CERTIFICATE-----\n");
  const std::vector<TlsOptions> incomplete = {
      {pem, "", ""}, {"", pem, ""}, {"", "", pem}, {pem, "", pem}};
  for (const TlsOptions& options : incomplete) {
    EXPECT_EQ(MakeServerCredentials(options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << options.cert_file << "|" << options.key_file << "|"
        << options.client_ca_file;
  }

  const std::string missing = dir + "/missing.pem";
  for (const TlsOptions& options :
       {TlsOptions{missing, pem, ""}, TlsOptions{pem, missing, ""},
        TlsOptions{pem, pem, missing}}) {
    const auto credentials = MakeServerCredentials(options);
    EXPECT_EQ(credentials.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(credentials.status().message(), HasSubstr(missing));
  }

  const std::string der = WriteTemp(dir, "key.der", std::string("\x30\x82", 2));
  const auto not_pem = MakeServerCredentials({pem, der, ""});
  EXPECT_EQ(not_pem.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_pem.status().message(), HasSubstr(der));
}

// A CA, a server certificate for localhost/127.0.0.1 and client
// certificates, made with the openssl CLI.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    temp_ = new TempDir;
    dir_ = &temp_->path();
    MakeCa("ca");
    MakeCa("foreign_ca");
    MakeCert("server", "localhost", "ca",
             "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
             "extendedKeyUsage=serverAuth\n");
    MakeCert("client", "client", "ca", "extendedKeyUsage=clientAuth\n");
    MakeCert("lab_client", "ci/O=lab", "ca", "extendedKeyUsage=clientAuth\n");
    MakeCert("foreign_client", "client", "foreign_ca",
             "extendedKeyUsage=clientAuth\n");
  }
  static void TearDownTestSuite() { delete temp_; }

  static std::string Path(const std::string& name) {
    return *dir_ + "/" + name;
  }
  static std::string Read(const std::string& name) {
    absl::StatusOr<std::string> contents = ReadFile(Path(name));
    EXPECT_TRUE(contents.ok()) << contents.status();
    return contents.ok() ? *contents : "";
  }

  static void Run(const std::string& command) {
    ASSERT_EQ(
        std::system(("cd '" + *dir_ + "' && " + command + " >openssl.log 2>&1")
                        .c_str()),
        0)
        << command << "\n"
        << Read("openssl.log");
  }
  static constexpr char kNewKey[] =
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  static void MakeCa(const std::string& name) {
    Run(absl::StrCat(kNewKey, "-x509 -days 2 -subj /CN=", name, " -keyout ",
                     name, ".key -out ", name, ".pem"));
  }
  static void MakeCert(const std::string& name, const std::string& cn,
                       const std::string& ca, const std::string& extensions) {
    WriteTemp(*dir_, name + ".ext", extensions);
    Run(absl::StrCat(kNewKey, "-subj /CN=", cn, " -keyout ", name, ".key -out ",
                     name, ".csr"));
    Run(absl::StrCat("openssl x509 -req -days 2 -in ", name, ".csr -CA ", ca,
                     ".pem -CAkey ", ca, ".key -CAcreateserial -extfile ", name,
                     ".ext -out ", name, ".pem"));
  }

  static grpc::Status Call(const std::string& address,
                           std::shared_ptr<grpc::ChannelCredentials> creds) {
    return CallSync(grpc::CreateChannel(address, std::move(creds)), "");
  }
  static std::shared_ptr<grpc::ChannelCredentials> ClientCredentials(
      const std::string& client) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Read("ca.pem");
    if (!client.empty()) {
      options.pem_private_key = Read(client + ".key");
      options.pem_cert_chain = Read(client + ".pem");
    }
    return grpc::SslCredentials(options);
  }

  static TempDir* temp_;
  static const std::string* dir_;
  const TokenAuthorizer no_token_;
};
TempDir* TlsTest::temp_ = nullptr;
const std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, MutualTlsRequiresTrustedClientCertificate) {
  const auto credentials = MakeServerCredentials(
      {Path("server.pem"), Path("server.key"), Path("ca.pem")});
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  TestServer server(&no_token_, *credentials);
  ASSERT_TRUE(server.started());

  const grpc::Status good = Call(server.address(), ClientCredentials("client"));
  EXPECT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(Call(server.address(), ClientCredentials("")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      Call(server.address(), ClientCredentials("foreign_client")).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      Call(server.address(), grpc::InsecureChannelCredentials()).error_code(),
      grpc::StatusCode::UNAVAILABLE);
}

// A client known by its certificate's subject needs no token over mutual
// TLS; a token still works and wins; an unknown certificate gets the usual
// UNAUTHENTICATED.
TEST_F(TlsTest, MutualTlsClientMappedToRoleBySubject) {
  const absl::StatusOr<TokenTable> table = TokenTable::Parse(
      absl::StrCat("robot reader x509:CN=client\n",
                   // RFC 2253 order, as `openssl x509 -noout -subject
                   // -nameopt RFC2253` prints it: the last RDN first.
                   "lab-ci trainer x509:O=lab,CN=ci\n",
                   TokenFileLine("ada", Role::kAdmin, "admin-token"), "\n"),
      "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  const TokenAuthorizer auth(*table);
  const auto credentials = MakeServerCredentials(
      {Path("server.pem"), Path("server.key"), Path("ca.pem")});
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  TestServer server(&auth, *credentials);
  ASSERT_TRUE(server.started());
  const auto channel =
      grpc::CreateChannel(server.address(), ClientCredentials("client"));

  const grpc::Status read = CallCallback(channel, "");
  EXPECT_TRUE(read.ok()) << read.error_message();
  const grpc::Status denied = CallDelete(channel, "");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("client 'robot' has role reader"));
  EXPECT_TRUE(CallDelete(channel, "Bearer admin-token").ok());
  EXPECT_EQ(CallCallback(channel, "Bearer wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status lab = CallDelete(
      grpc::CreateChannel(server.address(), ClientCredentials("lab_client")),
      "");
  EXPECT_EQ(lab.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(lab.error_message(), HasSubstr("client 'lab-ci' has role trainer"));

  // The same CA's certificate for another subject names no client.
  const absl::StatusOr<TokenTable> other =
      TokenTable::Parse("robot reader x509:CN=someone-else\n", "tokens");
  ASSERT_TRUE(other.ok()) << other.status();
  const TokenAuthorizer other_auth(*other);
  TestServer other_server(&other_auth, *credentials);
  ASSERT_TRUE(other_server.started());
  const grpc::Status unknown = CallCallback(
      grpc::CreateChannel(other_server.address(), ClientCredentials("client")),
      "");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(unknown.error_message(),
            "missing bearer token, and client certificate CN=client names no "
            "client");
}

TEST_F(TlsTest, ServerOnlyTls) {
  const auto credentials =
      MakeServerCredentials({Path("server.pem"), Path("server.key"), ""});
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  TestServer server(&no_token_, *credentials);
  ASSERT_TRUE(server.started());

  const grpc::Status good = Call(server.address(), ClientCredentials(""));
  EXPECT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(
      Call(server.address(), grpc::InsecureChannelCredentials()).error_code(),
      grpc::StatusCode::UNAVAILABLE);
}

// SpinnetServer accepts connections itself (server/app/listener.h) and
// hands them to gRPC with its credentials: mutual TLS holds there as well.
TEST_F(TlsTest, SpinnetServerListenerKeepsMutualTls) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.data_dir = Path("data");
  options.tls = {Path("server.pem"), Path("server.key"), Path("ca.pem")};
  SpinnetServer server(options);
  const absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started;
  const auto stats = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::ServerStats response;
    return v1::MetricsService::NewStub(
               grpc::CreateChannel(server.address(), std::move(creds)))
        ->GetServerStats(&ctx, v1::GetServerStatsRequest(), &response);
  };
  const grpc::Status good = stats(ClientCredentials("client"));
  EXPECT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(stats(ClientCredentials("")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(stats(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(SplitHostPortTest, Parts) {
  const auto v4 = SplitHostPort("127.0.0.1:8080");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 8080);
  const auto v6 = SplitHostPort("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  for (const std::string bad :
       {"", "8080", "::1:80", "[::1]", "[::1:80", "[127.0.0.1]:80", "a b:80",
        "host:65536", "host:-1", "host:+1", "host:123456", "h,i:80", ":80",
        "[]:80"}) {
    EXPECT_EQ(SplitHostPort(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(IsLoopbackAddressTest, Table) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"127.0.0.1:50051", true},
      {"127.1.2.3:0", true},
      {"localhost:50051", true},
      {"LocalHost:1", true},
      {"[::1]:50051", true},
      {"0.0.0.0:50051", false},
      {"[::]:50051", false},
      {"10.0.0.1:50051", false},
      {"128.0.0.1:1", false},
      {"example.com:443", false},
      {"localhost.evil.com:1", false},
      {"127.0.0.1", false},
      {"::1:50051", false},
      {"[::ffff:10.0.0.1]:1", false},
      {"unix:/tmp/socket", false},
      {"", false},
  };
  for (const auto& [listen, loopback] : cases) {
    EXPECT_EQ(IsLoopbackAddress(listen), loopback) << listen;
  }
}

}  // namespace
}  // namespace spinnet::server
