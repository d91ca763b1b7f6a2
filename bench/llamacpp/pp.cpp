// pp (bench/llamacpp; built by run.sh against llama.cpp sources, not part of
// the Go build): llama-bench's prompt-processing test (-p N -n 0) on the llama.h API:
// for each N, decode N tokens in one batch (n_batch 2048, n_ubatch 512 as
// llama-bench) into an empty cache, REPS times after a warm-up; prints the
// median time and tok/s. usage: pp MODEL THREADS REPS N...
#include "llama.h"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: pp MODEL THREADS REPS N...\n"); return 2; }
    int threads = atoi(argv[2]), reps = atoi(argv[3]);
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    fprintf(stderr, "system_info: %s\n", llama_print_system_info());
    const llama_vocab *vocab = llama_model_get_vocab(model);
    int nv = llama_vocab_n_tokens(vocab);
    for (int a = 4; a < argc; a++) {
        int n = atoi(argv[a]);
        auto cp = llama_context_default_params();
        cp.n_ctx = std::max(n, 512);
        cp.n_batch = 2048;
        cp.n_ubatch = 512;
        cp.n_threads = threads;
        cp.n_threads_batch = threads;
        cp.no_perf = true;
        llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) { fprintf(stderr, "context failed\n"); return 1; }
        std::vector<llama_token> toks(n);
        for (int i = 0; i < n; i++) toks[i] = (i * 7919 + 13) % nv;
        std::vector<double> ms;
        for (int r = 0; r <= reps; r++) {
            llama_memory_clear(llama_get_memory(ctx), false);
            auto t0 = std::chrono::steady_clock::now();
            for (int off = 0; off < n; off += 2048) {
                int k = std::min(2048, n - off);
                if (llama_decode(ctx, llama_batch_get_one(toks.data() + off, k)) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
            }
            llama_synchronize(ctx);
            double d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (r > 0) ms.push_back(d);  // r == 0: warm-up
        }
        std::sort(ms.begin(), ms.end());
        double med = ms[ms.size() / 2];
        printf("pp%d: %.1f ms  %.1f tok/s  (min %.1f ms, %d reps)\n", n, med, n / med * 1e3, ms[0], reps);
        fflush(stdout);
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
