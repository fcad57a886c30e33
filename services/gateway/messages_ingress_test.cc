#include "services/gateway/messages_ingress.h"

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"
#include "services/gateway/openai_dialect.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

std::string ReadTestdata(const std::string& name) {
  const std::string path =
      absl::StrCat(TOLLGATE_SOURCE_DIR "/services/gateway/testdata/messages/", name);
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json::object Translate(std::string_view anthropic_request) {
  absl::StatusOr<json::object> chat = MessagesToChatRequest(json::parse(anthropic_request));
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *chat : json::object();
}

v1::TokenUsage Usage(int64_t input, int64_t cached, int64_t write_5m, int64_t write_1h,
                     int64_t output, int64_t reasoning) {
  v1::TokenUsage u;
  u.set_input_tokens(input);
  u.set_cached_input_tokens(cached);
  u.set_cache_write_5m_tokens(write_5m);
  u.set_cache_write_1h_tokens(write_1h);
  u.set_output_tokens(output);
  u.set_reasoning_tokens(reasoning);
  return u;
}

// ---------------------------------------------------------------------------------------------
// Requests.

TEST(MessagesRequestTest, GoldenEveryBlockTypeToolsSystemCacheControlThinking) {
  json::object chat = Translate(ReadTestdata("request_full.json"));
  const json::value want = json::parse(ReadTestdata("request_full.chat.json"));
  EXPECT_EQ(json::value(chat), want) << json::serialize(chat);

  // The internal form is what the chat pipeline accepts.
  absl::StatusOr<ChatRequestInfo> info = ParseChatRequest(json::value(chat));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model, "claude-sonnet-4-20250514");
  EXPECT_TRUE(info->stream);
  EXPECT_TRUE(info->client_wants_usage);
  EXPECT_EQ(info->max_output_tokens, 1024);
  EXPECT_EQ(info->user, "user-42");
  EXPECT_EQ(info->required_capabilities, (std::vector<std::string>{"chat", "tools", "vision"}));
}

TEST(MessagesRequestTest, MinimalRequestIsPlainOpenAi) {
  json::object chat =
      Translate(R"({"model":"m","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]})");
  EXPECT_EQ(json::serialize(chat),
            R"({"model":"m","messages":[{"role":"user","content":"Hi"}],"max_tokens":16})");
  absl::StatusOr<ChatRequestInfo> info = ParseChatRequest(json::value(chat));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->stream);
  EXPECT_EQ(info->max_output_tokens, 16);
}

TEST(MessagesRequestTest, SingleTextBlockBecomesStringContent) {
  json::object chat = Translate(R"({"model":"m","max_tokens":1,"system":"Be brief.",
      "messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},
                  {"role":"assistant","content":[{"type":"text","text":"Yo"}]}]})");
  EXPECT_EQ(json::serialize(chat["messages"]),
            R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},)"
            R"({"role":"assistant","content":"Yo"}])");
}

TEST(MessagesRequestTest, ToolChoiceVariants) {
  const std::string tools = R"("tools":[{"name":"f","input_schema":{"type":"object"}}])";
  struct Case {
    std::string choice;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"type":"auto"})", R"("auto")"},
           {R"({"type":"any"})", R"("required")"},
           {R"({"type":"none"})", R"("none")"},
           {R"({"type":"tool","name":"f"})", R"({"type":"function","function":{"name":"f"}})"},
       }) {
    json::object chat = Translate(
        absl::StrCat(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)",
                     tools, R"(,"tool_choice":)", c.choice, "}"));
    EXPECT_EQ(json::serialize(chat["tool_choice"]), c.want) << c.choice;
    EXPECT_FALSE(chat.contains("parallel_tool_calls")) << c.choice;
  }
  json::object chat = Translate(
      absl::StrCat(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)",
                   tools, R"(,"tool_choice":{"type":"any","disable_parallel_tool_use":true}})"));
  EXPECT_EQ(chat["tool_choice"], "required");
  EXPECT_EQ(chat["parallel_tool_calls"], false);
}

TEST(MessagesRequestTest, ThinkingVariants) {
  const std::string base =
      R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)";
  EXPECT_FALSE(Translate(base + R"("thinking":{"type":"disabled"}})").contains("thinking"));
  EXPECT_EQ(json::serialize(Translate(base + R"("thinking":{"type":"adaptive"}})")["thinking"]),
            R"({"type":"adaptive"})");
  EXPECT_EQ(json::serialize(Translate(
                base + R"("thinking":{"type":"enabled","budget_tokens":1024,"display":"omitted"}})")
                                ["thinking"]),
            R"({"type":"enabled","budget_tokens":1024,"display":"omitted"})");
}

TEST(MessagesRequestTest, StructuredOutputBecomesStrictJsonSchema) {
  json::object chat = Translate(R"({"model":"m","max_tokens":1,
      "messages":[{"role":"user","content":"x"}],
      "output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}})");
  EXPECT_EQ(json::serialize(chat["response_format"]),
            R"({"type":"json_schema","json_schema":{"name":"output","schema":{"type":"object"},)"
            R"("strict":true}})");
  absl::StatusOr<ChatRequestInfo> info = ParseChatRequest(json::value(chat));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->required_capabilities, (std::vector<std::string>{"chat", "json_schema"}));
}

