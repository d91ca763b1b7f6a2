# dsmil.hcl: the default configuration shipped with DSMIL L7.
#
# Relative paths are relative to this file's directory.

include = ["policies/*.hcl"]

shim {
  listen         = "127.0.0.1:8001"
  max_body_bytes = "4MiB"
}

router {
  socket = "run/router.sock"
  # request_timeout = "60s" # one request (an agent task's LLM step included)
  # agent_timeout   = "10m" # one agent task: its TIMEOUT_MS or timeout_seconds, at most this
}

admin {
  socket = "run/admin.sock"
}

metrics {
  listen = "127.0.0.1:9108"
}

# The echo plugin answers every prompt with the prompt: a smoke test of the
# whole path from HTTP to plugin and back.
plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

model "dsmil-echo" {
  profile     = "echo"
  description = "Echoes the prompt back; for smoke tests."
}

# The llm-amx plugin (Device 47) runs a decoder-only LLM on ONNX Runtime's
# CPU kernels (plugins/llm-amx/README.md). Out of the box it serves a
# random-weight demo model that `make run` writes on first run (make
# demo-model: the Qwen2.5-0.5B shape, int4): it answers gibberish, at a real
# model's speed. To serve a real model, point `model` at its directory and
# name it truthfully, here and in the model block (docs/models.md).
plugin "llm-amx" {
  path          = "bin/dsmil-llm-amx"
  device_id     = 47
  profiles      = ["llm-amx-demo", "llm-7b-amx"] # llm-7b-amx: the spec's profile of Device 47
  # weights (~780 MB, and ~580 MB of the prefill graph's: prefill_graph
  # below) + one prefill chunk's working memory (~310 MB at max_context)
  # + KV cache (~1.1 GB) and the prefix cache in it.
  memory_budget = "3GiB"
  # Plugins get nothing of the host's environment but PATH, HOME, the
  # locale, the Go runtime's variables and what pass_env names: here the
  # ONNX Runtime library `make run` points DSMIL_ORT_LIB at (or set the
  # ort_library setting below).
  pass_env      = ["DSMIL_ORT_LIB"]
  # start_timeout = "30s" # the default: spawning the plugin and loading its
  # model must take less; raise it for bigger models (a 7B model: "120s").

  # A relative model path is relative to this file's directory: plugins run
  # there.
  model      = "run/models/dsmil-random-qwen2.5-0.5b-int4"
  model_name = "dsmil-demo-random-qwen2.5-0.5b-int4"
  max_tokens = 512 # for requests that set none
  # The model's 32768-token context would need 1.48 GiB of prefill working
  # memory (prefill_chunk 256), which would leave 3 GiB with the weights
  # almost no KV cache.
  max_context = 8192
  # Idle ONNX Runtime threads sleep instead of spinning: with llm-npu on the
  # same cores, spinning llm-amx threads took half its decode rate and 40%
  # of llm-npu's when both decoded (and 18% of the two's total even when
  # they spin only inside a run, force_spinning_stop); alone, llm-amx
  # decodes ~16% slower without spinning (bench/llm -npu,
  # docs/performance.md). Alone on a host: allow_spinning = true.
  allow_spinning = false
  # prefill_graph = "auto": the demo model comes with its prefill graph
  # (make demo-model: model_q4_prefill.onnx, int8 linears through ONNX
  # Runtime's AMX/VNNI int8 GEMM), which prompt chunks and batch steps of 8
  # or more rows run on: ~1.5x llama.cpp's prefill at 128 tokens on an AMX Xeon
  # (docs/performance.md). A model without one runs everything on its own
  # graph.
  # threads = 0 (one per core), parallelism = 8, batching = true, queue = 16,
  # kv_budget = memory_budget - weights - prefill memory: the defaults.
}

model "dsmil-demo-random-qwen2.5-0.5b-int4" {
  profile     = "llm-amx-demo"
  # vision    = "dsmil-ocr-ppocrv4" # images in its chats transcribed by Device 45 first (docs/clients.md)
  description = "Random-weight demo decoder (Qwen2.5-0.5B shape, int4): gibberish at a real model's speed."
}

# The llm-npu plugin (Device 44, spec §2.2: a 1B micro-LLM in 2 GB) runs on
# an NPU through ONNX Runtime's OpenVINO, QNN or VitisAI execution provider
# when ONNX Runtime is built with one and the NPU's device is present; else
# (as with the ONNX Runtime `make ort` installs, a CPU build) on the CPU,
# which it says in `plugins list`, /v1/models, the metrics and one warning
# (plugins/llm-npu/README.md). Out of the box it serves a random-weight demo
# model that `make run` writes on first run (make demo-model: the
# TinyLlama-1.1B shape, int4, ~780 MB): gibberish at a real 1B model's speed.
plugin "llm-npu" {
  path          = "bin/dsmil-llm-npu"
  device_id     = 44
  profiles      = ["llm-1b-npu"]
  memory_budget = "2GiB" # weights (~780 MB) + one prefill chunk + KV cache
  pass_env      = ["DSMIL_ORT_LIB"]
  start_timeout = "60s"

  model      = "run/models/dsmil-random-tinyllama-1.1b-int4"
  model_name = "dsmil-demo-random-tinyllama-1.1b-int4"
  max_tokens = 256 # for requests that set none
  # execution_provider = "auto", require_accelerator = false, threads = cores / 4 (at least 1),
  # allow_spinning = false, max_context = 4096, parallelism = 4, queue = 8: the defaults.
}

model "dsmil-demo-random-tinyllama-1.1b-int4" {
  profile     = "llm-1b-npu"
  description = "Random-weight demo micro-LLM (TinyLlama-1.1B shape, int4) on Device 44: gibberish at a real 1B model's speed."
}

