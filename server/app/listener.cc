#include "server/app/listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "server/api/auth.h"

namespace spinnet::server {
namespace {

// A listening socket on `addr` (its port replaced by `port` unless 0), or -1
// with errno set.
int ListenOn(const addrinfo& ai, int port) {
  sockaddr_storage addr{};
  std::memcpy(&addr, ai.ai_addr, ai.ai_addrlen);
  if (port != 0) {
    if (addr.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
    } else {
      reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
    }
  }
  const int fd =
      socket(ai.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  // SO_REUSEADDR (not SO_REUSEPORT): restart on a port in TIME_WAIT, but a
  // second live server on the port still fails to bind.
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), ai.ai_addrlen) != 0 ||
      listen(fd, SOMAXCONN) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.ss_family == AF_INET
                   ? reinterpret_cast<sockaddr_in*>(&addr)->sin_port
                   : reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

int OpenSpare() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(
    const std::string& address) {
  ASSIGN_OR_RETURN(const HostPort split, SplitHostPort(address));
  const std::string port = std::to_string(split.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int e = getaddrinfo(split.host.c_str(), port.c_str(), &hints, &found);
      e != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", gai_strerror(e)));
  }
  std::vector<int> fds;
  int bound_port = 0;
  std::string error;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    const int fd = ListenOn(*ai, bound_port);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    if (bound_port == 0) bound_port = BoundPort(fd);
    fds.push_back(fd);
  }
  freeaddrinfo(found);
  if (fds.empty() || bound_port == 0) {
    for (int fd : fds) close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (",
                     error.empty() ? "no address" : error, ")"));
  }
  return std::unique_ptr<Listener>(new Listener(std::move(fds), bound_port));
}

Listener::Listener(std::vector<int> fds, int port)
    : fds_(std::move(fds)), port_(port) {}

Listener::~Listener() {
  Stop();
  for (int fd : fds_) close(fd);
}

void Listener::Start(
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
  SPINNET_CHECK(!thread_.joinable());
  acceptor_ = std::move(acceptor);
  SPINNET_CHECK(pipe2(wake_, O_CLOEXEC) == 0);
  spare_fd_ = OpenSpare();
  rlimit files{};
  SPINNET_CHECK(getrlimit(RLIMIT_NOFILE, &files) == 0);
  const rlim_t soft = files.rlim_cur == RLIM_INFINITY
                          ? static_cast<rlim_t>(INT_MAX)
                          : std::min<rlim_t>(files.rlim_cur, INT_MAX);
  fd_ceiling_ = static_cast<int>(soft) - kReservedFds;
  thread_ = std::thread([this] { Run(); });
}

void Listener::Stop() {
  if (!thread_.joinable()) return;
  const char byte = 0;
  while (write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(wake_[0]);
  close(wake_[1]);
  if (spare_fd_ >= 0) close(spare_fd_);
  spare_fd_ = -1;
}

void Listener::Run() {
  std::vector<pollfd> polled;
  for (int fd : fds_) polled.push_back({fd, POLLIN, 0});
  polled.push_back({wake_[0], POLLIN, 0});
  for (;;) {
    if (poll(polled.data(), polled.size(), -1) < 0) {
      if (errno == EINTR) continue;
      SPINNET_LOG(Error, "listener poll: ", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (polled.back().revents != 0) return;  // Stop()
    for (size_t i = 0; i + 1 < polled.size(); ++i) {
      if (polled[i].revents != 0) AcceptAll(polled[i].fd);
    }
  }
}

void Listener::AcceptAll(int fd) {
  const auto refuse = [this](int conn, const char* why) {
    close(conn);
    const int64_t n = ++refused_;
    if (n % 1000 == 1) {
      SPINNET_LOG(Warning, "refused ", n, " connection(s) so far: ", why);
    }
  };
  for (;;) {
    const int conn =
        accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
      switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
          continue;
        case EMFILE:
        case ENFILE: {
          // Out of descriptors: take the waiting connection with the spare
          // one and close it, so that the client is told at once.
          if (spare_fd_ >= 0) {
            close(spare_fd_);
            const int taken = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (taken >= 0) refuse(taken, "out of file descriptors");
            spare_fd_ = OpenSpare();
          }
          // Not even that: wait for descriptors to be freed.
          if (spare_fd_ < 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          return;
        }
        default:  // EAGAIN and anything unexpected: back to poll
          if (errno != EAGAIN && errno != EWOULDBLOCK) {
            SPINNET_LOG(Error, "accept4: ", std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          return;
      }
    }
    if (conn >= fd_ceiling_) {
      refuse(conn, "file descriptors are running out");
      continue;
    }
    const int one = 1;
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
    p.listener_fd = fd;
    p.fd = conn;
    acceptor_->HandleNewConnection(&p);
  }
}

}  // namespace spinnet::server