TEST(MessagesRequestTest, TopLevelCacheControlMarksTheLastBlock) {
  json::object chat = Translate(R"({"model":"m","max_tokens":1,
      "cache_control":{"type":"ephemeral","ttl":"1h"},
      "messages":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},
                  {"role":"user","content":"last"}]})");
  EXPECT_EQ(json::serialize(chat["messages"]),
            R"([{"role":"user","content":"first"},{"role":"assistant","content":"ok"},)"
            R"({"role":"user","content":[{"type":"text","text":"last","cache_control":)"
            R"({"type":"ephemeral","ttl":"1h"}}]}])");
  // A last message without content parts (tool calls only) carries it on the message.
  chat = Translate(R"({"model":"m","max_tokens":1,"cache_control":{"type":"ephemeral"},
      "messages":[{"role":"user","content":"x"},{"role":"assistant","content":[
        {"type":"tool_use","id":"t1","name":"f","input":{}}]}]})");
  EXPECT_EQ(json::serialize(chat["messages"].at(1).at("cache_control")), R"({"type":"ephemeral"})");
}

TEST(MessagesRequestTest, CacheControlOnTheLastToolUseIsTheMessages) {
  json::object chat = Translate(R"({"model":"m","max_tokens":1,"messages":[
      {"role":"user","content":"x"},
      {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1},
                                      "cache_control":{"type":"ephemeral"}}]}]})");
  EXPECT_EQ(json::serialize(chat["messages"].at(1)),
            R"({"role":"assistant","cache_control":{"type":"ephemeral"},"content":null,)"
            R"("tool_calls":[{"id":"t1","type":"function","function":{"name":"f",)"
            R"("arguments":"{\"a\":1}"}}]})");
}

TEST(MessagesRequestTest, SystemRoleMessageAndThinkingWithoutSignature) {
  json::object chat = Translate(R"({"model":"m","max_tokens":1,"messages":[
      {"role":"user","content":"x"},{"role":"system","content":"Now answer in French."},
      {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":""},
                                     {"type":"text","text":"Oui"}]}]})");
  EXPECT_EQ(json::serialize(chat["messages"]),
            R"([{"role":"user","content":"x"},{"role":"system","content":"Now answer in French."},)"
            R"({"role":"assistant","reasoning_content":"hm","content":"Oui"}])");
}

TEST(MessagesRequestTest, ToolResultBetweenTextKeepsOrder) {
  json::object chat = Translate(R"({"model":"m","max_tokens":1,"messages":[
      {"role":"user","content":[{"type":"text","text":"before"},
        {"type":"tool_result","tool_use_id":"t1"},{"type":"text","text":"after"}]}]})");
  EXPECT_EQ(
      json::serialize(chat["messages"]),
      R"([{"role":"user","content":"before"},{"role":"tool","tool_call_id":"t1","content":""},)"
      R"({"role":"user","content":"after"}])");
}

struct ErrorCase {
  std::string request;  // with the placeholder members below
  std::string param;
};

