// Drives a running Tollgate gateway's Anthropic-compatible ingress (POST /v1/messages) with the
// official Anthropic client library: non-stream, stream (the SDK's MessageStream helper and the
// raw event sequence), a tool-calling conversation (tool_use -> tool_result -> final answer, the
// tool call also streamed), an upstream error in the middle of a stream and error responses. Meant
// for the mock provider (deterministic content: the stream must repeat the non-stream answer). Prints one JSON line with, per call, the x-tollgate-request-id and the usage the client
// saw (Anthropic shape), so the caller can check the ledger.
//
// Env:
//   ANTHROPIC_BASE_URL        the gateway, without /v1 (e.g. http://127.0.0.1:8080); required
//   ANTHROPIC_API_KEY         a Tollgate virtual key (sent as x-api-key); required
//   TOLLGATE_MODEL            the model to ask for (default gpt-4o-mini, the suite's default
//                             model), so the same script runs against each upstream dialect
//   TOLLGATE_MOCK_DIRECTIVES  optional mock-provider directives (e.g. "cached=6 cache_write_5m=4
//                             reasoning=3"), appended to the prompts of the non-stream and stream
//                             calls as "[[mock: ...]]" so cache and thinking tokens show up in usage
//
// Output (last line of stdout):
//   {"nonstream":{request_id,usage,content,stop_reason},
//    "stream":{request_id,usage,content,stop_reason,events},
//    "stream_raw":{request_id,usage,content,stop_reason,events},
//    "tools":{"calls":[{request_id,usage,stop_reason} x3],"tool_name","tool_input","answer"},
//    "stream_error":{request_id,type,text_before_error}}
// (tools.calls: the tool_use answer, the same request streamed, the answer after the tool result)
// where usage is {input_tokens, cache_creation_input_tokens, cache_read_input_tokens,
// cache_creation:{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}, output_tokens,
// thinking_tokens}: Anthropic's input_tokens EXCLUDE cache reads and writes (total input = the
// three summed); thinking_tokens (output_tokens_details, 0 when absent) are part of output_tokens.
// Exit 1 (after "FAILED: <what>" on stderr) on any failed expectation.
import Anthropic from '@anthropic-ai/sdk';

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

check(process.env.ANTHROPIC_BASE_URL, 'ANTHROPIC_BASE_URL is not set');
check(process.env.ANTHROPIC_API_KEY, 'ANTHROPIC_API_KEY is not set');

const client = new Anthropic({
  baseURL: process.env.ANTHROPIC_BASE_URL,
  apiKey: process.env.ANTHROPIC_API_KEY,
  defaultHeaders: { 'x-tollgate-feature': 'sdk' },
  maxRetries: 0,
});
const model = process.env.TOLLGATE_MODEL || 'gpt-4o-mini';
const directives = process.env.TOLLGATE_MOCK_DIRECTIVES
  ? ` [[mock: ${process.env.TOLLGATE_MOCK_DIRECTIVES}]]`
  : '';
const out = {};

// The usage fields the ledger check needs, as numbers (absent / null read as 0).
function usageOf(u) {
  check(u && typeof u === 'object', 'usage object');
  const n = (v) => (typeof v === 'number' ? v : 0);
  return {
    input_tokens: n(u.input_tokens),
    cache_creation_input_tokens: n(u.cache_creation_input_tokens),
    cache_read_input_tokens: n(u.cache_read_input_tokens),
    cache_creation: {
      ephemeral_5m_input_tokens: n(u.cache_creation?.ephemeral_5m_input_tokens),
      ephemeral_1h_input_tokens: n(u.cache_creation?.ephemeral_1h_input_tokens),
    },
    output_tokens: n(u.output_tokens),
    thinking_tokens: n(u.output_tokens_details?.thinking_tokens),
  };
}

function textOf(message) {
  return message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
}

// The SDK's MessageStream takes the cumulative counts of message_delta but not its cache_creation
// breakdown (Tollgate sends it there too, as the usage is only known at the end): merge it in.
function trackCacheCreation(stream) {
  const seen = {};
  stream.on('streamEvent', (event) => {
    if (event.type === 'message_delta' && event.usage?.cache_creation) {
      seen.cache_creation = event.usage.cache_creation;
    }
  });
  return (message) => {
    if (seen.cache_creation) message.usage.cache_creation = seen.cache_creation;
    return message;
  };
}

