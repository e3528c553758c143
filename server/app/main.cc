// spinnet-server: the gRPC service, one server on its SQLite store or one of
// many replicas on PostgreSQL. --help lists the flags.
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/cli_flags.h"
#include "server/app/server.h"

namespace spinnet::server {
namespace {

struct Flag {
  const char* name;
  const char* help;
  bool is_bool;
  std::function<bool(const std::string&, ServerOptions*)> set;
};

bool ParseInt(const std::string& v, int* out) { return absl::SimpleAtoi(v, out); }

bool ParseSeconds(const std::string& v, absl::Duration* out) {
  double s;
  if (!absl::SimpleAtod(v, &s) || s <= 0) return false;
  *out = absl::Seconds(s);
  return true;
}

const std::vector<Flag>& Flags() {
  using O = ServerOptions;
  static const auto* flags = new std::vector<Flag>{
      {"listen", "gRPC address host:port (port 0: any free port)", false,
       [](const std::string& v, O* o) { o->listen = v; return !v.empty(); }},
      {"metrics-listen", "Prometheus /metrics address host:port ('' = off)",
       false, [](const std::string& v, O* o) { o->metrics_listen = v; return true; }},
      {"store", "sqlite://DIR or postgresql://USER@HOST:PORT/DB (default: "
                "sqlite://<data-dir>)",
       false, [](const std::string& v, O* o) { o->store = v; return !v.empty(); }},
      {"store-password-file", "file holding the PostgreSQL password (or use "
                              "PGPASSWORD / ~/.pgpass)",
       false, [](const std::string& v, O* o) { o->store_password_file = v; return true; }},
      {"data-dir", "SQLite store directory: database, models, checkpoints, "
                   "datasets", false,
       [](const std::string& v, O* o) { o->data_dir = v; return !v.empty(); }},
      {"training-workers", "training jobs run at once", false,
       [](const std::string& v, O* o) { return ParseInt(v, &o->training_workers); }},
      {"max-streams", "concurrent StreamClassify sessions", false,
       [](const std::string& v, O* o) { return ParseInt(v, &o->max_streams); }},
      {"max-queued-jobs", "jobs waiting before submits are refused", false,
       [](const std::string& v, O* o) { return ParseInt(v, &o->max_queued_jobs); }},
      {"max-queued-sweep-jobs",
       "jobs of sweeps waiting before sweep submits are refused", false,
       [](const std::string& v, O* o) {
         return ParseInt(v, &o->max_queued_sweep_jobs);
       }},
      {"max-message-bytes", "largest gRPC message accepted [bytes]", false,
       [](const std::string& v, O* o) { return ParseInt(v, &o->max_message_bytes); }},
      {"max-dataset-bytes", "largest dataset upload [bytes]", false,
       [](const std::string& v, O* o) {
         return absl::SimpleAtoi(v, &o->max_dataset_bytes);
       }},
      {"max-model-bytes", "largest model file import [bytes]", false,
       [](const std::string& v, O* o) {
         return absl::SimpleAtoi(v, &o->max_model_bytes);
       }},
      {"stream-idle-timeout", "close streams idle this long [s]", false,
       [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->stream_idle_timeout);
       }},
      {"auth-tokens-file", "clients, roles and token hashes, a line each "
                           "'CLIENT ROLE sha256:HEX' (spinnet token new) or "
                           "'CLIENT ROLE x509:SUBJECT' (mutual TLS); reread "
                           "on SIGHUP",
       false, [](const std::string& v, O* o) { o->auth_tokens_file = v; return true; }},
      {"auth-token-file", "require 'authorization: Bearer <token in file>' "
                          "(an admin client named token-file; reread on "
                          "SIGHUP)",
       false, [](const std::string& v, O* o) { o->auth_token_file = v; return true; }},
      {"tls-cert", "server certificate (PEM); enables TLS", false,
       [](const std::string& v, O* o) { o->tls.cert_file = v; return true; }},
      {"tls-key", "server private key (PEM)", false,
       [](const std::string& v, O* o) { o->tls.key_file = v; return true; }},
      {"tls-client-ca", "CA (PEM) that client certificates must chain to "
                        "(mutual TLS)", false,
       [](const std::string& v, O* o) { o->tls.client_ca_file = v; return true; }},
      {"worker-name", "this replica's name in job leases (default host:pid)",
       false, [](const std::string& v, O* o) { o->worker_name = v; return !v.empty(); }},
      {"lease-ttl", "a job whose worker is silent this long is requeued [s]",
       false, [](const std::string& v, O* o) { return ParseSeconds(v, &o->lease_ttl); }},
      {"heartbeat-interval", "job heartbeats, cancel checks, reaper [s]", false,
       [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->heartbeat_interval);
       }},
      {"max-attempts", "claims before a job whose worker keeps dying FAILS",
       false, [](const std::string& v, O* o) { return ParseInt(v, &o->max_attempts); }},
      {"max-connection-age", "GOAWAY clients after this long, to rebalance [s]",
       false, [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->max_connection_age);
       }},
      {"max-connection-age-grace", "then cut calls still open after this long "
                                   "[s] (default: never)",
       false, [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->max_connection_age_grace);
       }},
      {"grpc-memory-bytes", "gRPC's memory quota: transports and messages in "
                            "flight [bytes]", false,
       [](const std::string& v, O* o) {
         return absl::SimpleAtoi(v, &o->grpc_memory_bytes);
       }},
      {"max-rpc-threads", "threads for the (sync) RPC handlers", false,
       [](const std::string& v, O* o) { return ParseInt(v, &o->max_rpc_threads); }},
      {"max-watchers", "WatchTrainingJob and WatchSweep calls open at once",
       false, [](const std::string& v, O* o) { return ParseInt(v, &o->max_watchers); }},
      {"max-streams-per-connection", "HTTP/2 concurrent streams per connection",
       false, [](const std::string& v, O* o) {
         return ParseInt(v, &o->max_streams_per_connection);
       }},
      {"max-metadata-bytes", "largest request headers [bytes]", false,
       [](const std::string& v, O* o) { return ParseInt(v, &o->max_metadata_bytes); }},
      {"handshake-timeout", "close connections without TLS handshake and "
                            "HTTP/2 SETTINGS after this [s]", false,
       [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->handshake_timeout);
       }},
      {"min-ping-interval", "client keepalive pings closer than this are "
                            "strikes (3: GOAWAY) [s]", false,
       [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->min_ping_interval);
       }},
      {"keepalive-time", "ping a connection silent this long [s]", false,
       [](const std::string& v, O* o) { return ParseSeconds(v, &o->keepalive_time); }},
      {"keepalive-timeout", "close it if the ping is not acked within [s]",
       false, [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->keepalive_timeout);
       }},
      {"max-connection-idle", "GOAWAY connections with no call open this "
                              "long [s]", false,
       [](const std::string& v, O* o) {
         return ParseSeconds(v, &o->max_connection_idle);
       }},
      {"reflection", "serve gRPC server reflection", true,
       [](const std::string&, O* o) { o->reflection = true; return true; }},
      {"allow-insecure-remote",
       "allow a non-loopback --listen without auth token files", true,
       [](const std::string&, O* o) { o->allow_insecure_remote = true; return true; }},
      {"shutdown-grace", "on SIGTERM, seconds in-flight calls may finish", false,
       nullptr},
  };
  return *flags;
}

