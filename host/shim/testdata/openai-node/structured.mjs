// Structured outputs and tool calling through the shim with real clients:
// the openai npm client (chat.completions.parse, tools with tool_choice
// "required", a tool message round trip, streamed tool calls assembled by
// the client) and LangChain (bindTools, withStructuredOutput). Run by
// internal/e2e's TestStructuredClients against the llm-amx plugin serving
// a random-weight model: its text is gibberish, but constrained decoding
// makes every answer well-formed. Environment: OPENAI_BASE_URL,
// OPENAI_API_KEY, DSMIL_MODEL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { ChatOpenAI } from '@langchain/openai';

const model = process.env.DSMIL_MODEL;
const client = new OpenAI({ maxRetries: 0, timeout: 60_000 });
const ask = (content) => [{ role: 'user', content }];

const person = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    role: { enum: ['analyst', 'engineer', 'lead'] },
  },
  required: ['name', 'age', 'role'],
  additionalProperties: false,
};

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city.',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['c', 'f'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
    strict: true,
  },
};

function checkPerson(p) {
  assert.equal(typeof p.name, 'string');
  assert.ok([...p.name].length <= 12, `name ${JSON.stringify(p.name)}`); // maxLength counts code points, not UTF-16 units
  assert.ok(Number.isInteger(p.age) && p.age >= 0 && p.age <= 120, `age ${p.age}`);
  assert.ok(['analyst', 'engineer', 'lead'].includes(p.role), `role ${p.role}`);
  assert.deepEqual(Object.keys(p).sort(), ['age', 'name', 'role']);
}

function checkWeather(args) {
  const a = JSON.parse(args);
  assert.equal(typeof a.city, 'string');
  assert.ok(['c', 'f'].includes(a.unit));
}

test('openai: chat.completions.parse with a JSON schema', async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.parse({
      model, messages: ask('Describe a team member.'), seed, max_tokens: 200,
      response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: person } },
    });
    assert.equal(r.choices[0].finish_reason, 'stop');
    checkPerson(r.choices[0].message.parsed);
  }
});

test('openai: tools with tool_choice required, then the tool result', async () => {
  const tools = [weatherTool];
  const r = await client.chat.completions.create({
    model, messages: ask('Weather in Paris?'), tools, tool_choice: 'required', parallel_tool_calls: false, seed: 4, max_tokens: 200,
  });
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.content, null);
  assert.equal(msg.tool_calls.length, 1);
  const call = msg.tool_calls[0];
  assert.match(call.id, /^call_/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  checkWeather(call.function.arguments);

  // The round trip: the assistant's call and the tool's answer go back.
  const r2 = await client.chat.completions.create({
    model, tools, tool_choice: 'none', seed: 5, max_tokens: 20,
    messages: [...ask('Weather in Paris?'), msg, { role: 'tool', tool_call_id: call.id, content: '{"temp": 18}' }],
  });
  assert.equal(typeof r2.choices[0].message.content, 'string');
  assert.ok(r2.usage.prompt_tokens > r.usage.prompt_tokens, 'the tool turn reached the prompt');
});

test('openai: a named function, streamed and assembled by the client', async () => {
  const stream = client.chat.completions.stream({
    model, messages: ask('Weather?'), seed: 6, max_tokens: 200,
    tools: [weatherTool, { type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  let pieces = 0;
  stream.on('chunk', (c) => { if (c.choices[0]?.delta?.tool_calls) pieces++; });
  const done = await stream.finalChatCompletion();
  assert.equal(done.choices[0].finish_reason, 'tool_calls');
  const calls = done.choices[0].message.tool_calls;
  assert.ok(calls.length >= 1);
  for (const c of calls) {
    assert.equal(c.function.name, 'get_weather');
    checkWeather(c.function.arguments);
  }
  assert.ok(pieces > calls.length, `arguments arrived in ${pieces} pieces`);
});

test('openai: json_object', async () => {
  const r = await client.chat.completions.create({
    model, messages: ask('JSON please.'), seed: 7, max_tokens: 300, response_format: { type: 'json_object' },
  });
  if (r.choices[0].finish_reason === 'stop') assert.equal(typeof JSON.parse(r.choices[0].message.content), 'object');
  else assert.equal(r.choices[0].finish_reason, 'length');
});

test('openai: a schema the plugin cannot compile is a 400 naming the keyword', async () => {
  const bad = { type: 'object', properties: { a: { type: 'string', patternProperties: {} } } };
  await assert.rejects(client.chat.completions.create({
    model, messages: ask('x'), response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: bad } },
  }), (e) => e.status === 400 && e.param === 'response_format' && /patternProperties/.test(e.message));
});

const chat = () => new ChatOpenAI({
  model, temperature: 1, maxTokens: 200, maxRetries: 0,
  apiKey: process.env.OPENAI_API_KEY, configuration: { baseURL: process.env.OPENAI_BASE_URL },
});

test('langchain: bindTools(...).invoke', async () => {
  const bound = chat().bindTools([weatherTool], { tool_choice: 'required', parallel_tool_calls: false });
  const m = await bound.invoke('Weather in Oslo?');
  assert.equal(m.invalid_tool_calls.length, 0, JSON.stringify(m.invalid_tool_calls));
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].name, 'get_weather');
  checkWeather(JSON.stringify(m.tool_calls[0].args));
});

test('langchain: withStructuredOutput(schema, {method: "jsonSchema"})', async () => {
  const structured = chat().withStructuredOutput({ ...person, title: 'person' }, { method: 'jsonSchema' });
  checkPerson(await structured.invoke('Describe a team member.'));
});
