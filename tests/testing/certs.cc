#include "tests/testing/certs.h"

#include <atomic>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/process.h"

namespace tollgate::testing {
namespace {

absl::Status Openssl(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  CommandResult r = RunCommand(args);
  if (r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("openssl ", args[1], " failed in ", dir, ":\n", r.output));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MakeCa(const std::string& dir, const std::string& name, const std::string& cn) {
  WriteFile(dir + "/" + name + ".cnf", absl::StrCat(R"(
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = )",
                                                    cn, R"(
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
)"));
  return Openssl(dir, {"req", "-x509", "-config", dir + "/" + name + ".cnf", "-newkey", "ec",
                       "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                       dir + "/" + name + ".key", "-out", dir + "/" + name + ".pem", "-days", "2"});
}

absl::Status MakeLeafCert(const std::string& dir, const std::string& ca, const std::string& name,
                          CertUse use) {
  static std::atomic<int> serial{4242};
  const std::string base = dir + "/" + name;
  WriteFile(base + ".cnf",
            absl::StrCat(R"(
[req]
distinguished_name = dn
prompt = no
[dn]
CN = )",
                         use == CertUse::kServer ? "localhost" : name, R"(
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
authorityKeyIdentifier = keyid
)",
                         use == CertUse::kServer
                             ? "extendedKeyUsage = serverAuth\n"
                               "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
                             : "extendedKeyUsage = clientAuth\n"));
  absl::Status st = Openssl(dir, {"req", "-new", "-config", base + ".cnf", "-newkey", "ec",
                                  "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                                  base + ".key", "-out", base + ".csr"});
  if (!st.ok()) return st;
  return Openssl(dir, {"x509", "-req", "-in", base + ".csr", "-CA", dir + "/" + ca + ".pem",
                       "-CAkey", dir + "/" + ca + ".key", "-set_serial",
                       absl::StrCat(serial.fetch_add(1)), "-days", "2", "-extfile", base + ".cnf",
                       "-extensions", "v3_leaf", "-out", base + ".pem"});
}

}  // namespace tollgate::testing
