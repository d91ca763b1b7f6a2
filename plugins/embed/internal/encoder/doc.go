// Package encoder runs sentence-transformers text encoders on ONNX Runtime:
// a model directory in the sentence-transformers / Optimum layout
// (onnx/model.onnx taking input_ids, attention_mask and, when the graph
// has it, token_type_ids, and giving last_hidden_state or
// sentence_embedding; modules.json; 1_Pooling/config.json;
// sentence_bert_config.json; tokenizer.json), the pooling its Pooling
// module names (CLS, mean or last token) and the normalisation of its
// Normalize module.
//
// Embed runs the sequences it is given as one ONNX Runtime batch, each
// padded to the longest; the padding is masked out of attention and of the
// pooling, so a sequence's vector does not depend on what it is batched
// with (to float rounding).
package encoder
