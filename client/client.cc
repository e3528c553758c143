#include "client/client.h"

#include <algorithm>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status_macros.h"
#include "google/protobuf/wrappers.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/grpc_status.h"

namespace spinnet::client {
namespace {

// Small enough for any sane --max-message-bytes on the server.
constexpr size_t kUploadChunkBytes = 32 << 10;

// The channel's default service config: the round_robin load balancer.
constexpr char kServiceConfig[] =
    R"({"loadBalancingConfig":[{"round_robin":{}}]})";

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const ClientOptions& options) {
  const bool has_cert = !options.tls_cert_file.empty();
  if (has_cert != !options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate and its private key go together; give "
        "both or neither");
  }
  if (options.tls_ca_file.empty()) {
    if (has_cert) {
      return absl::InvalidArgumentError(
          "a TLS client certificate needs the CA certificate that verifies "
          "the server too");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(options.tls_ca_file));
  if (has_cert) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(options.tls_cert_file));
    ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(options.tls_key_file));
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const ClientOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   MakeCredentials(options));
  // round_robin spreads calls over every address the target resolves to
  // (the pods behind a headless Service, or an ipv4: list) and skips the
  // ones that are down; with one address it behaves like pick_first.
  grpc::ChannelArguments arguments;
  arguments.SetServiceConfigJSON(kServiceConfig);
  // A sweep of 10,000 points with its job ids is a few MB, over gRPC's
  // default 4 MB; the server bounds what it sends (--max-message-bytes).
  arguments.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, credentials, arguments);
  Stubs stubs;
  stubs.training = v1::TrainingService::NewStub(channel);
  stubs.sweeps = v1::SweepService::NewStub(channel);
  stubs.datasets = v1::DatasetService::NewStub(channel);
  stubs.models = v1::ModelService::NewStub(channel);
  stubs.inference = v1::InferenceService::NewStub(channel);
  stubs.metrics = v1::MetricsService::NewStub(channel);
  return std::make_unique<Client>(std::move(stubs), std::move(channel),
                                  options);
}

Client::Client(Stubs stubs, std::shared_ptr<grpc::ChannelInterface> channel,
               ClientOptions options)
    : stubs_(std::move(stubs)),
      channel_(std::move(channel)),
      options_(std::move(options)) {}

std::unique_ptr<grpc::ClientContext> Client::NewContext(
    bool with_deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (with_deadline) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  }
  if (!options_.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.token);
  }
  return context;
}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> Client::Call(
    Stub& stub,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                 Response*),
    const Request& request) const {
  std::unique_ptr<grpc::ClientContext> context = NewContext(true);
  Response response;
  RETURN_IF_ERROR(
      api::FromGrpcStatus((stub.*method)(context.get(), request, &response)));
  return response;
}

// Sends `request` (holding the header), then `bytes` in chunks, and ends the
// call: its status.
template <typename Request>
absl::Status WriteUpload(grpc::ClientWriterInterface<Request>& writer,
                         Request request, absl::string_view bytes) {
  // A failed write means the server ended the call; Finish says why.
  bool open = writer.Write(request);
  for (size_t at = 0; open && at < bytes.size(); at += kUploadChunkBytes) {
    request.set_chunk(std::string(bytes.substr(at, kUploadChunkBytes)));
    open = writer.Write(request);
  }
  if (open) writer.WritesDone();
  return api::FromGrpcStatus(writer.Finish());
}

using TrainingStub = v1::TrainingService::StubInterface;
using SweepStub = v1::SweepService::StubInterface;
using DatasetStub = v1::DatasetService::StubInterface;
using ModelStub = v1::ModelService::StubInterface;
using InferenceStub = v1::InferenceService::StubInterface;
using MetricsStub = v1::MetricsService::StubInterface;

absl::StatusOr<v1::TrainingJob> Client::SubmitTrainingJob(
    const v1::SubmitTrainingJobRequest& request) {
  return Call(*stubs_.training, &TrainingStub::SubmitTrainingJob, request);
}

absl::StatusOr<v1::TrainingJob> Client::GetTrainingJob(
    const v1::GetTrainingJobRequest& request) {
  return Call(*stubs_.training, &TrainingStub::GetTrainingJob, request);
}

