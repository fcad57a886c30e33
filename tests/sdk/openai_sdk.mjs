// Drives a running Tollgate gateway with the official OpenAI client library: non-stream, stream
// (with and without usage), tool calling and an error. Prints one JSON line with, per call, the
// x-tollgate-request-id and the usage the client saw, so the caller can check the ledger.
// Env: OPENAI_BASE_URL, OPENAI_API_KEY. Exit 1 on any failed expectation.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL,
  apiKey: process.env.OPENAI_API_KEY,
  defaultHeaders: { 'x-tollgate-feature': 'sdk' },
  maxRetries: 0,
});
const model = process.env.TOLLGATE_MODEL || 'gpt-4o-mini';
const out = {};

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

// Non-streaming.
{
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: 'Hello from the OpenAI SDK' }] })
    .withResponse();
  check(data.object === 'chat.completion', 'non-stream object');
  check(typeof data.choices[0].message.content === 'string' && data.choices[0].message.content.length > 0,
        'non-stream content');
  check(data.usage && data.usage.completion_tokens > 0, 'non-stream usage');
  out.nonstream = { request_id: response.headers.get('x-tollgate-request-id'), usage: data.usage,
                    content: data.choices[0].message.content };
}

// Streaming without usage: same deterministic content, no usage chunk.
{
  const { data: stream, response } = await client.chat.completions
    .create({ model, stream: true, messages: [{ role: 'user', content: 'Hello from the OpenAI SDK' }] })
    .withResponse();
  let text = '';
  let sawUsage = false;
  for await (const chunk of stream) {
    if (chunk.usage) sawUsage = true;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  check(text === out.nonstream.content, `stream content "${text}" != "${out.nonstream.content}"`);
  check(!sawUsage, 'usage chunk leaked to a client that did not ask for it');
  out.stream = { request_id: response.headers.get('x-tollgate-request-id'), usage: out.nonstream.usage };
}

// Streaming with usage.
{
  const { data: stream, response } = await client.chat.completions
    .create({ model, stream: true, stream_options: { include_usage: true },
              messages: [{ role: 'user', content: 'Stream with usage please' }] })
    .withResponse();
  let usage = null;
  for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
  check(usage && usage.completion_tokens > 0, 'stream usage chunk');
  out.stream_usage = { request_id: response.headers.get('x-tollgate-request-id'), usage };
}

// Tool calling, then the tool result.
{
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather by city',
                   parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const messages = [{ role: 'user', content: 'Weather in Paris?' }];
  const first = await client.chat.completions.create({ model, messages, tools });
  const call = first.choices[0].message.tool_calls?.[0];
  check(call && call.function.name === 'get_weather', 'tool call');
  check(first.choices[0].finish_reason === 'tool_calls', 'tool finish_reason');
  JSON.parse(call.function.arguments);
  messages.push(first.choices[0].message);
  messages.push({ role: 'tool', tool_call_id: call.id, content: '18C and sunny' });
  const second = await client.chat.completions.create({ model, messages, tools });
  check(typeof second.choices[0].message.content === 'string', 'answer after tool result');
  out.tools = { calls: 2 };
}

// Errors surface as the SDK's typed errors.
try {
  await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
  check(false, 'unknown model should fail');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError, `unknown model gives NotFoundError, got ${e}`);
}

// Models list.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
check(models.includes(model), 'models list');

console.log(JSON.stringify(out));
