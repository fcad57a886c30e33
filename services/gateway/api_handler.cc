#include "services/gateway/api_handler.h"

#include "absl/strings/str_cat.h"
#include "boost/json/serialize.hpp"
#include "boost/url/pct_string_view.hpp"
#include "services/common/metrics.h"
#include "services/gateway/http_util.h"

namespace tollgate::gateway {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

constexpr std::string_view kChat = "/v1/chat/completions";
constexpr std::string_view kMessages = "/v1/messages";
constexpr std::string_view kEmbeddings = "/v1/embeddings";
constexpr std::string_view kModels = "/v1/models";
constexpr std::string_view kModelsPrefix = "/v1/models/";
constexpr std::string_view kModelRoute = "/v1/models/{id}";
constexpr std::string_view kHealthz = "/healthz";
constexpr std::string_view kReadyz = "/readyz";
constexpr std::string_view kMetrics = "/metrics";

json::object ModelObject(std::string_view id, const v1::ModelInfo& model) {
  json::object o;
  o["id"] = id;
  o["object"] = "model";
  o["created"] = model.created();
  o["owned_by"] =
      model.owned_by().empty() ? std::string_view("tollgate") : std::string_view(model.owned_by());
  return o;
}

// Percent-decodes a path segment; nullopt when malformed.
std::optional<std::string> DecodeSegment(std::string_view segment) {
  auto decoded = boost::urls::make_pct_string_view(segment);
  if (!decoded) return std::nullopt;
  return decoded->decode();
}

}  // namespace

ApiHandler::ApiHandler(ChatHandler* chat, const KeyStore* keys, RouterClient* router,
                       GatewayMetrics* metrics)
    : chat_(chat), keys_(keys), router_(router), metrics_(metrics) {}

std::string_view ApiHandler::RouteLabel(std::string_view path) {
  for (std::string_view known :
       {kChat, kMessages, kEmbeddings, kModels, kHealthz, kReadyz, kMetrics}) {
    if (path == known) return known;
  }
  if (path.size() > kModelsPrefix.size() && path.substr(0, kModelsPrefix.size()) == kModelsPrefix) {
    return kModelRoute;
  }
  return "other";
}

void ApiHandler::OnRejected(std::string_view target, int status) {
  metrics_->RecordRequest(RouteLabel(RequestPath(target)), status, "", "", "", "");
}

