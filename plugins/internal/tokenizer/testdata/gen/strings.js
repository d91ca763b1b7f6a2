// The test corpus: hand-picked edge cases plus deterministic pseudo-random
// mixes. Every family is encoded on the same list, so special tokens of one
// family are plain text to the others.

// mulberry32: a tiny seeded PRNG so the corpus is identical on every run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const handPicked = [
  // plain text and contractions
  "Hello, world!",
  "hello world",
  "The quick brown fox jumps over the lazy dog.",
  "I'm sure you're right, but they've said it's what we'd do and I'll go.",
  "DON'T SHOUT. IT'S RUDE. WE'RE HERE. YOU'LL SEE. I'M OK. THEY'VE GONE. HE'D KNOW.",
  "y'all'd've 'tis 'twas o'clock rock'n'roll",
  "'s 't 're 've 'm 'll 'd",
  "She said: \"don't\" — and left… (again).",
  "It’s a curly apostrophe ’s and “quotes”.",
  "Mr. Smith went to Washington D.C. on Jan. 5th, 2024 at 3:45 p.m.",
  "a", "A", " ", "  ", "\n", "\t", "?", "ab", "a b", "a  b", "a   b",
  "",
  // numbers
  "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789",
  "1234567890", "12345678901234567890", "3.14159265358979323846", "-273.15", "+1 (555) 010-9999",
  "1,234,567.89", "1e10 2E-5 0x1F 0b1010 0o777", "2024-01-31T23:59:59Z", "v1.2.3-rc.4+build.5",
  "٣٤٥ ١٢٣٤٥ ۱۲۳", "①②③ ⅻ ¼½¾ ²³", "１２３４５ ＡＢＣ", "९८७६५ ๑๒๓",
  "There are 365 days, 24 hours, 60 minutes and 1000000 milliseconds.",
  "pi=3.14;e=2.718;phi=1.618",
  // whitespace
  "   leading spaces", "trailing spaces   ", "  both  ", "tab\tseparated\tvalues",
  "\t\tindented with tabs", "line1\nline2\nline3", "para1\n\npara2\n\n\npara3",
  "windows\r\nline\r\nendings\r\n", "mixed \t \n \r\n  whitespace", "\n\n\n\n", "          ",
  "a\u00a0b\u00a0\u00a0c", "full\u3000width\u3000space", "nel\u0085line", "sep\u2028ara\u2029tors",
  "zero\u200bwidth\u200cjoin\u200dners", "\ufeffBOM at start", "word \n", " \n word", "x \n\n y",
  "  \n  \n  ", "end with newline\n", "\r", "\r\n", " \r\n ",
  // scripts
  "你好，世界！今天天气很好。", "我爱北京天安门", "東京は日本の首都です。", "こんにちは、世界。カタカナとひらがな",
  "안녕하세요, 세계!", "مرحبا بالعالم، كيف حالك؟", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
  "Привет, мир! Ёлка и ёж.", "Γειά σου Κόσμε", "Xin chào thế giới, tiếng Việt có dấu",
  "Ṱ̴̢̛̘͉̖͚̗͎͈̬̦͙̯̯̮͚̲̬̥̟̋̋̐̌̽̈́͐̃̇̓͒̈́̐̚̚ͅh̸͖̘̟̟̲̬̥̫̦̠̟̙̩̮͕̤̜̯̆̈͂̉̄̃̄͂̓͌̏̏̈́̑̿̃̇͋̄̈́̇̈̍̚͜͠e̸̡̧̧̡̛̦̦̤͖̤̯̘̙̥̼̭͙͈̮̪̦̮̟̺͉̳̻̠̤̺̓̿̓̍̀̏̎̋̈́̍̓̃̈́̊̂̀̐̐̇̑͂̔̚͘͜͝ͅ",
  "cafe\u0301 vs café", "e\u0301\u0302\u0303", "A\u030a Å Å", "ﬁ ﬂ ﬃ ligatures", "ǅ ǈ ǋ titlecase",
  "Ⅻ ℌ ℍ ℕ ℙ ℚ ℝ ℤ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "𠀀𠀁𠀂 CJK Ext-B", "\ue000\ue001 private use",
  "ß ẞ İ ı ǰ ŉ", "Ελληνικά: ΑΒΓΔ αβγδ ς", "Հայերեն ქართული ភាសាខ្មែរ", "ትግርኛ አማርኛ", "ᚠᛇᚻ᛫ᛒᛦᚦ",
  // emoji
  "😀", "😀😃😄😁", "I ❤️ emoji 👍🏽", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 🏴‍☠️", "🇺🇸🇯🇵🇩🇪🇫🇷",
  "1️⃣2️⃣3️⃣ #️⃣", "👩🏽‍💻 🧑🏿‍🚀", "🤖 robots 🦾🦿", "✅ ❌ ⚠️ ℹ️", "🙂🙃🙂🙃🙂🙃",
  // code
  "def add(a, b):\n    return a + b\n",
  "func main() {\n\tfmt.Println(\"hello\")\n}\n",
  "for (let i = 0; i < n; i++) { sum += arr[i]; }",
  "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
  "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
  "<div class=\"container\"><p>Hello &amp; welcome</p></div>",
  "ls -la | grep -E '^d' | awk '{print $9}' > dirs.txt 2>&1",
  "x = [i**2 for i in range(10) if i % 2 == 0]  # squares",
  "    if err != nil {\n        return fmt.Errorf(\"wrap: %w\", err)\n    }",
  "const re = /^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@example\\.com$/i;",
  "\\begin{equation} E = mc^2 \\end{equation} $\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$",
  "| col1 | col2 |\n|------|------|\n| a    | b    |",
  "https://example.com/path/to/page?query=1&lang=en#section-2",
  "user.name+tag@example.co.uk",
  "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@",
  "->=>!==<=>>=<<=::...??",
  "snake_case_identifier camelCaseIdentifier PascalCase SCREAMING_CASE kebab-case",
  "\u0000\u0001\u0002\u0003\u0007\u0008\u000b\u000c\u000e\u001b\u001f\u007f",
  // special tokens of every family as text
  "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>",
  "<|endoftext|>", "<|endoftext|><|endoftext|>", "text<|endoftext|>text", " <|im_end|> ",
  "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "<tool_call>{\"name\": \"f\"}</tool_call>",
  "<s>[INST] What is 2+2? [/INST] 4</s>", "<s>", "</s>", "<unk>", "<s><s></s>", " <s> ", "a<s>b", "<s>  x",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
  "<|reserved_special_token_5|>", "<|eot_id|><|eot_id|>", "<|im_start", "im_start|>", "< s>", "<|>",
  "<mask> masked <mask>", "x   <mask>   y", "[[memo]] note [[memo]]", "pre[[memo]]post",
  // long inputs
  "a".repeat(1000),
  "supercalifragilisticexpialidocious".repeat(20),
  "pneumonoultramicroscopicsilicovolcanoconiosis",
  "1234567890".repeat(30),
  "😀".repeat(100),
  "中".repeat(300),
  " ".repeat(500) + "x",
  "\n".repeat(100),
  "ab".repeat(400) + " " + "ba".repeat(400),
  "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(12),
];