// Each flag's default, as help shows it ("" for none).
std::string DefaultOf(const std::string& name) {
  const ServerOptions d;
  const auto seconds = [](absl::Duration t) {
    return absl::StrFormat("%g", absl::ToDoubleSeconds(t));
  };
  if (name == "listen") return d.listen;
  if (name == "metrics-listen") return d.metrics_listen;
  if (name == "data-dir") return d.data_dir;
  if (name == "training-workers") return absl::StrCat(d.training_workers);
  if (name == "max-streams") return absl::StrCat(d.max_streams);
  if (name == "max-queued-jobs") return absl::StrCat(d.max_queued_jobs);
  if (name == "max-queued-sweep-jobs") {
    return absl::StrCat(d.max_queued_sweep_jobs);
  }
  if (name == "max-message-bytes") return absl::StrCat(d.max_message_bytes);
  if (name == "max-dataset-bytes") return absl::StrCat(d.max_dataset_bytes);
  if (name == "max-model-bytes") return absl::StrCat(d.max_model_bytes);
  if (name == "stream-idle-timeout") return seconds(d.stream_idle_timeout);
  if (name == "lease-ttl") return seconds(d.lease_ttl);
  if (name == "heartbeat-interval") return seconds(d.heartbeat_interval);
  if (name == "max-attempts") return absl::StrCat(d.max_attempts);
  if (name == "max-connection-age") return seconds(d.max_connection_age);
  if (name == "grpc-memory-bytes") return absl::StrCat(d.grpc_memory_bytes);
  if (name == "max-rpc-threads") return absl::StrCat(d.max_rpc_threads);
  if (name == "max-watchers") return absl::StrCat(d.max_watchers);
  if (name == "max-streams-per-connection") {
    return absl::StrCat(d.max_streams_per_connection);
  }
  if (name == "max-metadata-bytes") return absl::StrCat(d.max_metadata_bytes);
  if (name == "handshake-timeout") return seconds(d.handshake_timeout);
  if (name == "min-ping-interval") return seconds(d.min_ping_interval);
  if (name == "keepalive-time") return seconds(d.keepalive_time);
  if (name == "keepalive-timeout") return seconds(d.keepalive_timeout);
  if (name == "max-connection-idle") return seconds(d.max_connection_idle);
  if (name == "shutdown-grace") return "5";
  return "";
}

