#pragma once
// Optional TLS and mutual TLS between Tollgate's services (docs/security.md), with certificates
// from files. Every binary links this and gets the same flags:
//
//   --tls_cert_file, --tls_key_file  this process's certificate chain and private key (PEM):
//       served on its gRPC listeners (router, ledger) and presented as the client certificate
//       when it calls another service (gateway, tollgatectl), which is what makes mutual TLS;
//   --tls_ca_file                    CA bundle (PEM) that peers' certificates must chain to:
//       clients verify the servers they call with it; servers verify client certificates with it;
//   --tls_require_client_cert        servers refuse clients without a certificate from the CA;
//   --tls_server_name                the name clients check in servers' certificates instead of
//       the host in the address (e.g. when dialling an IP the certificate does not list).
//
//   absl::StatusOr<GrpcTls> tls = GrpcTlsFromFlags();
//   builder.AddListeningPort(address, tls->ServerCredentials());
//   auto channel = grpc::CreateCustomChannel(target, tls->ChannelCredentials(), tls->ChannelArgs());
//
// With no flag set everything stays plaintext (loopback development, or a mesh providing mTLS).
// Files are read once at start; a change needs a restart (rolling, in Kubernetes).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace tollgate {

struct GrpcTlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  bool require_client_cert = false;
  std::string server_name;
};

class GrpcTls {
 public:
  // Reads the files. Errors (kInvalidArgument naming the flag): a certificate without its key or
  // the reverse, --tls_require_client_cert without --tls_ca_file, an unreadable or non-PEM file.
  static absl::StatusOr<GrpcTls> Load(const GrpcTlsFiles& files);

  // Servers: TLS when a certificate is configured, else plaintext.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  // Clients: TLS when a CA bundle is configured (with this process's certificate, if any, as the
  // client certificate), else plaintext.
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;
  // The channel arguments clients must use (the server-name override, when set).
  grpc::ChannelArguments ChannelArgs() const;

  bool server_tls() const { return !cert_pem_.empty(); }
  bool client_tls() const { return !ca_pem_.empty(); }

 private:
  std::string cert_pem_, key_pem_, ca_pem_;
  bool require_client_cert_ = false;
  std::string server_name_;
};

// The --tls_* flags of this binary.
GrpcTlsFiles GrpcTlsFilesFromFlags();
// Load(GrpcTlsFilesFromFlags()).
absl::StatusOr<GrpcTls> GrpcTlsFromFlags();

}  // namespace tollgate
