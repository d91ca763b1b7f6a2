// Package chattmpl renders a model's Jinja chat template (the chat_template
// of tokenizer_config.json) the way Hugging Face's apply_chat_template does:
// trim_blocks and lstrip_blocks on, the variables messages,
// add_generation_prompt, tools, documents, bos_token, eos_token and the other
// special tokens, and the helpers raise_exception and strftime_now. Models
// without a template get a built-in fallback (Llama-2 [INST] or ChatML).
//
// The Jinja engine is github.com/nikolalohinski/gonja/v2, with tojson
// replaced by Hugging Face's (Python json.dumps with ensure_ascii=False) and
// the statements that read other files disabled. Renderings are verified
// against transformers.js on real templates, see testdata/.
package chattmpl