absl::StatusOr<v1::ListTrainingJobsResponse> Client::ListTrainingJobs(
    const v1::ListTrainingJobsRequest& request) {
  return Call(*stubs_.training, &TrainingStub::ListTrainingJobs, request);
}

absl::StatusOr<v1::TrainingJob> Client::CancelTrainingJob(
    const v1::CancelTrainingJobRequest& request) {
  return Call(*stubs_.training, &TrainingStub::CancelTrainingJob, request);
}

template <typename Stub, typename Request, typename Response>
absl::Status Client::Watch(
    Stub& stub,
    std::unique_ptr<grpc::ClientReaderInterface<Response>> (Stub::*method)(
        grpc::ClientContext*, const Request&),
    const Request& request,
    const std::function<bool(const Response&)>& on_update) const {
  std::unique_ptr<grpc::ClientContext> context = NewContext(false);
  std::unique_ptr<grpc::ClientReaderInterface<Response>> reader =
      (stub.*method)(context.get(), request);
  Response response;
  bool stopped = false;
  while (reader->Read(&response)) {
    if (!stopped && !on_update(response)) {
      stopped = true;
      context->TryCancel();  // Read then drains and returns false
    }
  }
  const grpc::Status status = reader->Finish();
  return stopped ? absl::OkStatus() : api::FromGrpcStatus(status);
}

absl::Status Client::WatchTrainingJob(
    const std::string& job_id,
    const std::function<bool(const v1::WatchTrainingJobResponse&)>& on_update) {
  v1::WatchTrainingJobRequest request;
  request.set_job_id(job_id);
  return Watch(*stubs_.training, &TrainingStub::WatchTrainingJob, request,
               on_update);
}

absl::StatusOr<v1::Sweep> Client::SubmitSweep(
    const v1::SubmitSweepRequest& request) {
  return Call(*stubs_.sweeps, &SweepStub::SubmitSweep, request);
}

absl::StatusOr<v1::Sweep> Client::GetSweep(const v1::GetSweepRequest& request) {
  return Call(*stubs_.sweeps, &SweepStub::GetSweep, request);
}

absl::StatusOr<v1::ListSweepsResponse> Client::ListSweeps(
    const v1::ListSweepsRequest& request) {
  return Call(*stubs_.sweeps, &SweepStub::ListSweeps, request);
}

absl::StatusOr<v1::Sweep> Client::CancelSweep(
    const v1::CancelSweepRequest& request) {
  return Call(*stubs_.sweeps, &SweepStub::CancelSweep, request);
}

absl::Status Client::WatchSweep(
    const std::string& sweep_id,
    const std::function<bool(const v1::Sweep&)>& on_update) {
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Watch(*stubs_.sweeps, &SweepStub::WatchSweep, request, on_update);
}

absl::StatusOr<v1::Dataset> Client::UploadDataset(const std::string& name,
                                                  int input_dim,
                                                  absl::string_view bytes) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(true);
  v1::Dataset dataset;
  std::unique_ptr<grpc::ClientWriterInterface<v1::UploadDatasetRequest>>
      writer = stubs_.datasets->UploadDataset(context.get(), &dataset);
  v1::UploadDatasetRequest request;
  v1::UploadDatasetHeader* header = request.mutable_header();
  header->set_name(name);
  header->set_input_dim(input_dim);
  header->set_size_bytes(static_cast<int64_t>(bytes.size()));
  header->set_sha256(Sha256Hex(bytes));
  RETURN_IF_ERROR(WriteUpload(*writer, std::move(request), bytes));
  return dataset;
}

absl::StatusOr<v1::ListDatasetsResponse> Client::ListDatasets(
    const v1::ListDatasetsRequest& request) {
  return Call(*stubs_.datasets, &DatasetStub::ListDatasets, request);
}

absl::StatusOr<v1::Dataset> Client::GetDataset(
    const v1::GetDatasetRequest& request) {
  return Call(*stubs_.datasets, &DatasetStub::GetDataset, request);
}

