#pragma once
// Throw-away certificates for TLS tests, made with the openssl CLI (EC P-256, valid 2 days).
//
//   ASSERT_TRUE(MakeCa(dir, "ca", "Tollgate Test CA").ok());            // dir/ca.pem, dir/ca.key
//   ASSERT_TRUE(MakeLeafCert(dir, "ca", "server", CertUse::kServer).ok());  // dir/server.pem/.key
//   ASSERT_TRUE(MakeLeafCert(dir, "ca", "client", CertUse::kClient).ok());

#include <string>

#include "absl/status/status.h"

namespace tollgate::testing {

// A self-signed CA: <dir>/<name>.pem and <dir>/<name>.key, subject CN `cn`.
absl::Status MakeCa(const std::string& dir, const std::string& name, const std::string& cn);

enum class CertUse { kServer, kClient };

// A certificate signed by CA <dir>/<ca>.pem|.key: <dir>/<name>.pem and <dir>/<name>.key, CN
// `name`. Server certificates name localhost and 127.0.0.1 (serverAuth); client certificates
// carry clientAuth.
absl::Status MakeLeafCert(const std::string& dir, const std::string& ca, const std::string& name,
                          CertUse use);

}  // namespace tollgate::testing