# The embed plugin (Device 49) serves /v1/embeddings with a
# sentence-transformers text encoder on ONNX Runtime
# (plugins/embed/README.md). Out of the box: a random-weight encoder of
# all-MiniLM-L6-v2's shape that `make run` writes on first run (make
# demo-model): real 384-dimensional unit vectors at a real model's speed,
# meaningless as semantics. To serve a real model, point `model` at its
# sentence-transformers directory and name it truthfully (docs/models.md).
plugin "embed" {
  path          = "bin/dsmil-embed"
  device_id     = 49
  profiles      = ["embed-demo"]
  pass_env      = ["DSMIL_ORT_LIB"]

  model      = "run/models/dsmil-random-minilm-l6"
  model_name = "dsmil-demo-random-minilm-l6"
  # max_batch = 32, threads = 0, matryoshka = false, concurrent_runs = "auto"
  # (one single-threaded run per core, a lone long input on every core):
  # the defaults.
}

model "dsmil-demo-random-minilm-l6" {
  profile     = "embed-demo"
  description = "Random-weight demo text encoder (all-MiniLM-L6-v2 shape, 384 dimensions): vectors without meaning, at a real model's speed."
}

# A second embed process serves a CLIP dual encoder: texts and images
# (image_url data: URLs in /v1/embeddings' input, a DSMIL extension) in one
# space. Out of the box a tiny random-weight one (make demo-model writes it,
# 0.5 MB): it takes every step a real CLIP takes — decoding within the
# image limits, the bicubic resize and crop, both encoders — but on 32x32
# crops into 24 dimensions, so it is quick and its vectors mean nothing.
# `dsmil-mkmodel -preset clip-vit-b32` writes a ViT-B/32-shaped one (580
# MB); docs/models.md says how to serve a real export.
plugin "embed-clip" {
  path      = "bin/dsmil-embed"
  device_id = 49
  profiles  = ["embed-clip-demo"]
  pass_env  = ["DSMIL_ORT_LIB"]

  model      = "run/models/dsmil-random-tiny-clip"
  model_name = "dsmil-demo-random-tiny-clip"
  threads    = 1
  # max_image_bytes = "20MiB", max_image_pixels = 36000000, max_images = 16: the defaults.
}

model "dsmil-demo-random-tiny-clip" {
  profile     = "embed-clip-demo"
  description = "Random-weight demo CLIP dual encoder (tiny: 2+2 layers, 32x32 crops, 24 dimensions): texts and images in one space, vectors without meaning."
}

# The agent plugin (Device 48) runs L7_AGENT_TASKs (plugins/agent/README.md):
# tools over read-only workspace roots, every LLM step through the router
# with the task's tenant and attributes. Agent tasks need a SOC_ASSIST (or
# TRAINING) tenant; LOCAL_TOOL_USER below is ANALYSIS_ONLY, so the router
# refuses its tasks (builtin.operation).
plugin "agent" {
  path      = "bin/dsmil-agent"
  device_id = 48
  profiles  = ["agent"]

  workspaces    = { alerts = "deploy/agent/workspace/alerts", logs = "deploy/agent/workspace/logs" }
  artifacts_dir = "run/agent/artifacts"

  tasks = {
    "summarize-logs" = {
      instructions = <<-EOT
        Summarize the logs under {{.path}}. List the directory, grep or read the files that matter,
        and run extract_iocs on what looks suspicious. Answer with a short summary: the time span,
        notable events and errors, and the indicators you found.
      EOT
      parameters = ["path"]
      profile    = "llm-amx-demo"
      tools      = ["list_dir", "read_file", "grep", "extract_iocs"]
      max_steps  = 6
      max_tokens = 24000
      wall_time  = "120s"
    }
    "triage-alert" = {
      instructions = <<-EOT
        Triage the alert in {{.alert}}. Read it (a screenshot with read_image, text with read_file),
        extract its indicators with extract_iocs, grep the logs under {{.logs}} for each indicator,
        then write a triage report with write_report (verdict, evidence with file and line,
        indicators, recommended next steps) and answer with the verdict in one sentence.
      EOT
      parameters  = ["alert", "logs"]
      profile     = "llm-amx-demo"
      ocr_profile = "ocr"               # read_image: screenshots transcribed by Device 45, through the router
      ocr_model   = "dsmil-ocr-ppocrv4"
      tools       = ["list_dir", "read_file", "read_image", "grep", "extract_iocs", "write_report"]
      max_steps  = 10
      max_tokens = 32000
      wall_time  = "180s"
    }
  }
}

# The multimodal plugin (Device 45) reads the text in images with
# PaddleOCR's PP-OCRv4 models on ONNX Runtime (plugins/multimodal/README.md):
# chat requests with image_url parts (data: URLs) are answered with the
# lines it reads. `make build` fetches the models into the user cache.
plugin "multimodal" {
  path          = "bin/dsmil-multimodal"
  device_id     = 45
  profiles      = ["ocr"]
  memory_budget = "1GiB"
  pass_env      = ["DSMIL_ORT_LIB"]
  # models     = "/srv/models/ppocrv4"  # default: the `make ocr-models` cache
  # file_roots = ["/srv/screenshots"]   # file:// image URLs allowed under these
}

model "dsmil-ocr-ppocrv4" {
  profile     = "ocr"
  description = "Text in images (PaddleOCR PP-OCRv4 detection + recognition): lines in reading order, or {\"lines\": [...]} with response_format json_object."
}

# Local tools authenticate with the key in $DSMIL_OPENAI_API_KEY.
tenant "LOCAL_TOOL_USER" {
  api_key_env    = "DSMIL_OPENAI_API_KEY"
  compartments   = ["SOC", "DEV"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
