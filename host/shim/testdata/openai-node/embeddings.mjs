// Embeddings through the shim with real clients: LangChain's
// OpenAIEmbeddings (embedDocuments, in concurrent batches, and embedQuery)
// and the openai npm client (its default base64 and explicit float). Run by
// internal/e2e's TestEmbedClients against the real dsmil-embed plugin
// serving a random-weight encoder; the same text must give the same vector
// whichever client, call, batch or encoding carried it, and the vector the
// Go reference forward pass computes. Images (the DSMIL extension of
// input, {type: 'image_url', image_url: {url: 'data:…'}}) go through the
// openai client to the tiny CLIP dual encoder; LangChain's OpenAIEmbeddings
// takes only strings. Environment: OPENAI_BASE_URL, OPENAI_API_KEY,
// DSMIL_MODEL, DSMIL_EMBED_REF (JSON {text, vector}), DSMIL_CLIP_MODEL,
// DSMIL_CLIP_REF (JSON {text, vector, image, image_vector}).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { OpenAIEmbeddings } from '@langchain/openai';

const model = process.env.DSMIL_MODEL;
const ref = JSON.parse(process.env.DSMIL_EMBED_REF);
const client = new OpenAI({ maxRetries: 0, timeout: 60_000 });
const lc = (fields = {}) => new OpenAIEmbeddings({
  model,
  apiKey: process.env.OPENAI_API_KEY,
  configuration: { baseURL: process.env.OPENAI_BASE_URL },
  maxRetries: 0,
  ...fields,
});

const texts = ['the model reads the prompt', 'hello world', 'nothing leaves the host',
  'the worker streams the text back as it is produced', 'it checks the graph', ref.text];

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const maxDiff = (a, b) => {
  assert.equal(a.length, b.length, 'vector lengths');
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
};
const close = (a, b, tol, what) => {
  const d = maxDiff(a, b);
  assert.ok(d <= tol, `${what}: differ by ${d} (> ${tol})`);
  return d;
};

test('LangChain embedDocuments and embedQuery: same text, same vector, as the openai client and the reference', async () => {
  // batchSize 2: three requests, which LangChain sends concurrently (the
  // plugin packs them into shared runs).
  const docs = await lc({ batchSize: 2 }).embedDocuments(texts);
  assert.equal(docs.length, texts.length);
  const one = await lc().embedDocuments(texts); // one request
  let worst = 0;
  for (const [i, text] of texts.entries()) {
    const v = docs[i];
    assert.equal(v.length, ref.vector.length);
    assert.ok(Math.abs(norm(v) - 1) < 1e-5, `text ${i}: norm ${norm(v)}`);
    const q = await lc().embedQuery(text);
    // The same request shape twice: bit-identical.
    assert.deepEqual(await lc().embedQuery(text), q, `text ${i}: embedQuery twice`);
    worst = Math.max(worst, close(q, v, 1e-6, `text ${i}: embedQuery vs embedDocuments in batches of 2`));
    worst = Math.max(worst, close(one[i], v, 1e-6, `text ${i}: embedDocuments in one request vs in batches of 2`));
    // The openai client: base64 (its default, what LangChain sends too)
    // and float.
    const b64 = (await client.embeddings.create({ model, input: text })).data[0].embedding;
    const flt = (await client.embeddings.create({ model, input: text, encoding_format: 'float' })).data[0].embedding;
    assert.deepEqual(b64, q, `text ${i}: openai base64 vs LangChain embedQuery`);
    worst = Math.max(worst, close(flt, b64, 1e-6, `text ${i}: float vs base64`));
  }
  const d = close(await lc().embedQuery(ref.text), ref.vector, 1e-5, 'the Go reference');
  console.log(`largest difference between clients/calls/batches: ${worst}; from the Go reference: ${d}`);
  // Different texts, different vectors.
  assert.ok(maxDiff(docs[0], docs[1]) > 1e-3, 'two texts gave the same vector');
});

test('LangChain: newlines stripped as documented, dimensions', async () => {
  const q = await lc().embedQuery('hello\nworld');
  const plain = (await client.embeddings.create({ model, input: 'hello world' })).data[0].embedding;
  assert.deepEqual(q, plain);
  const short = await lc({ dimensions: 8 }).embedQuery('hello world');
  assert.equal(short.length, 8);
  assert.ok(Math.abs(norm(short) - 1) < 1e-5, `norm ${norm(short)}`);
  const cut = plain.slice(0, 8);
  close(short, cut.map((x) => x / norm(cut)), 1e-6, 'dimensions 8 vs the first 8 values re-normalised');
  await assert.rejects(lc({ model: 'no-such-model' }).embedQuery('x'), (e) => e.status === 404 || /404/.test(String(e)));
});

test('openai client: images and text in one request to a CLIP model, base64 and float', async () => {
  const clip = process.env.DSMIL_CLIP_MODEL;
  const cref = JSON.parse(process.env.DSMIL_CLIP_REF);
  const image = { type: 'image_url', image_url: { url: cref.image } };
  const input = [cref.text, image, 'nothing', image];
  const b64 = await client.embeddings.create({ model: clip, input });
  const flt = await client.embeddings.create({ model: clip, input, encoding_format: 'float' });
  assert.equal(b64.data.length, 4);
  assert.equal(b64.model, clip);
  assert.ok(b64.usage.prompt_tokens > 0 && b64.usage.total_tokens === b64.usage.prompt_tokens, JSON.stringify(b64.usage));
  for (const [i, d] of b64.data.entries()) {
    assert.equal(d.index, i);
    assert.equal(d.embedding.length, cref.vector.length, `input ${i}: the shared space's width`);
    close(d.embedding, flt.data[i].embedding, 1e-6, `input ${i}: base64 vs float`);
  }
  close(b64.data[0].embedding, cref.vector, 1e-5, 'text vs the Go reference');
  close(b64.data[1].embedding, cref.image_vector, 1e-6, 'image vs the same image over plain HTTP');
  assert.deepEqual(b64.data[3].embedding, b64.data[1].embedding, 'the same image twice in a request');
  assert.ok(maxDiff(b64.data[0].embedding, b64.data[1].embedding) > 1e-3, 'text and image gave the same vector');
  // The text-only encoder refuses images with a 400 naming the input.
  await assert.rejects(client.embeddings.create({ model, input: [image] }),
    (e) => e.status === 400 && /input/.test(String(e.message)));
});