TEST(MessagesRequestTest, ErrorsAre400NamingTheField) {
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  auto req = [&](const std::string& extra) {
    return absl::StrCat(R"({"model":"m","max_tokens":8,)", msgs, extra, "}");
  };
  auto with_content = [&](const std::string& role, const std::string& blocks) {
    return absl::StrCat(R"({"model":"m","max_tokens":8,"messages":[{"role":")", role,
                        R"(","content":)", blocks, "}]}");
  };
  const std::vector<ErrorCase> cases = {
      {"[]", ""},
      {absl::StrCat(R"({"max_tokens":8,)", msgs, "}"), "model"},
      {absl::StrCat(R"({"model":7,"max_tokens":8,)", msgs, "}"), "model"},
      {absl::StrCat(R"({"model":"m",)", msgs, "}"), "max_tokens"},
      {absl::StrCat(R"({"model":"m","max_tokens":0,)", msgs, "}"), "max_tokens"},
      {absl::StrCat(R"({"model":"m","max_tokens":1.5,)", msgs, "}"), "max_tokens"},
      {absl::StrCat(R"({"model":"m","max_tokens":"8",)", msgs, "}"), "max_tokens"},
      {R"({"model":"m","max_tokens":8})", "messages"},
      {R"({"model":"m","max_tokens":8,"messages":[]})", "messages"},
      {R"({"model":"m","max_tokens":8,"messages":["x"]})", "messages[0]"},
      {R"({"model":"m","max_tokens":8,"messages":[{"role":"tool","content":"x"}]})",
       "messages[0].role"},
      {R"({"model":"m","max_tokens":8,"messages":[{"role":"user"}]})", "messages[0].content"},
      {with_content("user", "7"), "messages[0].content"},
      {with_content("user", "[]"), "messages[0].content"},
      {R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x","name":"n"}]})",
       "messages[0].name"},
      {with_content("user", R"([{"type":"search_result","source":"s","title":"t","content":[]}])"),
       "messages[0].content[0].type"},
      {with_content("user", R"([{"text":"no type"}])"), "messages[0].content[0].type"},
      {with_content("user", R"([{"type":"text"}])"), "messages[0].content[0].text"},
      {with_content("user",
                    R"([{"type":"text","text":"x","citations":[{"type":"char_location"}]}])"),
       "messages[0].content[0].citations"},
      {with_content("user",
                    R"([{"type":"text","text":"x","cache_control":{"type":"persistent"}}])"),
       "messages[0].content[0].cache_control.type"},
      {with_content(
           "user",
           R"([{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"2h"}}])"),
       "messages[0].content[0].cache_control.ttl"},
      {with_content("user", R"([{"type":"image","source":{"type":"file","file_id":"f"}}])"),
       "messages[0].content[0].source.type"},
      {with_content("user", R"([{"type":"image","source":{"type":"base64","data":"x"}}])"),
       "messages[0].content[0].source.media_type"},
      {with_content(
           "user",
           R"([{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}])"),
       "messages[0].content[0].source.type"},
      {with_content(
           "user",
           R"([{"type":"document","title":"T","source":{"type":"base64","media_type":"application/pdf","data":"x"}}])"),
       "messages[0].content[0].title"},
      {with_content(
           "user",
           R"([{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"u"}}]}])"),
       "messages[0].content[0].content[0].type"},
      {with_content("user", R"([{"type":"tool_result","content":"x"}])"),
       "messages[0].content[0].tool_use_id"},
      {with_content("user", R"([{"type":"tool_result","tool_use_id":"t","is_error":"yes"}])"),
       "messages[0].content[0].is_error"},
      {with_content("user", R"([{"type":"thinking","thinking":"x","signature":"s"}])"),
       "messages[0].content[0].type"},
      {with_content("assistant", R"([{"type":"redacted_thinking","data":"x"}])"),
       "messages[0].content[0].type"},
      {with_content("assistant",
                    R"([{"type":"thinking","thinking":"a"},{"type":"thinking","thinking":"b"}])"),
       "messages[0].content[1]"},
      {with_content("assistant", R"([{"type":"tool_use","id":"t","name":"f"}])"),
       "messages[0].content[0].input"},
      {with_content("assistant", R"([{"type":"tool_use","id":"t","name":"f","input":[1]}])"),
       "messages[0].content[0].input"},
      {with_content(
           "assistant",
           R"([{"type":"tool_use","id":"t","name":"f","input":{},"cache_control":{"type":"ephemeral"}},{"type":"text","text":"x"}])"),
       "messages[0].content[0].cache_control"},
      {with_content("assistant",
                    R"([{"type":"server_tool_use","id":"s","name":"web_search","input":{}}])"),
       "messages[0].content[0].type"},
      {with_content("assistant", R"([{"type":"image","source":{"type":"url","url":"u"}}])"),
       "messages[0].content[0].type"},
      {req(R"(,"system":7)"), "system"},
      {req(R"(,"system":[{"type":"image","source":{"type":"url","url":"u"}}])"), "system[0].type"},
      {req(R"(,"frequency_penalty":1)"), "frequency_penalty"},
      {req(R"(,"container":"c")"), "container"},
      {req(R"(,"mcp_servers":[])"), "mcp_servers"},
      {req(R"(,"output_config":{"effort":"high"})"), "output_config.effort"},
      {req(R"(,"output_config":{"format":{"type":"json_schema"}})"), "output_config.format.schema"},
      {req(R"(,"temperature":1.5)"), "temperature"},
      {req(R"(,"top_p":"x")"), "top_p"},
      {req(R"(,"top_k":-1)"), "top_k"},
      {req(R"(,"stop_sequences":"END")"), "stop_sequences"},
      {req(R"(,"stop_sequences":["a",1])"), "stop_sequences[1]"},
      {req(R"(,"stream":"yes")"), "stream"},
      {req(R"(,"metadata":{"user_id":5})"), "metadata.user_id"},
      {req(R"(,"metadata":{"session":"s"})"), "metadata.session"},
      {req(R"(,"service_tier":"priority")"), "service_tier"},
      {req(R"(,"tools":{})"), "tools"},
      {req(R"(,"tools":[{"type":"web_search_20250305","name":"web_search"}])"), "tools[0].type"},
      {req(R"(,"tools":[{"name":"f"}])"), "tools[0].input_schema"},
      {req(R"(,"tools":[{"input_schema":{}}])"), "tools[0].name"},
      {req(R"(,"tools":[{"name":"f","input_schema":{},"defer_loading":true}])"),
       "tools[0].defer_loading"},
      {req(R"(,"tool_choice":{"type":"some"})"), "tool_choice.type"},
      {req(R"(,"tool_choice":{"type":"any"})"), "tool_choice"},
      {req(R"(,"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"tool"})"),
       "tool_choice.name"},
      {req(R"(,"thinking":{"type":"enabled"})"), "thinking.budget_tokens"},
      {req(R"(,"thinking":{"type":"enabled","budget_tokens":0})"), "thinking.budget_tokens"},
      {req(R"(,"thinking":{"type":"on"})"), "thinking.type"},
      {req(R"(,"cache_control":{"type":"ephemeral","ttl":"1d"})"), "cache_control.ttl"},
      {with_content("assistant",
                    R"([{"type":"tool_use","id":"t","name":"f","input":{"a":1e999}}])"),
       "messages"},
      {req(R"(,"":1)"), R"("")"},
  };
  for (const ErrorCase& c : cases) {
    absl::StatusOr<json::object> chat = MessagesToChatRequest(json::parse(c.request));
    ASSERT_FALSE(chat.ok()) << c.request;
    EXPECT_EQ(chat.status().code(), absl::StatusCode::kInvalidArgument) << c.request;
    EXPECT_EQ(ParamOf(chat.status()), c.param) << c.request << " -> " << chat.status();
    EXPECT_NE(chat.status().message().find(c.param), absl::string_view::npos) << chat.status();
  }
}

