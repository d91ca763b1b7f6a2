// batched (bench/llamacpp; built by build.sh against llama.cpp sources, not
// part of the Go build): llama-batched-bench's test
// (tools/batched-bench/batched-bench.cpp) on the llama.h API, for the
// anchor of issue 15 (bench/llm -streams -llamacpp).
//
// For each NPL: a context with n_seq_max = NPL, n_ctx = NPL·(NPP+NTG)
// (NPP + NPL·NTG with -pps), n_batch 2048, n_ubatch 512, flash attention
// and everything else at llama.cpp's defaults. Prompt: NPL sequences of NPP
// tokens each (positions 0..NPP-1, sequence j), all in one batch split into
// n_batch pieces, logits for the batch's last token only; with -pps one
// prompt in sequence 0 copied to the others (llama_memory_seq_cp). Decode:
// NTG steps, each one llama_decode of NPL tokens (one per sequence, at
// position NPP+i, logits for every one) followed by llama_synchronize; no
// sampling, as llama-batched-bench. The prompt time starts before clearing
// the cache (as there); S_TG = NPL·NTG / decode time, S_PP = NPL·NPP (NPP
// with -pps) / prompt time.
//
// Differences from llama-batched-bench: token ids are a fixed
// pseudo-random sequence (it uses id 0 throughout; the cost is the same),
// the KV cache is unified by default (-kvu: the llama.cpp server's default
// when its slot count is automatic; llama-batched-bench defaults to one
// KV stream per sequence, -no-kvu here), one context per NPL instead of
// one of -c cells for all, and each NPL is run once as a warm-up (the
// prompt and min(NTG, 8) decode steps) and then REPS times, printing the
// median (it runs once, after a 16-token warm-up decode).
//
// usage: batched -m MODEL [-t 2] [-r 3] [-npp 128] [-ntg 128] [-npl 1,2,4,8] [-pps] [-no-kvu]
// output: one line per NPL, "batched npl=… npp=… ntg=… t_pp_ms=… s_pp=…
// t_tg_ms=… s_tg=… s_tg_best=… reps=…" on stdout; llama.cpp's log on stderr.
#include "llama.h"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static std::vector<int> parse_list(const char *s) {
    std::vector<int> out;
    std::string cur;
    for (const char *p = s;; p++) {
        if (*p == ',' || *p == 0) {
            if (cur.empty()) return {};
            char *end;
            long v = strtol(cur.c_str(), &end, 10);
            if (*end != 0 || v < 1 || v > 1024) return {};
            out.push_back((int)v);
            cur.clear();
            if (*p == 0) break;
        } else {
            cur += *p;
        }
    }
    return out;
}

static int usage() {
    fprintf(stderr, "usage: batched -m MODEL [-t THREADS] [-r REPS] [-npp N] [-ntg N] [-npl N,N,...] [-pps] [-no-kvu]\n");
    return 2;
}

static double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// decode_all decodes batch in pieces of n_batch tokens, synchronizing after
// each (llama-batched-bench's decode_helper).
static bool decode_all(llama_context *ctx, llama_batch &batch, int n_batch) {
    for (int i = 0; i < batch.n_tokens; i += n_batch) {
        int n = std::min(n_batch, batch.n_tokens - i);
        llama_batch view = {n, batch.token + i, nullptr, batch.pos + i, batch.n_seq_id + i, batch.seq_id + i, batch.logits + i};
        if (llama_decode(ctx, view) != 0) return false;
        llama_synchronize(ctx);
    }
    return true;
}

static void add(llama_batch &b, llama_token id, llama_pos pos, llama_seq_id seq, bool logits) {
    b.token[b.n_tokens] = id;
    b.pos[b.n_tokens] = pos;
    b.n_seq_id[b.n_tokens] = 1;
    b.seq_id[b.n_tokens][0] = seq;
    b.logits[b.n_tokens] = logits;
    b.n_tokens++;
}