absl::StatusOr<v1::DeleteDatasetResponse> Client::DeleteDataset(
    const v1::DeleteDatasetRequest& request) {
  return Call(*stubs_.datasets, &DatasetStub::DeleteDataset, request);
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModels(
    const v1::ListModelsRequest& request) {
  return Call(*stubs_.models, &ModelStub::ListModels, request);
}

absl::StatusOr<v1::Model> Client::GetModel(const v1::GetModelRequest& request) {
  return Call(*stubs_.models, &ModelStub::GetModel, request);
}

absl::StatusOr<v1::DeleteModelResponse> Client::DeleteModel(
    const v1::DeleteModelRequest& request) {
  return Call(*stubs_.models, &ModelStub::DeleteModel, request);
}

absl::StatusOr<ModelFile> Client::ExportModel(
    const v1::ExportModelRequest& request) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(true);
  std::unique_ptr<grpc::ClientReaderInterface<v1::ExportModelResponse>> reader =
      stubs_.models->ExportModel(context.get(), request);
  ModelFile file;
  v1::ExportModelResponse msg;
  // After a broken message the rest is drained, so Finish can end the call.
  absl::Status broken;
  int64_t size = -1;  // until the header
  while (reader->Read(&msg)) {
    if (!broken.ok()) continue;
    if (msg.has_header()) {
      if (size >= 0) broken = absl::InternalError("export sent two headers");
      file.model = std::move(*msg.mutable_header()->mutable_model());
      size = msg.header().size_bytes();
      if (size >= 0) file.bytes.reserve(size);
    } else if (size < 0) {
      broken = absl::InternalError("export sent a chunk before its header");
    } else {
      file.bytes += msg.chunk();
    }
  }
  RETURN_IF_ERROR(api::FromGrpcStatus(reader->Finish()));
  RETURN_IF_ERROR(broken);
  if (size < 0) return absl::InternalError("export ended without a header");
  if (static_cast<int64_t>(file.bytes.size()) != size) {
    return absl::DataLossError(absl::StrCat("export of ", request.name(),
                                            " brought ", file.bytes.size(),
                                            " bytes; its header said ", size));
  }
  return file;
}

absl::StatusOr<v1::Model> Client::ImportModel(const std::string& name,
                                              absl::string_view bytes) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(true);
  v1::Model model;
  std::unique_ptr<grpc::ClientWriterInterface<v1::ImportModelRequest>> writer =
      stubs_.models->ImportModel(context.get(), &model);
  v1::ImportModelRequest request;
  request.mutable_header()->set_name(name);
  request.mutable_header()->set_size_bytes(static_cast<int64_t>(bytes.size()));
  RETURN_IF_ERROR(WriteUpload(*writer, std::move(request), bytes));
  return model;
}

absl::StatusOr<v1::ClassifyResponse> Client::Classify(
    const v1::ClassifyRequest& request) {
  return Call(*stubs_.inference, &InferenceStub::Classify, request);
}

absl::StatusOr<v1::TraceNeuronsResponse> Client::TraceNeurons(
    const v1::TraceNeuronsRequest& request) {
  return Call(*stubs_.inference, &InferenceStub::TraceNeurons, request);
}

absl::StatusOr<std::unique_ptr<StreamSession>> Client::OpenStream(
    const std::string& model, int version, int provisional_every) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(false);
  std::unique_ptr<StreamSession::Stream> stream =
      stubs_.inference->StreamClassify(context.get());
  std::unique_ptr<StreamSession> session(
      new StreamSession(std::move(context), std::move(stream)));
  // The stream's own status says more than ours when it has one.
  const auto fail = [&session](absl::Status ours) {
    absl::Status theirs = session->Finish();
    return theirs.ok() ? ours : theirs;
  };

  v1::StreamClassifyRequest open;
  open.mutable_open()->set_model(model);
  open.mutable_open()->set_version(version);
  open.mutable_open()->set_provisional_every(provisional_every);
  if (absl::Status sent = session->Send(open); !sent.ok()) return fail(sent);
  ASSIGN_OR_RETURN(std::optional<v1::StreamClassifyResponse> first,
                   session->Read());
  if (!first.has_value()) {
    return fail(absl::UnavailableError("the stream ended before it opened"));
  }
  switch (first->kind_case()) {
    case v1::StreamClassifyResponse::kOpened:
      session->opened_ = first->opened();
      return session;
    case v1::StreamClassifyResponse::kError:
      // The server keeps an errored session open; the destructor cancels it.
      return StreamErrorStatus(first->error());
    case v1::StreamClassifyResponse::kClosed:
      return fail(absl::UnavailableError(absl::StrCat(
          "the server closed the stream: ", first->closed().reason())));
    default:
      return absl::InternalError(
          "the server's first stream message is not 'opened'");
  }
}