TEST(MessagesRequestTest, NullOptionalFieldsAreAbsent) {
  json::object chat = Translate(R"({"model":"m","max_tokens":8,
      "messages":[{"role":"user","content":"x"}],"system":null,"tools":null,"tool_choice":null,
      "thinking":null,"stop_sequences":null,"temperature":null,"metadata":{"user_id":null},
      "container":null,"stream":false})");
  EXPECT_EQ(json::serialize(chat),
            R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":8})");
}

// ---------------------------------------------------------------------------------------------
// Non-stream responses.

json::value Message(std::string_view openai_body, const v1::TokenUsage& usage) {
  absl::StatusOr<std::string> message = ChatResponseToMessage(openai_body, usage);
  EXPECT_TRUE(message.ok()) << message.status();
  return message.ok() ? json::parse(*message) : json::value();
}

TEST(MessagesResponseTest, GoldenThinkingTextAndParallelToolCalls) {
  const std::string body = R"({"id":"chatcmpl-abc","object":"chat.completion","created":1,
      "model":"up-model","choices":[{"index":0,"finish_reason":"tool_calls","message":{
        "role":"assistant","content":"Checking.","reasoning_content":"Two calls.",
        "reasoning_signature":"sig-1","tool_calls":[
          {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
          {"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]}}],
      "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})";
  const json::value got = Message(body, Usage(3000, 2000, 100, 400, 75, 30));
  const json::value want = json::parse(R"({"id":"msg_abc","type":"message","role":"assistant",
      "model":"up-model","content":[
        {"type":"thinking","thinking":"Two calls.","signature":"sig-1"},
        {"type":"text","text":"Checking."},
        {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
        {"type":"tool_use","id":"call_2","name":"get_time","input":{}}],
      "stop_reason":"tool_use","stop_sequence":null,
      "usage":{"input_tokens":500,"cache_creation_input_tokens":500,"cache_read_input_tokens":2000,
               "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":400},
               "output_tokens":75,"output_tokens_details":{"thinking_tokens":30}}})");
  EXPECT_EQ(got, want) << json::serialize(got);
}

TEST(MessagesResponseTest, UsageIsDerivedExactlyForEveryTokenType) {
  const std::string body =
      R"({"id":"chatcmpl-1","model":"m","choices":[{"finish_reason":"stop","message":{"content":"hi"}}]})";
  struct Case {
    v1::TokenUsage usage;
    std::string want;
  };
  const std::vector<Case> cases = {
      {Usage(0, 0, 0, 0, 0, 0),
       R"({"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},)"
       R"("output_tokens":0})"},
      {Usage(120, 0, 0, 0, 40, 0),
       R"({"input_tokens":120,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},)"
       R"("output_tokens":40})"},
      {Usage(2120, 2000, 0, 0, 40, 0),  // cache read
       R"({"input_tokens":120,"cache_creation_input_tokens":0,"cache_read_input_tokens":2000,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},)"
       R"("output_tokens":40})"},
      {Usage(1120, 0, 1000, 0, 40, 0),  // 5-minute write
       R"({"input_tokens":120,"cache_creation_input_tokens":1000,"cache_read_input_tokens":0,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":0},)"
       R"("output_tokens":40})"},
      {Usage(1120, 0, 0, 1000, 40, 0),  // 1-hour write
       R"({"input_tokens":120,"cache_creation_input_tokens":1000,"cache_read_input_tokens":0,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":1000},)"
       R"("output_tokens":40})"},
      {Usage(120, 0, 0, 0, 40, 25),  // reasoning
       R"({"input_tokens":120,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},)"
       R"("output_tokens":40,"output_tokens_details":{"thinking_tokens":25}})"},
      {Usage(10, 8, 5, 0, 1, 0),  // inconsistent input (never negative)
       R"({"input_tokens":0,"cache_creation_input_tokens":5,"cache_read_input_tokens":8,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":5,"ephemeral_1h_input_tokens":0},)"
       R"("output_tokens":1})"},
  };
  for (const Case& c : cases) {
    const json::value got = Message(body, c.usage);
    EXPECT_EQ(json::serialize(got.at("usage")), c.want) << c.usage.ShortDebugString();
    // Anthropic's total input = input + cache creation + cache read = the normalised input.
    const json::object& u = got.at("usage").as_object();
    if (c.usage.input_tokens() >= c.usage.cached_input_tokens() + c.usage.cache_write_5m_tokens() +
                                      c.usage.cache_write_1h_tokens()) {
      EXPECT_EQ(u.at("input_tokens").as_int64() + u.at("cache_creation_input_tokens").as_int64() +
                    u.at("cache_read_input_tokens").as_int64(),
                c.usage.input_tokens());
    }
  }
}