// Debian's default soft limit on open files is 1024, which a thousand
// clients exhaust; the hard limit (often 512Ki) is the real bound. The
// listener (listener.h) keeps the server answering when even that runs out.
void RaiseOpenFileLimit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == files.rlim_max) {
    return;
  }
  const rlim_t was = files.rlim_cur;
  files.rlim_cur = files.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &files) != 0) {
    std::fprintf(stderr, "spinnet-server: cannot raise the open files limit "
                 "from %ld: %s\n", static_cast<long>(was), std::strerror(errno));
  }
}

// Messages up to --max-message-bytes come and go on many threads. glibc
// raises its mmap threshold to the size of each large block freed (up to 32
// MiB), after which such blocks come from per-thread arenas and stay in the
// process when freed: four clients sending 4 MiB messages in a loop took the
// RSS from 80 to 300 MiB (tests/server/hostile_clients_test.py). A fixed
// threshold keeps large blocks mmapped, so they go back to the system when
// freed; and one arena per core rather than glibc's eight lets a block freed
// on one RPC thread serve the next (eight such clients: a 190 MiB rise
// became 110 MiB on 2 cores).
void BoundMallocRetention() {
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  mallopt(M_ARENA_MAX,
          static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

int Main(int argc, char** argv) {
  ServerOptions options;
  absl::Duration grace = absl::Seconds(5);
  {
    // The flags come from the table above; CLI11 (core/cli_flags.h) parses.
    CLI::App app("The spinnet gRPC service: one server on its SQLite store, "
                 "or one of many replicas on PostgreSQL.",
                 "spinnet-server");
    cli::Setup(&app, /*root=*/true);
    for (const Flag& f : Flags()) {
      const std::string name = absl::StrCat("--", f.name);
      const std::string dflt = DefaultOf(f.name);
      const std::string help =
          dflt.empty() ? f.help : absl::StrCat(f.help, " (default ", dflt, ")");
      if (f.is_bool) {
        app.add_flag(name, help)->disable_flag_override();
      } else {
        // As before: a flag given twice takes its last value.
        app.add_option(name, help)
            ->type_name("VALUE")
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      }
    }
    if (auto exit = cli::Parse(&app, argc, argv, "spinnet-server")) {
      return *exit;
    }
    for (const CLI::Option* o : app.parse_order()) {
      const std::string name = o->get_name(false, true).substr(2);
      const Flag* flag = nullptr;
      for (const Flag& f : Flags()) {
        if (name == f.name) flag = &f;
      }
      if (flag == nullptr) continue;  // --help, --version
      const std::string value = o->results().empty() ? "" : o->results().back();
      const bool ok = flag->set ? flag->set(value, &options)
                                : ParseSeconds(value, &grace);
      if (!ok) {
        return cli::UsageError("spinnet-server",
                               "bad value '" + value + "' for --" + name);
      }
    }
  }

  // SIGTERM/SIGINT (shutdown) and SIGHUP (reread the auth token files) are
  // taken by a waiting thread, not a handler, so they run as ordinary code.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  RaiseOpenFileLimit();
  BoundMallocRetention();
  SpinnetServer server(options);
  absl::Status started = server.Start();
  if (!started.ok()) {
    std::fprintf(stderr, "spinnet-server: %s\n",
                 std::string(started.message()).c_str());
    return 1;
  }
  std::printf("spinnet-server listening on %s", server.address().c_str());
  if (!server.metrics_address().empty()) {
    std::printf(", metrics on http://%s/metrics",
                server.metrics_address().c_str());
  }
  std::printf(", store %s, worker %s\n",
              options.store.empty() ? ("sqlite://" + options.data_dir).c_str()
                                    : options.store.c_str(),
              server.worker_name().c_str());
  std::fflush(stdout);

  bool released = true;
  std::thread waiter([&] {
    int sig = 0;
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
      const absl::StatusOr<size_t> clients = server.ReloadAuth();
      if (clients.ok()) {
        std::fprintf(stderr, "spinnet-server: SIGHUP: %zu auth clients\n",
                     *clients);
      } else {
        std::fprintf(stderr,
                     "spinnet-server: SIGHUP: keeping the old auth clients: "
                     "%s\n",
                     std::string(clients.status().message()).c_str());
      }
    }
    std::fprintf(stderr, "spinnet-server: signal %d, shutting down\n", sig);
    released = server.Shutdown(absl::Now() + grace);
  });
  server.Wait();
  waiter.join();
  if (!released) {
    // A job still in a batch: leave it. Its lease lapses and another
    // replica (or this one, restarted) resumes it from its checkpoint.
    std::fprintf(stderr,
                 "spinnet-server: a training job did not stop within the "
                 "grace period; exiting, its lease will lapse\n");
    std::fflush(stderr);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace
}  // namespace spinnet::server

int main(int argc, char** argv) { return spinnet::server::Main(argc, argv); }
