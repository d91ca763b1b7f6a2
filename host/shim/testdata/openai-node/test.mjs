// Drives the DSMIL OpenAI shim with the official openai npm client, unmodified:
// the client finds the shim through OPENAI_BASE_URL and OPENAI_API_KEY like
// any user's program would. Run by host/shim's TestOpenAINodeClient, which
// starts the shim in front of the real router and echo plugins and sets:
//
//   OPENAI_BASE_URL, OPENAI_API_KEY   the shim and tenant T's key
//   DSMIL_KEY_KINETIC                 a tenant the router's hard rule denies
//   DSMIL_KEY_RATED                   a tenant the test limiter always refuses
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ maxRetries: 0, timeout: 20_000 });
const as = (apiKey) => new OpenAI({ apiKey, maxRetries: 0, timeout: 20_000 });
const ask = (content) => [{ role: 'user', content }];

// header reads a response header from an error (a Headers object in
// recent clients, a plain object in older ones).
const header = (err, name) => (typeof err.headers?.get === 'function' ? err.headers.get(name) : err.headers?.[name]);

// rejects asserts that promise fails with the given client error class,
// status and OpenAI error fields, and returns the error.
async function rejects(promise, cls, status, fields = {}) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name}, got success`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status);
  for (const [k, v] of Object.entries(fields)) assert.equal(err[k], v, `error.${k}`);
  assert.match(header(err, 'x-request-id') ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-/);
  return err;
}

test('models: list and retrieve', async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    ids.push(m.id);
  }
  assert.deepEqual(ids, ['dsmil-echo', 'dsmil-slow', 'dsmil-fail', 'dsmil-down']);
  const m = await client.models.retrieve('dsmil-slow');
  assert.deepEqual({ id: m.id, owned_by: m.owned_by }, { id: 'dsmil-slow', owned_by: 'tests' });
});

test('chat completion', async () => {
  const { data, request_id } = await client.chat.completions
    .create({ model: 'dsmil-echo', messages: ask('What is DSMIL?'), max_tokens: 100, temperature: 0.2, seed: 1 })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.id, 'chatcmpl-' + request_id.replaceAll('-', ''));
  assert.equal(data.model, 'dsmil-echo');
  assert.equal(data.choices.length, 1);
  assert.deepEqual(data.choices[0].message.content, 'echo: What is DSMIL?');
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.deepEqual(data.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
  assert.equal(data.dsmil_metadata.device_id, 47);
  assert.equal(data.dsmil_metadata.l7_profile, 'echo');

  const cut = await client.chat.completions.create({ model: 'dsmil-echo', messages: ask('one two three'), max_completion_tokens: 2 });
  assert.equal(cut.choices[0].message.content, 'echo: one');
  assert.equal(cut.choices[0].finish_reason, 'length');
});

test('chat streaming with usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'dsmil-echo',
    messages: ask('stream this back'),
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  const ids = new Set();
  let n = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    ids.add(chunk.id);
    if (n++ === 0) assert.equal(chunk.choices[0].delta.role, 'assistant');
    if (chunk.usage) {
      assert.deepEqual(chunk.choices, []);
      usage = chunk.usage;
      continue;
    }
    assert.equal(finish, null, 'a chunk after the finish_reason');
    text += chunk.choices[0].delta.content ?? '';
    finish = chunk.choices[0].finish_reason;
  }
  assert.equal(ids.size, 1);
  assert.equal(text, 'echo: stream this back');
  assert.equal(finish, 'stop');
  assert.deepEqual(usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
});

test('completions, plain and streamed', async () => {
  const c = await client.completions.create({ model: 'dsmil-echo', prompt: 'say this', stop: ['this'] });
  assert.equal(c.object, 'text_completion');
  assert.match(c.id, /^cmpl-/);
  assert.equal(c.choices[0].text, 'echo: say ');
  assert.equal(c.choices[0].finish_reason, 'stop');

  let text = '';
  for await (const chunk of await client.completions.create({ model: 'dsmil-echo', prompt: ['a b c'], stream: true })) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0]?.text ?? '';
  }
  assert.equal(text, 'echo: a b c');
});

test('errors: every class', async () => {
  const chat = (model, content = 'hi') => ({ model, messages: ask(content) });
  let e = await rejects(client.chat.completions.create({ ...chat('dsmil-echo'), n: 2 }), OpenAI.BadRequestError, 400,
    { type: 'invalid_request_error', param: 'n' });
  // The echo plugin has no logits: logprobs is its 400, naming the parameter.
  await rejects(client.chat.completions.create({ ...chat('dsmil-echo'), logprobs: true, top_logprobs: 2 }), OpenAI.BadRequestError, 400,
    { type: 'invalid_request_error', param: 'logprobs' });
  e = await rejects(client.chat.completions.create({ ...chat('dsmil-echo'), temperature: 3 }), OpenAI.BadRequestError, 400, { param: 'temperature' });
  // The shim accepts json_object; the echo plugin cannot constrain its output and says so.
  const rf = await rejects(client.chat.completions.create({ ...chat('dsmil-echo'), response_format: { type: 'json_object' } }),
    OpenAI.BadRequestError, 400, { param: 'response_format' });
  assert.match(rf.message, /dsmil-echo/);
  await rejects(as('wrong-key').models.list(), OpenAI.AuthenticationError, 401, { type: 'authentication_error', code: 'invalid_api_key' });
  e = await rejects(as(process.env.DSMIL_KEY_KINETIC).chat.completions.create(chat('dsmil-echo')), OpenAI.PermissionDeniedError, 403,
    { type: 'permission_error', code: 'policy_denied' });
  assert.match(e.message, /KINETIC compartment not allowed in Layer 7 \(rule builtin\.kinetic\)/);
  await rejects(client.chat.completions.create(chat('llama-7b-int8-amx')), OpenAI.NotFoundError, 404, { code: 'model_not_found', param: 'model' });
  await rejects(client.models.retrieve('llama-7b-int8-amx'), OpenAI.NotFoundError, 404, { code: 'model_not_found' });
  await rejects(client.chat.completions.create(chat('dsmil-echo', 'x'.repeat(100_000))), OpenAI.APIError, 413, { code: 'request_too_large' });
  e = await rejects(as(process.env.DSMIL_KEY_RATED).chat.completions.create(chat('dsmil-echo')), OpenAI.RateLimitError, 429,
    { code: 'rate_limit_exceeded' });
  assert.equal(header(e, 'retry-after'), '2');
  assert.equal(header(e, 'x-ratelimit-remaining-requests'), '0');
  e = await rejects(client.chat.completions.create(chat('dsmil-down')), OpenAI.InternalServerError, 503, { code: 'no_worker_available' });
  assert.equal(header(e, 'retry-after'), '1');
  await rejects(client.chat.completions.create(chat('dsmil-fail')), OpenAI.InternalServerError, 502, { code: 'worker_failed' });
  const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '); // 4 s at 100 ms a word; the shim allows 2 s
  await rejects(client.chat.completions.create(chat('dsmil-slow', words)), OpenAI.InternalServerError, 504, { code: 'deadline_exceeded' });
});

test('errors: mid-stream', async () => {
  const stream = await client.chat.completions.create({ model: 'dsmil-fail', messages: ask('one two three four'), stream: true });
  let text = '';
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })(),
    (err) => err instanceof OpenAI.APIError && /fail_after/.test(err.message),
  );
  assert.equal(text, 'echo: one'); // two deltas, then the failure
});

test('embeddings: string, array, base64 default vs float, dimensions, errors', async () => {
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  // The client asks for base64 by default and decodes it to floats.
  const one = await client.embeddings.create({ model: 'dsmil-echo', input: 'the quick brown fox' });
  assert.equal(one.object, 'list');
  assert.equal(one.model, 'dsmil-echo');
  assert.equal(one.data.length, 1);
  assert.equal(one.data[0].object, 'embedding');
  assert.equal(one.data[0].index, 0);
  assert.ok(Array.isArray(one.data[0].embedding), 'decoded to an array');
  assert.equal(one.data[0].embedding.length, 8); // echo's hash vectors
  assert.ok(Math.abs(norm(one.data[0].embedding) - 1) < 1e-6);
  assert.deepEqual(one.usage, { prompt_tokens: 4, total_tokens: 4 });

  const asFloat = await client.embeddings.create({ model: 'dsmil-echo', input: 'the quick brown fox', encoding_format: 'float' });
  asFloat.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - one.data[0].embedding[i]) <= 1e-6, `value ${i}: ${x} vs ${one.data[0].embedding[i]}`));

  const many = await client.embeddings.create({ model: 'dsmil-echo', input: ['a b', 'the quick brown fox', 'a b'] });
  assert.deepEqual(many.data.map((d) => d.index), [0, 1, 2]);
  assert.deepEqual(many.data[0].embedding, many.data[2].embedding);
  assert.deepEqual(many.data[1].embedding, one.data[0].embedding);
  assert.notDeepEqual(many.data[0].embedding, many.data[1].embedding);
  assert.equal(many.usage.prompt_tokens, 2 + 4 + 2);

  const ids = await client.embeddings.create({ model: 'dsmil-echo', input: [[1, 2, 3], [4]], encoding_format: 'float' });
  assert.equal(ids.data.length, 2);
  assert.equal(ids.usage.prompt_tokens, 4);

  const short = await client.embeddings.create({ model: 'dsmil-echo', input: 'x', dimensions: 3 });
  assert.equal(short.data[0].embedding.length, 3);
  assert.ok(Math.abs(norm(short.data[0].embedding) - 1) < 1e-6);

  await rejects(client.embeddings.create({ model: 'dsmil-echo', input: '' }), OpenAI.BadRequestError, 400, { param: 'input', code: 'invalid_value' });
  await rejects(client.embeddings.create({ model: 'dsmil-echo', input: 'x', dimensions: 9 }), OpenAI.BadRequestError, 400, { param: 'dimensions' });
  await rejects(client.embeddings.create({ model: 'llama-7b-int8-amx', input: 'x' }), OpenAI.NotFoundError, 404, { code: 'model_not_found' });
});
