// Command dsmil-embed is the embeddings plugin (Device 49): it serves
// OpenAI /v1/embeddings, through the shim and the router, with a
// sentence-transformers text encoder on ONNX Runtime. dsmil-host spawns
// it; see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/embed/internal/embed"
	"github.com/dsmil/l7/sdk"
)

func main() { sdk.Serve(&sdk.ServeConfig{Workload: embed.New()}) }
