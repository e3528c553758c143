// The spinnet client library: a thin class over the generated spinnet.v1
// stubs. Every call returns absl::Status(Or) with gRPC's code and message;
// every call but the two long-lived streams has a deadline; the bearer token
// rides on every call.
#ifndef SPINNET_CLIENT_CLIENT_H_
#define SPINNET_CLIENT_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/sync_stream.h"
#include "spinnet/v1/dataset.grpc.pb.h"
#include "spinnet/v1/inference.grpc.pb.h"
#include "spinnet/v1/metrics.grpc.pb.h"
#include "spinnet/v1/model.grpc.pb.h"
#include "spinnet/v1/sweep.grpc.pb.h"
#include "spinnet/v1/training.grpc.pb.h"

namespace spinnet::client {

struct ClientOptions {
  // Any gRPC target: "host:port"; "dns:///host:port", whose every address
  // is used (the replicas behind a Kubernetes headless Service); or a fixed
  // list "ipv4:10.0.0.1:50051,10.0.0.2:50051". The channel balances calls
  // over the addresses with the round_robin policy, skipping replicas that
  // are down; DNS is resolved again when a connection drops.
  std::string target = "127.0.0.1:50051";
  std::string token;  // bearer token; empty: none
  // PEM files. TLS when tls_ca_file is set; mutual TLS when the client's
  // certificate and key are set too.
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  // Of every call except WatchTrainingJob and StreamClassify sessions.
  absl::Duration deadline = absl::Seconds(30);
};

class StreamSession;

// A model version's file as ExportModel brings it.
struct ModelFile {
  v1::Model model;    // the version's record
  std::string bytes;  // the file exactly as the server stores it
};

// Thread-safe: calls may run concurrently from several threads.
class Client {
 public:
  // The stubs a client calls; tests may pass fakes of the interfaces.
  struct Stubs {
    std::unique_ptr<v1::TrainingService::StubInterface> training;
    std::unique_ptr<v1::SweepService::StubInterface> sweeps;
    std::unique_ptr<v1::DatasetService::StubInterface> datasets;
    std::unique_ptr<v1::ModelService::StubInterface> models;
    std::unique_ptr<v1::InferenceService::StubInterface> inference;
    std::unique_ptr<v1::MetricsService::StubInterface> metrics;
  };

  // Builds the channel and stubs without connecting: an unreachable server
  // shows as UNAVAILABLE on the first call. Fails only on bad TLS options
  // (INVALID_ARGUMENT) or unreadable PEM files.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const ClientOptions& options);

  // `channel` serves Health only and may be null (Health then fails with
  // FAILED_PRECONDITION).
  Client(Stubs stubs, std::shared_ptr<grpc::ChannelInterface> channel,
         ClientOptions options);

  // TrainingService.
  absl::StatusOr<v1::TrainingJob> SubmitTrainingJob(
      const v1::SubmitTrainingJobRequest& request);
  absl::StatusOr<v1::TrainingJob> GetTrainingJob(
      const v1::GetTrainingJobRequest& request);
  absl::StatusOr<v1::ListTrainingJobsResponse> ListTrainingJobs(
      const v1::ListTrainingJobsRequest& request);
  absl::StatusOr<v1::TrainingJob> CancelTrainingJob(
      const v1::CancelTrainingJobRequest& request);
  // Calls `on_update` with every message until the job ends (the server
  // then closes the stream) or `on_update` returns false, which cancels the
  // watch and returns OK. No deadline.
  absl::Status WatchTrainingJob(
      const std::string& job_id,
      const std::function<bool(const v1::WatchTrainingJobResponse&)>&
          on_update);

  // SweepService.
  absl::StatusOr<v1::Sweep> SubmitSweep(const v1::SubmitSweepRequest& request);
  absl::StatusOr<v1::Sweep> GetSweep(const v1::GetSweepRequest& request);
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps(
      const v1::ListSweepsRequest& request);
  absl::StatusOr<v1::Sweep> CancelSweep(const v1::CancelSweepRequest& request);
  // As WatchTrainingJob: until the sweep ends or `on_update` returns false.
  absl::Status WatchSweep(const std::string& sweep_id,
                          const std::function<bool(const v1::Sweep&)>& on_update);

  // DatasetService.
  // Sends a header (name, input_dim, size, SHA-256), then `bytes` in 32 KiB
  // chunks.
  absl::StatusOr<v1::Dataset> UploadDataset(const std::string& name,
                                            int input_dim,
                                            absl::string_view bytes);
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets(
      const v1::ListDatasetsRequest& request);
  absl::StatusOr<v1::Dataset> GetDataset(const v1::GetDatasetRequest& request);
  absl::StatusOr<v1::DeleteDatasetResponse> DeleteDataset(
      const v1::DeleteDatasetRequest& request);

