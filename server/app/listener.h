// The server's own accept loop. It hands each connection to the grpc::Server
// through ServerBuilder's external connection acceptor, with the server's
// credentials, instead of letting gRPC listen.
//
// Why: gRPC 1.51's listener stops accepting for good the first time
// accept4() fails with EMFILE ("Failed accept4: Too many open files"), so a
// client that opens connections until the process runs out of descriptors
// leaves the server deaf, still reporting SERVING, after the client has
// gone. This loop never stops: it keeps kReservedFds descriptors free for
// the rest of the server (the store, checkpoints, gRPC's own) by closing at
// once a connection whose descriptor lands among them (the kernel hands out
// the lowest free number, so such a number means the others are taken), and
// on EMFILE or ENFILE it frees a spare descriptor to accept and close the
// waiting connection rather than spin.
#ifndef SPINNET_SERVER_APP_LISTENER_H_
#define SPINNET_SERVER_APP_LISTENER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server_builder.h"

namespace spinnet::server {

class Listener {
 public:
  // Descriptors connections never take.
  static constexpr int kReservedFds = 64;

  // Listens on every address `host:port` resolves to (port 0: one free
  // port for all of them), without SO_REUSEPORT. INVALID_ARGUMENT for a
  // malformed address, UNAVAILABLE when no address can be bound.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(
      const std::string& address);
  ~Listener();  // Stop()

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int port() const { return port_; }

  // Starts handing accepted connections to `acceptor` (from
  // ServerBuilder::experimental().AddExternalConnectionAcceptor, after
  // BuildAndStart).
  void Start(
      std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);
  // Stops accepting (connections then wait in the kernel's backlog until
  // the destructor closes the sockets); call it before the grpc::Server
  // shuts down. Idempotent.
  void Stop();

 private:
  Listener(std::vector<int> fds, int port);
  void Run();
  // Accepts what waits on `fd`, until accept4 would block.
  void AcceptAll(int fd);

  const std::vector<int> fds_;
  const int port_;
  int wake_[2] = {-1, -1};  // a pipe: Stop() writes, Run() wakes
  int spare_fd_ = -1;       // /dev/null, given up to accept on EMFILE
  int fd_ceiling_ = 0;      // connections get descriptor numbers below it
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::thread thread_;
  int64_t refused_ = 0;  // connections closed at once (logged); Run() only
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_APP_LISTENER_H_
