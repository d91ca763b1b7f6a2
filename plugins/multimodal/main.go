// Command dsmil-multimodal is Device 45's plugin: it reads the text in
// images with PaddleOCR's PP-OCRv4 models on ONNX Runtime. dsmil-host
// starts it; see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/multimodal/internal/multimodal"
	"github.com/dsmil/l7/sdk"
)

func main() { sdk.Serve(&sdk.ServeConfig{Workload: multimodal.New()}) }