  // ModelService.
  absl::StatusOr<v1::ListModelsResponse> ListModels(
      const v1::ListModelsRequest& request);
  absl::StatusOr<v1::Model> GetModel(const v1::GetModelRequest& request);
  absl::StatusOr<v1::DeleteModelResponse> DeleteModel(
      const v1::DeleteModelRequest& request);
  // The version's file (core/model_io.h format) and record; version 0: the
  // latest. DATA_LOSS if the chunks do not add up to the size the header
  // announced.
  absl::StatusOr<ModelFile> ExportModel(const v1::ExportModelRequest& request);
  // Sends a header (name, size), then `bytes` (a model file, e.g. from
  // `spinnet-train --out`) in 32 KiB chunks; the new version's record.
  absl::StatusOr<v1::Model> ImportModel(const std::string& name,
                                        absl::string_view bytes);

  // InferenceService.
  absl::StatusOr<v1::ClassifyResponse> Classify(
      const v1::ClassifyRequest& request);
  // The outputs of chosen neurons over time for a few sequences
  // (inference.proto says which and the bounds).
  absl::StatusOr<v1::TraceNeuronsResponse> TraceNeurons(
      const v1::TraceNeuronsRequest& request);
  // Opens a StreamClassify session on `model` (`version` 0: the latest) and
  // waits for the server's `opened` message. An `error` or `closed` answer
  // instead is returned as the status. No deadline.
  // A session stays on the replica it opened on. When that replica goes
  // away the session ends UNAVAILABLE and its state (the sequence under
  // way) is lost: open a new session (round_robin picks a live replica),
  // preferably on the version the first one opened, and send the
  // unfinished sequences again from their first steps.
  absl::StatusOr<std::unique_ptr<StreamSession>> OpenStream(
      const std::string& model, int version, int provisional_every);

  // MetricsService.
  absl::StatusOr<v1::GetTrainingMetricsResponse> GetTrainingMetrics(
      const v1::GetTrainingMetricsRequest& request);
  absl::StatusOr<v1::ServerStats> GetServerStats(
      const v1::GetServerStatsRequest& request);

  // grpc.health.v1.Health/Check of `service` ("": the whole server): true
  // if SERVING.
  absl::StatusOr<bool> Health(const std::string& service = "");

 private:
  // The one place a call's context is made: deadline and credentials.
  std::unique_ptr<grpc::ClientContext> NewContext(bool with_deadline) const;

  // One unary call of `method` on `stub`, with its status converted.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(
      Stub& stub,
      grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                   Response*),
      const Request& request) const;

  // A server-streaming call without deadline, `on_update` per message as
  // WatchTrainingJob describes.
  template <typename Stub, typename Request, typename Response>
  absl::Status Watch(
      Stub& stub,
      std::unique_ptr<grpc::ClientReaderInterface<Response>> (Stub::*method)(
          grpc::ClientContext*, const Request&),
      const Request& request,
      const std::function<bool(const Response&)>& on_update) const;

  Stubs stubs_;
  std::shared_ptr<grpc::ChannelInterface> channel_;
  ClientOptions options_;
};

// A StreamClassify session. One thread may Read while another sends
// (SendSteps, Reset, WritesDone); Finish must not run concurrently with
// Read. Must not outlive the Client that opened it.
class StreamSession {
 public:
  using Stream = grpc::ClientReaderWriterInterface<v1::StreamClassifyRequest,
                                                   v1::StreamClassifyResponse>;

  StreamSession(const StreamSession&) = delete;
  StreamSession& operator=(const StreamSession&) = delete;
  // Cancels the session if Finish was not called.
  ~StreamSession();

  // The server's answer to the open request.
  const v1::StreamOpened& opened() const { return opened_; }

  // Sends time steps (d values each); `end_of_sequence` asks for the final
  // answer and starts a new sequence after these steps. UNAVAILABLE once
  // the stream has ended (Finish then says why).
  absl::Status SendSteps(absl::Span<const double> values, bool end_of_sequence);
  // Drops the current sequence and starts a new one.
  absl::Status Reset();
  // The next message from the server, or nullopt once the stream has ended.
  absl::StatusOr<std::optional<v1::StreamClassifyResponse>> Read();
  // Tells the server no more requests follow; the server then ends the
  // stream after its last answers. Idempotent.
  absl::Status WritesDone();
  // WritesDone, then the stream's final status. Answers not yet read are
  // discarded. Call once.
  absl::Status Finish();

 private:
  friend class Client;
  StreamSession(std::unique_ptr<grpc::ClientContext> context,
                std::unique_ptr<Stream> stream);
  absl::Status Send(const v1::StreamClassifyRequest& request);

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  v1::StreamOpened opened_;
  bool writes_done_ = false;  // used by the sending thread only
  bool finished_ = false;
};

// The status an in-band StreamError stands for (its google.rpc.Code and
// message).
absl::Status StreamErrorStatus(const v1::StreamError& error);

}  // namespace spinnet::client

#endif  // SPINNET_CLIENT_CLIENT_H_