TEST(MessagesResponseTest, StopReasons) {
  struct Case {
    std::string choice;
    std::string stop_reason;
    std::string stop_sequence;  // JSON
  };
  for (const Case& c : std::vector<Case>{
           {R"("finish_reason":"stop","message":{"content":"a"})", "end_turn", "null"},
           {R"("finish_reason":"length","message":{"content":"a"})", "max_tokens", "null"},
           {R"("finish_reason":"content_filter","message":{"content":""})", "refusal", "null"},
           {R"("finish_reason":"stop","message":{"content":null,"refusal":"I can't."})", "refusal",
            "null"},
           {R"("finish_reason":"stop","stop_sequence":"END","message":{"content":"a"})",
            "stop_sequence", R"("END")"},
           {R"("finish_reason":null,"message":{"content":"a"})", "end_turn", "null"},
       }) {
    const json::value got = Message(
        absl::StrCat(R"({"id":"x","model":"m","choices":[{)", c.choice, "}]}"), v1::TokenUsage());
    EXPECT_EQ(got.at("stop_reason"), json::value(c.stop_reason)) << c.choice;
    EXPECT_EQ(json::serialize(got.at("stop_sequence")), c.stop_sequence) << c.choice;
  }
  // A refusal is the text of the answer.
  const json::value refusal = Message(
      R"({"id":"x","model":"m","choices":[{"finish_reason":"stop","message":{"content":null,"refusal":"No."}}]})",
      v1::TokenUsage());
  EXPECT_EQ(json::serialize(refusal.at("content")), R"([{"type":"text","text":"No."}])");
}

TEST(MessagesResponseTest, EmptyAnswerHasNoBlocksAndIdsAreDerived) {
  const json::value got = Message(
      R"({"id":"chatcmpl-xyz","model":"m","choices":[{"finish_reason":"stop","message":{"role":"assistant","content":""}}]})",
      v1::TokenUsage());
  EXPECT_EQ(json::serialize(got.at("content")), "[]");
  EXPECT_EQ(got.at("id"), "msg_xyz");
  EXPECT_EQ(MessageIdFromChatId("chatcmpl-1"), "msg_1");
  EXPECT_EQ(MessageIdFromChatId("msg_01"), "msg_01");
  EXPECT_EQ(MessageIdFromChatId("gen-7"), "msg_gen-7");
}

TEST(MessagesResponseTest, ModelOverride) {
  const std::string body =
      R"({"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","choices":[{"finish_reason":"stop","message":{"content":"hi"}}]})";
  EXPECT_EQ(Message(body, v1::TokenUsage()).at("model"), "gpt-4o-2024-08-06");
  absl::StatusOr<std::string> named = ChatResponseToMessage(body, v1::TokenUsage(), "gpt-4o");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(json::parse(*named).at("model"), "gpt-4o");
}

TEST(MessagesResponseTest, BrokenBodiesAreDataLoss) {
  for (
      const char* body : {
          "not json",
          R"({"choices":[]})",
          R"({"choices":[{"index":0}]})",
          R"({"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]}}]})",
          R"({"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}}]})",
          // Parses as infinity, which has no JSON serialisation.
          R"({"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{\"a\":1e999}"}}]}}]})",
      }) {
    absl::StatusOr<std::string> got = ChatResponseToMessage(body, v1::TokenUsage());
    ASSERT_FALSE(got.ok()) << body;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << body;
  }
}

// An OpenAI answer -> Anthropic message -> back into a request as the assistant turn gives the
// same OpenAI assistant message (content, reasoning, signature, tool calls).
TEST(MessagesRoundTripTest, AssistantTurnSurvivesBothDirections) {
  const std::string assistant =
      R"({"role":"assistant","content":"Checking.","reasoning_content":"Plan.",)"
      R"("reasoning_signature":"sig","tool_calls":[{"id":"call_1","type":"function",)"
      R"("function":{"name":"f","arguments":"{\"a\":[1,2],\"b\":{\"c\":null}}"}}]})";
  const json::value message = Message(
      absl::StrCat(
          R"({"id":"chatcmpl-1","model":"m","choices":[{"finish_reason":"tool_calls","message":)",
          assistant, "}]}"),
      v1::TokenUsage());
  json::object request;
  request["model"] = "m";
  request["max_tokens"] = 10;
  json::array messages;
  messages.push_back(json::parse(R"({"role":"user","content":"x"})"));
  json::object turn;
  turn["role"] = "assistant";
  turn["content"] = message.at("content");
  messages.push_back(std::move(turn));
  request["messages"] = std::move(messages);
  json::object chat = Translate(json::serialize(request));
  json::object back = chat["messages"].at(1).as_object();
  json::object want = json::parse(assistant).as_object();
  EXPECT_EQ(json::value(back), json::value(want)) << json::serialize(back);
}

// The request translation keeps every tool_use id so that tool results pair with their calls.
TEST(MessagesRoundTripTest, ToolConversationPairsIds) {
  json::object chat = Translate(ReadTestdata("request_full.json"));
  const json::array& messages = chat["messages"].as_array();
  std::vector<std::string> call_ids;
  std::vector<std::string> result_ids;
  for (const json::value& m : messages) {
    if (const json::value* calls = m.as_object().if_contains("tool_calls")) {
      for (const json::value& c : calls->as_array()) {
        call_ids.emplace_back(c.at("id").as_string());
      }
    }
    if (m.at("role") == "tool") result_ids.emplace_back(m.at("tool_call_id").as_string());
  }
  EXPECT_EQ(call_ids, result_ids);
}

// ---------------------------------------------------------------------------------------------
// Streams.

struct Event {
  std::string type;
  json::value data;
};