void ApiHandler::Finish(HttpSession& session, HttpResponse&& response, std::string_view route,
                        std::chrono::steady_clock::time_point start, std::string_view team) {
  metrics_->RecordRequest(route, response.result_int(), "", "", "", team);
  metrics_->ObserveRequestDuration(
      route, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  session.Reply(std::move(response));
}

void ApiHandler::Handle(std::shared_ptr<HttpSession> session, HttpRequest request) {
  const std::string_view path = RequestPath(request.target());
  const std::string_view route = RouteLabel(path);
  const http::verb method = request.method();
  const bool keep_alive = request.keep_alive();
  const auto start = session->request_start();
  const bool get = method == http::verb::get || method == http::verb::head;

  auto method_not_allowed = [&](std::string_view allow) {
    HttpResponse response = ErrorResponse(
        405, "invalid_request_error", "method_not_allowed", "",
        absl::StrCat("Method ", std::string(request.method_string()), " is not allowed on ",
                     std::string(path), "; use ", std::string(allow), "."),
        keep_alive);
    response.set(http::field::allow, allow);
    Finish(*session, std::move(response), route, start);
  };

  if (route == kChat || route == kMessages || route == kEmbeddings) {
    if (method != http::verb::post) return method_not_allowed("POST");
    if (ledger_ != nullptr && !ledger_->Admitting()) {
      ledger_->CountRejected();
      HttpResponse response = ErrorResponse(
          503, "server_error", "spool_full", "",
          "The gateway cannot record usage right now (its usage spool is full); retry shortly.",
          keep_alive);
      response.set(http::field::retry_after, "5");
      Finish(*session, std::move(response), route, start);
      return;
    }
    const ChatIngress ingress = route == kMessages     ? ChatIngress::kMessages
                                : route == kEmbeddings ? ChatIngress::kEmbeddings
                                                       : ChatIngress::kChatCompletions;
    chat_->Handle(std::move(session), std::move(request), ingress);
    return;
  }
  if (route == kModels || route == kModelRoute) {
    if (method != http::verb::get) return method_not_allowed("GET");
    std::string id;
    if (route == kModelRoute) {
      std::optional<std::string> decoded = DecodeSegment(path.substr(kModelsPrefix.size()));
      if (!decoded || decoded->empty()) {
        Finish(*session,
               ErrorResponse(400, "invalid_request_error", "invalid_request", "model",
                             "The model id in the path is malformed.", keep_alive),
               route, start);
        return;
      }
      id = std::move(*decoded);
    }
    Models(std::move(session), std::move(request), std::move(id));
    return;
  }
  if (route == kHealthz || route == kReadyz || route == kMetrics) {
    if (!get) return method_not_allowed("GET, HEAD");
    HttpResponse response;
    if (route == kHealthz) {
      response = JsonResponse(200, R"({"status":"ok"})", keep_alive);
    } else if (route == kReadyz) {
      if (session->draining()) {
        response = JsonResponse(503, R"({"status":"draining"})", keep_alive);
      } else if (!router_->Ready()) {
        response = JsonResponse(503, R"({"status":"router unavailable"})", keep_alive);
      } else {
        response = JsonResponse(200, R"({"status":"ready"})", keep_alive);
      }
    } else {
      response = HttpResponse(http::status::ok, 11);
      response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      response.keep_alive(keep_alive);
      metrics_->UpdateLogQueue();
      response.body() = SerializeMetrics(*metrics_->registry());
    }
    if (method == http::verb::head) response.body().clear();
    Finish(*session, std::move(response), route, start);
    return;
  }
  Finish(*session,
         ErrorResponse(404, "invalid_request_error", "unknown_url", "",
                       absl::StrCat("Invalid URL (", std::string(request.method_string()), " ",
                                    std::string(path), ")."),
                       keep_alive),
         route, start);
}

void ApiHandler::Models(std::shared_ptr<HttpSession> session, HttpRequest request,
                        std::string model_id) {
  const std::string_view route = model_id.empty() ? kModels : kModelRoute;
  const auto start = session->request_start();
  const bool keep_alive = request.keep_alive();
  // Anthropic clients send their key in x-api-key.
  std::string authorization(request[http::field::authorization]);
  if (authorization.empty() && request.find("x-api-key") != request.end()) {
    authorization = absl::StrCat("Bearer ", std::string(request["x-api-key"]));
  }
  absl::StatusOr<ApiKeyInfo> key = Authenticate(*keys_, authorization);
  if (!key.ok()) {
    Finish(*session,
           ErrorResponse(401, "invalid_request_error", "invalid_api_key", "",
                         std::string(key.status().message()), keep_alive),
           route, start);
    return;
  }
  HttpSession* raw = session.get();
  // The callback (and with it the session) is moved onto the session's executor: the session is
  // released on its own thread.
  router_->ListModels(raw->executor(), [this, session = std::move(session), route, start,
                                        keep_alive, team = key->team,
                                        model_id = std::move(model_id)](
                                           absl::StatusOr<v1::ListModelsResponse> models) mutable {
    if (!models.ok()) {
      HttpResponse response =
          ErrorResponse(503, "server_error", "router_unavailable", "",
                        "The routing service is unavailable; retry shortly.", keep_alive);
      response.set(http::field::retry_after, "1");
      Finish(*session, std::move(response), route, start, team);
      return;
    }
    if (model_id.empty()) {
      json::array data;
      for (const v1::ModelInfo& model : models->models()) {
        data.push_back(ModelObject(model.id(), model));
      }
      json::object list;
      list["object"] = "list";
      list["data"] = std::move(data);
      Finish(*session, JsonResponse(200, json::serialize(list), keep_alive), route, start, team);
      return;
    }
    for (const v1::ModelInfo& model : models->models()) {
      bool match = model.id() == model_id;
      for (const std::string& alias : model.aliases()) match = match || alias == model_id;
      if (match) {
        Finish(*session,
               JsonResponse(200, json::serialize(ModelObject(model_id, model)), keep_alive), route,
               start, team);
        return;
      }
    }
    Finish(*session,
           ErrorResponse(404, "invalid_request_error", "model_not_found", "model",
                         absl::StrCat("The model '", model_id, "' does not exist."), keep_alive),
           route, start, team);
  });
}

}  // namespace tollgate::gateway
