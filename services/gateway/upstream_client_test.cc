#include "services/gateway/upstream_client.h"

#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

TEST(ParseBaseUrl, Https) {
  auto t = ParseBaseUrl("https://api.openai.com/v1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->tls);
  EXPECT_EQ(t->host, "api.openai.com");
  EXPECT_EQ(t->port, "443");
  EXPECT_EQ(t->base_path, "/v1");
  EXPECT_EQ(t->host_header, "api.openai.com");
  EXPECT_EQ(t->pool_key, "https://api.openai.com:443");
}

TEST(ParseBaseUrl, PlainWithPortAndTrailingSlash) {
  auto t = ParseBaseUrl("http://127.0.0.1:9090/v1/");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->tls);
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, "9090");
  EXPECT_EQ(t->base_path, "/v1");
  EXPECT_EQ(t->host_header, "127.0.0.1:9090");
  EXPECT_EQ(t->pool_key, "http://127.0.0.1:9090");

  t = ParseBaseUrl("HTTP://localhost:80");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->base_path, "");
  EXPECT_EQ(t->host_header, "localhost") << "default ports are not repeated in Host";
}

TEST(ParseBaseUrl, Ipv6) {
  auto t = ParseBaseUrl("http://[::1]:8000/openai/v1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->host_header, "[::1]:8000");
  EXPECT_EQ(t->base_path, "/openai/v1");
}

TEST(ParseBaseUrl, Rejects) {
  for (const char* bad :
       {"", "not a url", "ftp://host/v1", "https://user:pw@host/v1", "https://host/v1?x=1",
        "https://host/v1#f", "http:///v1", "http://host:0/v1", "http://host:99999/v1"}) {
    auto t = ParseBaseUrl(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(UpstreamErrorKindName, Names) {
  EXPECT_EQ(UpstreamErrorKindName(UpstreamErrorKind::kConnect), "connect");
  EXPECT_EQ(UpstreamErrorKindName(UpstreamErrorKind::kTimeout), "timeout");
  EXPECT_EQ(UpstreamErrorKindName(UpstreamErrorKind::kTls), "tls");
}

}  // namespace
}  // namespace tollgate::gateway
