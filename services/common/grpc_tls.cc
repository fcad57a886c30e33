#include "services/common/grpc_tls.h"

#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of this process for gRPC between services: served on its gRPC "
          "listeners and presented as the client certificate when it calls another service "
          "(mutual TLS). Needs --tls_key_file. Empty: plaintext gRPC (docs/security.md).");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA bundle that peers' certificates must chain to: clients verify the services "
          "they call with it (TLS on every outgoing gRPC channel when set), servers verify client "
          "certificates with it.");
ABSL_FLAG(bool, tls_require_client_cert, false,
          "gRPC servers refuse clients that present no certificate signed by --tls_ca_file "
          "(mutual TLS). Needs --tls_cert_file, --tls_key_file and --tls_ca_file.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify in the certificates of the services this process calls, instead of the "
          "host of the address (e.g. the Service DNS name when dialling an IP).");

namespace tollgate {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " is not PEM"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<GrpcTls> GrpcTls::Load(const GrpcTlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file must be given together");
  }
  if (files.require_client_cert && (files.ca_file.empty() || files.cert_file.empty())) {
    return absl::InvalidArgumentError(
        "--tls_require_client_cert needs --tls_cert_file, --tls_key_file and --tls_ca_file");
  }
  GrpcTls tls;
  if (!files.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("tls_cert_file", files.cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("tls_key_file", files.key_file);
    if (!key.ok()) return key.status();
    tls.cert_pem_ = std::move(*cert);
    tls.key_pem_ = std::move(*key);
  }
  if (!files.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("tls_ca_file", files.ca_file);
    if (!ca.ok()) return ca.status();
    tls.ca_pem_ = std::move(*ca);
  }
  tls.require_client_cert_ = files.require_client_cert;
  tls.server_name_ = files.server_name;
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> GrpcTls::ServerCredentials() const {
  if (cert_pem_.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      require_client_cert_ ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
      : ca_pem_.empty()    ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                           : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca_pem_;
  options.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> GrpcTls::ChannelCredentials() const {
  if (ca_pem_.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca_pem_;
  options.pem_private_key = key_pem_;
  options.pem_cert_chain = cert_pem_;
  return grpc::SslCredentials(options);
}

grpc::ChannelArguments GrpcTls::ChannelArgs() const {
  grpc::ChannelArguments args;
  if (!server_name_.empty()) args.SetSslTargetNameOverride(server_name_);
  return args;
}

GrpcTlsFiles GrpcTlsFilesFromFlags() {
  GrpcTlsFiles files;
  files.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  files.key_file = absl::GetFlag(FLAGS_tls_key_file);
  files.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  files.require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert);
  files.server_name = absl::GetFlag(FLAGS_tls_server_name);
  return files;
}

absl::StatusOr<GrpcTls> GrpcTlsFromFlags() { return GrpcTls::Load(GrpcTlsFilesFromFlags()); }

}  // namespace tollgate