int main(int argc, char **argv) {
    const char *model_path = nullptr;
    int threads = 2, reps = 3, npp = 128, ntg = 128;
    std::vector<int> npls = {1, 2, 4, 8};
    bool pps = false, kvu = true;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        bool has = i + 1 < argc;
        if (a == "-m" && has) model_path = argv[++i];
        else if (a == "-t" && has) threads = atoi(argv[++i]);
        else if (a == "-r" && has) reps = atoi(argv[++i]);
        else if (a == "-npp" && has) npp = atoi(argv[++i]);
        else if (a == "-ntg" && has) ntg = atoi(argv[++i]);
        else if (a == "-npl" && has) npls = parse_list(argv[++i]);
        else if (a == "-pps") pps = true;
        else if (a == "-no-kvu") kvu = false;
        else if (a == "-kvu") kvu = true;
        else return usage();
    }
    if (!model_path || threads < 1 || reps < 1 || npp < 1 || ntg < 1 || npls.empty()) return usage();
    const int n_batch = 2048, n_ubatch = 512;

    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "batched: cannot load %s\n", model_path); return 1; }
    fprintf(stderr, "system_info: %s\n", llama_print_system_info());
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));

    for (int npl : npls) {
        auto cp = llama_context_default_params();
        cp.n_ctx = pps ? npp + npl * ntg : npl * (npp + ntg);
        cp.n_batch = n_batch;
        cp.n_ubatch = n_ubatch;
        cp.n_seq_max = npl;
        cp.kv_unified = kvu;
        cp.n_threads = threads;
        cp.n_threads_batch = threads;
        cp.no_perf = true;
        llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) { fprintf(stderr, "batched: cannot create a context for npl %d\n", npl); return 1; }
        llama_memory_t mem = llama_get_memory(ctx);
        llama_batch batch = llama_batch_init(std::max(npl * npp, npl), 0, 1);
        std::vector<double> pp_ms, tg_ms;
        for (int r = 0; r <= reps; r++) {  // r == 0: warm-up
            int steps = r == 0 ? std::min(ntg, 8) : ntg;
            batch.n_tokens = 0;
            for (int j = 0; j < (pps ? 1 : npl); j++)
                for (int i = 0; i < npp; i++) add(batch, (llama_token)((i * 7919 + j * 104729 + 13) % nv), i, j, false);
            batch.logits[batch.n_tokens - 1] = true;
            double t0 = now_ms();
            llama_memory_clear(mem, true);
            if (!decode_all(ctx, batch, n_batch)) { fprintf(stderr, "batched: prompt decode failed (npl %d)\n", npl); return 1; }
            if (pps)
                for (int j = 1; j < npl; j++) llama_memory_seq_cp(mem, 0, j, -1, -1);
            double t1 = now_ms();
            for (int i = 0; i < steps; i++) {
                batch.n_tokens = 0;
                for (int j = 0; j < npl; j++) add(batch, (llama_token)((i * 31 + j * 17 + 1) % nv), npp + i, j, true);
                if (!decode_all(ctx, batch, n_batch)) { fprintf(stderr, "batched: decode step %d failed (npl %d)\n", i, npl); return 1; }
            }
            double t2 = now_ms();
            if (r > 0) {
                pp_ms.push_back(t1 - t0);
                tg_ms.push_back(t2 - t1);
            }
        }
        std::vector<double> sp = pp_ms, st = tg_ms;
        std::sort(sp.begin(), sp.end());
        std::sort(st.begin(), st.end());
        double pp = sp[sp.size() / 2], tg = st[st.size() / 2];
        double pp_tokens = pps ? npp : (double)npl * npp, tg_tokens = (double)npl * ntg;
        printf("batched npl=%d npp=%d ntg=%d pps=%d kvu=%d threads=%d t_pp_ms=%.1f s_pp=%.2f t_tg_ms=%.1f s_tg=%.2f s_tg_best=%.2f reps=%d\n",
               npl, npp, ntg, pps ? 1 : 0, kvu ? 1 : 0, threads, pp, pp_tokens / pp * 1e3, tg, tg_tokens / tg * 1e3, tg_tokens / st[0] * 1e3, reps);
        fflush(stdout);
        llama_batch_free(batch);
        llama_free(ctx);
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