const pools = {
  lower: "abcdefghijklmnopqrstuvwxyz",
  upper: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
  digit: "0123456789",
  punct: "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
  space: [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000"],
  cjk: Array.from("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者日都言"),
  kana: Array.from("あいうえおかきくけこアイウエオカキクケコー"),
  hangul: Array.from("가나다라마바사아자차카타파하한국어"),
  arabic: Array.from("ابتثجحخدذرزسشصضطظعغفقكلمنهوي"),
  cyril: Array.from("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
  accents: Array.from("àáâãäåèéêëìíîïòóôõöùúûüçñ"),
  combining: ["\u0300", "\u0301", "\u0302", "\u0308", "\u0323", "\u093f", "\u0947", "\u0e31"],
  emoji: ["😀", "🎉", "👍", "👍🏿", "❤️", "🇬🇧", "👨‍💻", "🧪", "🚀", "✨", "🤔", "⭐"],
  words: ["the", "of", "and", "token", "izer", "Model", "GPU", "AMX", "llama", "qwen", "don't", "it's",
          "we'll", "can't", "hello", "world", "data", "2024", "v2", "x86_64", "int8", "fp16", "ONNX"],
  specials: ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<|eot_id|>",
             "<|begin_of_text|>", "<think>", "<mask>", "[[memo]]"],
};

function pick(r, arr) {
  return arr[Math.floor(r() * arr.length)];
}

function randomString(r, i) {
  const kinds = Object.keys(pools);
  const n = 1 + Math.floor(r() * 40);
  let s = "";
  // Every string favours a couple of kinds so some look like words.
  const favoured = [pick(r, kinds), pick(r, kinds), "words", "space"];
  for (let k = 0; k < n; k++) {
    const kind = r() < 0.7 ? pick(r, favoured) : pick(r, kinds);
    if (kind === "specials" && r() < 0.5) continue;
    const pool = pools[kind];
    let piece = typeof pool === "string" ? pool[Math.floor(r() * pool.length)] : pick(r, pool);
    if (kind === "lower" || kind === "upper" || kind === "digit") {
      const len = 1 + Math.floor(r() * 8);
      for (let j = 1; j < len; j++) piece += pool[Math.floor(r() * pool.length)];
    }
    s += piece;
  }
  return i % 7 === 0 ? " " + s : s;
}

export function buildStrings() {
  const r = rng(20240531);
  const out = [...handPicked];
  for (let i = 0; i < 160; i++) out.push(randomString(r, i));
  return out;
}