function checkMessage(message, what) {
  check(message.type === 'message', `${what}: type "${message.type}"`);
  check(message.role === 'assistant', `${what}: role`);
  check(typeof message.id === 'string' && message.id.startsWith('msg_'), `${what}: id ${message.id}`);
  check(Array.isArray(message.content), `${what}: content array`);
  check(typeof message.stop_reason === 'string', `${what}: stop_reason ${message.stop_reason}`);
  check(message.usage.output_tokens > 0, `${what}: output_tokens`);
  const u = usageOf(message.usage);
  check(u.cache_creation_input_tokens ===
          u.cache_creation.ephemeral_5m_input_tokens + u.cache_creation.ephemeral_1h_input_tokens,
        `${what}: cache_creation breakdown sums to cache_creation_input_tokens`);
}

const prompt = 'Hello from the Anthropic SDK';

// Non-streaming.
{
  const { data, response } = await client.messages
    .create({ model, max_tokens: 256, messages: [{ role: 'user', content: prompt + directives }] })
    .withResponse();
  checkMessage(data, 'non-stream');
  check(textOf(data).length > 0, 'non-stream text');
  check(data.stop_reason === 'end_turn' || data.stop_reason === 'max_tokens',
        `non-stream stop_reason ${data.stop_reason}`);
  out.nonstream = { request_id: response.headers.get('x-tollgate-request-id'),
                    usage: usageOf(data.usage), content: textOf(data),
                    stop_reason: data.stop_reason };
}

// Streaming with the SDK's MessageStream helper: text events and the accumulated final message
// (usage from message_delta, which carries the cumulative counts).
{
  const stream = client.messages.stream({
    model, max_tokens: 256, messages: [{ role: 'user', content: prompt + directives }] });
  let text = '';
  stream.on('text', (delta) => { text += delta; });
  const withBreakdown = trackCacheCreation(stream);
  const { response } = await stream.withResponse();
  const message = withBreakdown(await stream.finalMessage());
  checkMessage(message, 'stream');
  check(text === textOf(message), 'stream text events match the final message');
  check(text === out.nonstream.content, `stream content "${text}" != "${out.nonstream.content}"`);
  const usage = usageOf(message.usage);
  // Same prompt, same directives: the same usage as the non-stream call.
  check(JSON.stringify(usage) === JSON.stringify(out.nonstream.usage),
        `stream usage ${JSON.stringify(usage)} != non-stream ${JSON.stringify(out.nonstream.usage)}`);
  out.stream = { request_id: response.headers.get('x-tollgate-request-id'), usage,
                 content: text, stop_reason: message.stop_reason };
}

// Streaming, raw events (create with stream: true): the full event order.
{
  const { data: stream, response } = await client.messages
    .create({ model, max_tokens: 256, stream: true,
              messages: [{ role: 'user', content: 'Stream the raw events please' }] })
    .withResponse();
  const events = [];
  let text = '';
  let usage = null;
  let stopReason = null;
  let open = -1;
  let nextIndex = 0;
  for await (const event of stream) {
    events.push(event.type);
    switch (event.type) {
      case 'message_start':
        check(events.length === 1, 'message_start comes first');
        check(event.message.content.length === 0, 'message_start has empty content');
        usage = { ...event.message.usage };
        break;
      case 'content_block_start':
        check(open === -1 && event.index === nextIndex, `block ${event.index} starts in order`);
        open = nextIndex++;
        break;
      case 'content_block_delta':
        check(event.index === open, `delta for the open block ${open}`);
        if (event.delta.type === 'text_delta') text += event.delta.text;
        break;
      case 'content_block_stop':
        check(event.index === open, `stop of the open block ${open}`);
        open = -1;
        break;
      case 'message_delta':
        check(open === -1, 'message_delta after every block stopped');
        stopReason = event.delta.stop_reason;
        // Cumulative counts: the last value wins, absent fields keep message_start's.
        for (const [k, v] of Object.entries(event.usage)) if (v != null) usage[k] = v;
        break;
      case 'message_stop':
        break;
      default:
        check(false, `unexpected event ${event.type}`);
    }
  }
  check(events.at(-1) === 'message_stop', 'message_stop comes last');
  check(events.includes('message_delta'), 'message_delta seen');
  check(text.length > 0, 'raw stream text');
  check(stopReason === 'end_turn' || stopReason === 'max_tokens', `raw stop_reason ${stopReason}`);
  check(usage.output_tokens > 0, 'raw stream output_tokens');
  out.stream_raw = { request_id: response.headers.get('x-tollgate-request-id'),
                     usage: usageOf(usage), content: text, stop_reason: stopReason,
                     events: events.length };
}