// Splits Anthropic SSE bytes into events, checking the framing ("event: X\ndata: J\n\n") and
// that each data's "type" is the event name.
std::vector<Event> ParseEvents(std::string_view sse) {
  std::vector<Event> events;
  while (!sse.empty()) {
    const size_t end = sse.find("\n\n");
    EXPECT_NE(end, std::string_view::npos) << "unterminated event: " << sse;
    if (end == std::string_view::npos) break;
    const std::string_view event = sse.substr(0, end);
    sse.remove_prefix(end + 2);
    const size_t nl = event.find('\n');
    EXPECT_EQ(event.substr(0, 7), "event: ");
    EXPECT_EQ(event.substr(nl + 1, 6), "data: ");
    Event e;
    e.type = std::string(event.substr(7, nl - 7));
    e.data = json::parse(event.substr(nl + 7));
    EXPECT_EQ(e.data.at("type"), json::value(e.type));
    events.push_back(std::move(e));
  }
  return events;
}

// Anthropic's ordering rules: message_start first; blocks sequential (start i, deltas i,
// stop i, start i+1 ...); message_delta then message_stop last.
void ExpectWellFormedStream(const std::vector<Event>& events) {
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().type, "message_start");
  int open = -1;
  int next = 0;
  bool delta_seen = false;
  for (size_t i = 1; i < events.size(); ++i) {
    const Event& e = events[i];
    if (e.type == "content_block_start") {
      EXPECT_EQ(open, -1) << i;
      EXPECT_EQ(e.data.at("index").as_int64(), next) << i;
      open = next++;
    } else if (e.type == "content_block_delta") {
      EXPECT_EQ(e.data.at("index").as_int64(), open) << i;
    } else if (e.type == "content_block_stop") {
      EXPECT_EQ(e.data.at("index").as_int64(), open) << i;
      open = -1;
    } else if (e.type == "message_delta") {
      EXPECT_EQ(open, -1);
      delta_seen = true;
    } else if (e.type == "message_stop") {
      EXPECT_TRUE(delta_seen);
      EXPECT_EQ(i, events.size() - 1);
    } else {
      EXPECT_TRUE(e.type == "ping" || e.type == "error") << e.type;
    }
  }
}

std::string Encode(MessagesStreamEncoder& encoder, const std::vector<std::string>& chunks) {
  std::string out;
  for (const std::string& c : chunks) encoder.OnChunk(c, out);
  return out;
}

std::string Chunk(std::string_view delta, std::string_view finish = "null") {
  return absl::StrCat(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m",)",
                      R"("choices":[{"index":0,"delta":)", std::string(delta),
                      R"(,"finish_reason":)", std::string(finish), "}]}");
}

TEST(MessagesStreamTest, GoldenThinkingTextAndParallelToolCalls) {
  std::vector<std::string> chunks;
  std::istringstream in(ReadTestdata("stream_full.openai.jsonl"));
  for (std::string line; std::getline(in, line);) chunks.push_back(line);
  MessagesStreamEncoder encoder("msg_req-1", "claude-sonnet-4-20250514");
  std::string out = Encode(encoder, chunks);
  // The usage chunk is remembered, not forwarded.
  ASSERT_NE(encoder.upstream_usage(), nullptr);
  EXPECT_EQ(encoder.upstream_usage()->input_tokens(), 2100);
  encoder.Finish(Usage(2100, 1500, 200, 300, 60, 12), out);

  const std::vector<Event> got = ParseEvents(out);
  const std::vector<Event> want = ParseEvents(ReadTestdata("stream_full.anthropic.sse"));
  ExpectWellFormedStream(got);
  ASSERT_EQ(got.size(), want.size()) << out;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].type, want[i].type) << "event " << i;
    EXPECT_EQ(got[i].data, want[i].data) << "event " << i << ": " << json::serialize(got[i].data);
  }
  // Byte for byte too (the serialisation is deterministic).
  EXPECT_EQ(out, ReadTestdata("stream_full.anthropic.sse"));

  // Finish is idempotent and nothing follows message_stop.
  std::string more;
  encoder.Finish(Usage(1, 0, 0, 0, 1, 0), more);
  encoder.OnChunk(Chunk(R"({"content":"late"})"), more);
  EXPECT_EQ(more, "");
}

TEST(MessagesStreamTest, TextOnlyStreamEndsWithEndTurn) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out =
      Encode(encoder, {Chunk(R"({"role":"assistant","content":""})"), Chunk(R"({"content":"Hel"})"),
                       Chunk(R"({"content":"lo"})"), Chunk("{}", R"("stop")"), "[DONE]"});
  encoder.Finish(Usage(10, 0, 0, 0, 2, 0), out);
  const std::vector<Event> events = ParseEvents(out);
  ExpectWellFormedStream(events);
  std::vector<std::string> types;
  for (const Event& e : events) types.push_back(e.type);
  EXPECT_EQ(types,
            (std::vector<std::string>{"message_start", "ping", "content_block_start",
                                      "content_block_delta", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(json::serialize(events[6].data),
            R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},)"
            R"("usage":{"input_tokens":10,"cache_creation_input_tokens":0,)"
            R"("cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,)"
            R"("ephemeral_1h_input_tokens":0},"output_tokens":2}})");
}