absl::StatusOr<v1::GetTrainingMetricsResponse> Client::GetTrainingMetrics(
    const v1::GetTrainingMetricsRequest& request) {
  return Call(*stubs_.metrics, &MetricsStub::GetTrainingMetrics, request);
}

absl::StatusOr<v1::ServerStats> Client::GetServerStats(
    const v1::GetServerStatsRequest& request) {
  return Call(*stubs_.metrics, &MetricsStub::GetServerStats, request);
}

absl::StatusOr<bool> Client::Health(const std::string& service) {
  if (channel_ == nullptr) {
    return absl::FailedPreconditionError("this client has no channel");
  }
  // grpc++ ships no generated grpc.health.v1 code. HealthCheckRequest is
  // {string service = 1} and HealthCheckResponse {ServingStatus status = 1}
  // (an enum: a varint), so StringValue and Int32Value have their wire form.
  constexpr int kServing = 1;
  grpc::TemplatedGenericStub<google::protobuf::StringValue,
                             google::protobuf::Int32Value>
      stub(channel_);
  google::protobuf::StringValue request;
  request.set_value(service);
  google::protobuf::Int32Value response;
  std::unique_ptr<grpc::ClientContext> context = NewContext(true);
  std::promise<grpc::Status> done;
  stub.UnaryCall(context.get(), "/grpc.health.v1.Health/Check",
                 grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  RETURN_IF_ERROR(api::FromGrpcStatus(done.get_future().get()));
  return response.value() == kServing;
}

absl::Status StreamErrorStatus(const v1::StreamError& error) {
  const int code = error.code();
  // OK would hide the error; codes past UNAUTHENTICATED (16) do not exist.
  return absl::Status(code > 0 && code <= 16
                          ? static_cast<absl::StatusCode>(code)
                          : absl::StatusCode::kUnknown,
                      error.message());
}

StreamSession::StreamSession(std::unique_ptr<grpc::ClientContext> context,
                             std::unique_ptr<Stream> stream)
    : context_(std::move(context)), stream_(std::move(stream)) {}

StreamSession::~StreamSession() {
  if (finished_) return;
  context_->TryCancel();
  Finish().IgnoreError();
}

absl::Status StreamSession::Send(const v1::StreamClassifyRequest& request) {
  if (writes_done_) {
    return absl::FailedPreconditionError("WritesDone was called already");
  }
  if (!stream_->Write(request)) {
    return absl::UnavailableError("the stream has ended; Finish() returns why");
  }
  return absl::OkStatus();
}

absl::Status StreamSession::SendSteps(absl::Span<const double> values,
                                      bool end_of_sequence) {
  v1::StreamClassifyRequest request;
  v1::StreamSteps* steps = request.mutable_steps();
  steps->mutable_values()->Add(values.begin(), values.end());
  steps->set_end_of_sequence(end_of_sequence);
  return Send(request);
}

absl::Status StreamSession::Reset() {
  v1::StreamClassifyRequest request;
  request.mutable_reset();
  return Send(request);
}

absl::StatusOr<std::optional<v1::StreamClassifyResponse>>
StreamSession::Read() {
  if (finished_) return absl::FailedPreconditionError("the stream is finished");
  v1::StreamClassifyResponse response;
  if (!stream_->Read(&response)) return std::nullopt;
  return response;
}

absl::Status StreamSession::WritesDone() {
  if (writes_done_) return absl::OkStatus();
  writes_done_ = true;
  if (!stream_->WritesDone()) {
    return absl::UnavailableError("the stream has ended; Finish() returns why");
  }
  return absl::OkStatus();
}

absl::Status StreamSession::Finish() {
  if (finished_) return absl::FailedPreconditionError("Finish called twice");
  WritesDone().IgnoreError();  // an ended stream reports through Finish
  // gRPC wants every message read before Finish.
  v1::StreamClassifyResponse unread;
  while (stream_->Read(&unread)) {
  }
  finished_ = true;
  return api::FromGrpcStatus(stream_->Finish());
}

}  // namespace spinnet::client