// Tool calling: tool_use -> tool_result -> final answer.
{
  const tools = [{
    name: 'get_weather', description: 'Weather by city',
    input_schema: { type: 'object', properties: { query: { type: 'string' } } },
  }];
  const messages = [{ role: 'user', content: 'Weather in Paris?' }];
  const calls = [];
  const first = await client.messages.create({ model, max_tokens: 256, messages, tools }).withResponse();
  checkMessage(first.data, 'tool call');
  check(first.data.stop_reason === 'tool_use', `tool stop_reason ${first.data.stop_reason}`);
  const toolUse = first.data.content.find((b) => b.type === 'tool_use');
  check(toolUse && toolUse.name === 'get_weather', 'tool_use block');
  check(typeof toolUse.id === 'string' && toolUse.id.length > 0, 'tool_use id');
  check(toolUse.input && typeof toolUse.input === 'object' && !Array.isArray(toolUse.input),
        'tool_use input is an object');
  calls.push({ request_id: first.response.headers.get('x-tollgate-request-id'),
               usage: usageOf(first.data.usage), stop_reason: first.data.stop_reason });

  // The same request streamed: the tool_use block is assembled from input_json_delta fragments.
  {
    const stream = client.messages.stream({ model, max_tokens: 256, messages, tools });
    const withBreakdown = trackCacheCreation(stream);
    const { response } = await stream.withResponse();
    const message = withBreakdown(await stream.finalMessage());
    checkMessage(message, 'streamed tool call');
    check(message.stop_reason === 'tool_use', `streamed tool stop_reason ${message.stop_reason}`);
    const streamed = message.content.find((b) => b.type === 'tool_use');
    check(streamed && streamed.name === toolUse.name, 'streamed tool_use block');
    check(JSON.stringify(streamed.input) === JSON.stringify(toolUse.input),
          `streamed tool input ${JSON.stringify(streamed.input)} != ${JSON.stringify(toolUse.input)}`);
    calls.push({ request_id: response.headers.get('x-tollgate-request-id'),
                 usage: usageOf(message.usage), stop_reason: message.stop_reason });
  }

  messages.push({ role: 'assistant', content: first.data.content });
  messages.push({ role: 'user', content: [
    { type: 'tool_result', tool_use_id: toolUse.id, content: '18C and sunny' }] });
  const second = await client.messages.create({ model, max_tokens: 256, messages, tools }).withResponse();
  checkMessage(second.data, 'answer after tool result');
  check(second.data.stop_reason !== 'tool_use', 'the answer after the tool result is not another call');
  check(textOf(second.data).length > 0, 'answer text after tool result');
  calls.push({ request_id: second.response.headers.get('x-tollgate-request-id'),
               usage: usageOf(second.data.usage), stop_reason: second.data.stop_reason });
  out.tools = { calls, tool_name: toolUse.name, tool_input: toolUse.input,
                answer: textOf(second.data) };
}

// An upstream failure after the 200 (the mock's stream_error directive) reaches the SDK as an
// Anthropic `error` event, which the SDK raises as an APIError carrying the error type.
{
  const stream = client.messages.stream({
    model, max_tokens: 256,
    messages: [{ role: 'user', content: 'Fail midway [[mock: stream_error=overloaded_error]]' }] });
  let text = '';
  stream.on('text', (delta) => { text += delta; });
  const { response } = await stream.withResponse();
  let error = null;
  try {
    await stream.finalMessage();
  } catch (e) {
    error = e;
  }
  check(error instanceof Anthropic.APIError, `mid-stream error raises APIError, got ${error}`);
  check(error.type === 'overloaded_error', `mid-stream error type ${error.type}`);
  out.stream_error = { request_id: response.headers.get('x-tollgate-request-id'),
                       type: error.type, text_before_error: text };
}

// Errors surface as the SDK's typed errors with Anthropic error bodies.
try {
  await client.messages.create({ model: 'no-such-model', max_tokens: 16,
                                 messages: [{ role: 'user', content: 'x' }] });
  check(false, 'unknown model should fail');
} catch (e) {
  check(e instanceof Anthropic.NotFoundError, `unknown model gives NotFoundError, got ${e}`);
  check(e.type === 'not_found_error', `unknown model error type ${e.type}`);
}
try {
  // An Anthropic-invalid request (tool_result without tool_use_id) is a 400 naming the field.
  await client.messages.create({ model, max_tokens: 16,
                                 messages: [{ role: 'user', content: [{ type: 'tool_result' }] }] });
  check(false, 'invalid request should fail');
} catch (e) {
  check(e instanceof Anthropic.BadRequestError, `invalid request gives BadRequestError, got ${e}`);
  check(e.type === 'invalid_request_error', `invalid request error type ${e.type}`);
  check(String(e.message).includes('tool_use_id'), `400 names the field: ${e.message}`);
}

console.log(JSON.stringify(out));