TEST(MessagesStreamTest, StopReasonsInStreams) {
  struct Case {
    std::string finish_chunk;
    std::string stop_reason;
    std::string stop_sequence;
  };
  for (const Case& c : std::vector<Case>{
           {Chunk("{}", R"("length")"), "max_tokens", "null"},
           {Chunk("{}", R"("content_filter")"), "refusal", "null"},
           {R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_sequence":"END"}]})",
            "stop_sequence", R"("END")"},
           {Chunk(R"({"refusal":"I can't help."})", R"("stop")"), "refusal", "null"},
           {"[DONE]", "end_turn", "null"},  // no finish_reason seen
       }) {
    MessagesStreamEncoder encoder("msg_1", "m");
    std::string out = Encode(encoder, {Chunk(R"({"content":"a"})"), c.finish_chunk});
    encoder.Finish(v1::TokenUsage(), out);
    const std::vector<Event> events = ParseEvents(out);
    ExpectWellFormedStream(events);
    const json::value& delta = events[events.size() - 2].data.at("delta");
    EXPECT_EQ(delta.at("stop_reason"), json::value(c.stop_reason)) << c.finish_chunk;
    EXPECT_EQ(json::serialize(delta.at("stop_sequence")), c.stop_sequence) << c.finish_chunk;
  }
}

// Fragments of parallel calls that arrive interleaved: the second call is held back until the
// first is closed, and each block carries exactly its own arguments.
TEST(MessagesStreamTest, InterleavedParallelToolCallsStaySequential) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out = Encode(
      encoder,
      {Chunk(
           R"({"tool_calls":[{"index":0,"id":"a","function":{"name":"fa","arguments":"{\"x\":"}}]})"),
       Chunk(
           R"({"tool_calls":[{"index":1,"id":"b","function":{"name":"fb","arguments":"{\"y\":"}}]})"),
       Chunk(
           R"({"tool_calls":[{"index":0,"function":{"arguments":"1}"}},{"index":1,"function":{"arguments":"2"}}]})"),
       Chunk(R"({"tool_calls":[{"index":1,"function":{"arguments":"}"}}]})"),
       Chunk("{}", R"("tool_calls")")});
  encoder.Finish(v1::TokenUsage(), out);
  const std::vector<Event> events = ParseEvents(out);
  ExpectWellFormedStream(events);
  // Per block: the tool_use start and the concatenated partial_json.
  std::vector<std::string> starts;
  std::vector<std::string> inputs;
  for (const Event& e : events) {
    if (e.type == "content_block_start") {
      starts.push_back(json::serialize(e.data.at("content_block")));
      inputs.emplace_back();
    }
    if (e.type == "content_block_delta") {
      inputs.back() += std::string(e.data.at("delta").at("partial_json").as_string());
    }
  }
  EXPECT_EQ(starts,
            (std::vector<std::string>{R"({"type":"tool_use","id":"a","name":"fa","input":{}})",
                                      R"({"type":"tool_use","id":"b","name":"fb","input":{}})"}));
  EXPECT_EQ(inputs, (std::vector<std::string>{R"({"x":1})", R"({"y":2})"}));
  EXPECT_EQ(events[events.size() - 2].data.at("delta").at("stop_reason"), "tool_use");
}

// Calls streamed one after another (every known provider) are forwarded fragment by fragment:
// the second call's block starts as soon as its first fragment arrives.
TEST(MessagesStreamTest, SequentialToolCallsAreForwardedLive) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out;
  encoder.OnChunk(
      Chunk(R"({"tool_calls":[{"index":0,"id":"a","function":{"name":"fa","arguments":"{}"}}]})"),
      out);
  out.clear();
  encoder.OnChunk(
      Chunk(
          R"({"tool_calls":[{"index":1,"id":"b","function":{"name":"fb","arguments":"{\"k\""}}]})"),
      out);
  const std::vector<Event> events = ParseEvents(out);
  ASSERT_EQ(events.size(), 3u) << out;
  EXPECT_EQ(events[0].type, "content_block_stop");
  EXPECT_EQ(events[1].type, "content_block_start");
  EXPECT_EQ(events[2].data.at("delta").at("partial_json"), "{\"k\"");
}

TEST(MessagesStreamTest, TextAfterToolsAndSignatureWithoutThinking) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out = Encode(
      encoder,
      {Chunk(R"({"reasoning_signature":"sig-only"})"),
       Chunk(R"({"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]})"),
       Chunk(R"({"content":"done"})"), Chunk("{}", R"("stop")")});
  encoder.Finish(v1::TokenUsage(), out);
  const std::vector<Event> events = ParseEvents(out);
  ExpectWellFormedStream(events);
  std::vector<std::string> blocks;
  for (const Event& e : events) {
    if (e.type == "content_block_start") {
      blocks.emplace_back(e.data.at("content_block").at("type").as_string());
    }
  }
  EXPECT_EQ(blocks, (std::vector<std::string>{"thinking", "tool_use", "text"}));
}

TEST(MessagesStreamTest, MissingIdsAndModelComeFromTheFirstChunk) {
  MessagesStreamEncoder encoder("", "");
  std::string out = Encode(
      encoder,
      {R"({"id":"chatcmpl-zz","model":"up","choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"name":"f","arguments":"{}"}}]}}]})"});
  encoder.Finish(v1::TokenUsage(), out);
  const std::vector<Event> events = ParseEvents(out);
  ExpectWellFormedStream(events);
  EXPECT_EQ(events[0].data.at("message").at("id"), "msg_zz");
  EXPECT_EQ(events[0].data.at("message").at("model"), "up");
  EXPECT_EQ(events[2].data.at("content_block").at("id"), "toolu_msg_zz_3");
  // Without a finish_reason, tool calls mean tool_use.
  EXPECT_EQ(events[events.size() - 2].data.at("delta").at("stop_reason"), "tool_use");
}

