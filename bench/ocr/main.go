// Command ocr measures the multimodal plugin's OCR pipeline against
// @gutenye/ocr-node and tesseract on the rendered corpus: it runs
// plugins/multimodal/internal/ocrbench (internal to the plugin, so built
// by path, as bench/llm builds rawdecode) with the same flags. Run it from
// the repository root:
//
//	go run ./bench/ocr [-n 100] [-seed 1] [-threads 2] [-keep DIR] [-classify]
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	cmd := exec.Command("go", append([]string{"run", "./plugins/multimodal/internal/ocrbench"}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ocr:", err)
		os.Exit(1)
	}
}