TEST(MessagesStreamTest, FinishWithoutChunksIsAnEmptyMessage) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out;
  encoder.OnChunk("[DONE]", out);
  EXPECT_EQ(out, "");
  encoder.Finish(Usage(5, 0, 0, 0, 0, 0), out);
  const std::vector<Event> events = ParseEvents(out);
  ExpectWellFormedStream(events);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].data.at("usage").at("input_tokens"), 5);
}

TEST(MessagesStreamTest, ErrorsEndTheStream) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out = Encode(encoder, {Chunk(R"({"content":"a"})")});
  encoder.Error("api_error", "The response stream was interrupted.", out);
  encoder.Finish(Usage(1, 0, 0, 0, 1, 0), out);
  encoder.OnChunk(Chunk(R"({"content":"b"})"), out);
  const std::vector<Event> events = ParseEvents(out);
  ASSERT_EQ(events.size(), 5u) << out;
  EXPECT_EQ(json::serialize(events[4].data),
            R"({"type":"error","error":{"type":"api_error",)"
            R"("message":"The response stream was interrupted."}})");

  // An upstream error chunk becomes an error event with the matching Anthropic type.
  MessagesStreamEncoder upstream("msg_2", "m");
  out =
      Encode(upstream,
             {Chunk(R"({"content":"a"})"),
              R"({"error":{"message":"Rate limited","type":"rate_limit_exceeded","code":null}})"});
  upstream.Finish(v1::TokenUsage(), out);
  const std::vector<Event> e2 = ParseEvents(out);
  EXPECT_EQ(json::serialize(e2.back().data),
            R"({"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}})");

  // OpenAI's overloaded error (type server_error, code overloaded).
  MessagesStreamEncoder overloaded("msg_4", "m");
  out = Encode(
      overloaded,
      {R"({"error":{"message":"The server is overloaded.","type":"server_error","code":"overloaded"}})"});
  EXPECT_EQ(out,
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
            "\"message\":\"The server is overloaded.\"}}\n\n");

  // More arguments for a call whose block was closed cannot be represented: error, not garbage.
  MessagesStreamEncoder late("msg_3", "m");
  out = Encode(
      late,
      {Chunk(
           R"({"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"a\":"}}]})"),
       Chunk(R"({"content":"text"})"),
       Chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]})")});
  late.Finish(v1::TokenUsage(), out);
  EXPECT_EQ(ParseEvents(out).back().type, "error");
}

TEST(MessagesStreamTest, GarbageChunksAreIgnored) {
  MessagesStreamEncoder encoder("msg_1", "m");
  std::string out = Encode(encoder, {"", "{", "[1]", R"({"choices":"x"})",
                                     R"({"choices":[{"index":1,"delta":{"content":"other"}}]})"});
  encoder.Finish(v1::TokenUsage(), out);
  const std::vector<Event> events = ParseEvents(out);
  ExpectWellFormedStream(events);
  EXPECT_EQ(events.size(), 4u);  // start, ping, message_delta, message_stop
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(MessagesErrorTest, StatusMapsToAnthropicTypes) {
  const std::string body = ErrorBody("Something happened", "some_type", "", "");
  for (const auto& [status, type] : std::vector<std::pair<unsigned, std::string>>{
           {400, "invalid_request_error"},
           {401, "authentication_error"},
           {402, "billing_error"},
           {403, "permission_error"},
           {404, "not_found_error"},
           {409, "invalid_request_error"},
           {413, "request_too_large"},
           {429, "rate_limit_error"},
           {500, "api_error"},
           {502, "api_error"},
           {503, "overloaded_error"},
           {504, "timeout_error"},
           {529, "overloaded_error"},
       }) {
    EXPECT_EQ(MessagesErrorBody(status, body),
              absl::StrCat(R"({"type":"error","error":{"type":")", type,
                           R"(","message":"Something happened"}})"))
        << status;
  }
}

TEST(MessagesErrorTest, NonOpenAiBodiesAreTruncatedAndSanitised) {
  EXPECT_EQ(
      MessagesErrorBody(502, "<html>bad gateway</html>"),
      R"({"type":"error","error":{"type":"api_error","message":"<html>bad gateway</html>"}})");
  EXPECT_EQ(
      MessagesErrorBody(500, ""),
      R"j({"type":"error","error":{"type":"api_error","message":"upstream error (HTTP 500)"}})j");
  const json::value long_body = json::parse(MessagesErrorBody(500, std::string(5000, 'x')));
  EXPECT_EQ(long_body.at("error").at("message").as_string().size(), 1024u);
  // Invalid UTF-8 becomes U+FFFD, so the body is valid JSON.
  const json::value bad = json::parse(MessagesErrorBody(500,
                                                        "a\xff"
                                                        "b"));
  EXPECT_EQ(bad.at("error").at("message"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(MessagesErrorBody(429, R"({"error":"slow down"})"),
            R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})");
  EXPECT_EQ(MessagesErrorBody(404, R"({"error":{"message":"no such model"}})", "req_1"),
            R"({"type":"error","error":{"type":"not_found_error","message":"no such model"},)"
            R"("request_id":"req_1"})");
}

}  // namespace
}  // namespace tollgate::gateway
