// The libFuzzer entry point run without libFuzzer (g++ builds, and ctest everywhere): every
// file of the corpus directories given, then deterministic mutations of them (bit flips,
// overwritten octets, truncations, insertions, splices of two inputs, random tails).
// Usage: fuzz_TARGET [-n ITERATIONS] [-s SEED] CORPUS_DIR_OR_FILE...
// With clang, -DDP_FUZZ=ON builds the same targets against libFuzzer (coverage-guided).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void add_file(const std::string& path, std::vector<std::vector<uint8_t>>& out) {
    std::ifstream f(path, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void add_path(const std::string& path, std::vector<std::vector<uint8_t>>& out) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        std::fprintf(stderr, "fuzz driver: cannot read %s\n", path.c_str());
        std::exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path, out);
        return;
    }
    DIR* d = opendir(path.c_str());
    std::vector<std::string> names;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());  // a fixed order: runs are repeatable
    for (const auto& n : names) add_file(path + "/" + n, out);
}

}  // namespace

int main(int argc, char** argv) {
    long iterations = 100000;
    uint64_t seed = 20261201;
    std::vector<std::vector<uint8_t>> corpus;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-n" && i + 1 < argc) iterations = std::atol(argv[++i]);
        else if (a == "-s" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
        else add_path(a, corpus);
    }
    if (corpus.empty()) corpus.emplace_back();
    for (const auto& in : corpus) LLVMFuzzerTestOneInput(in.data(), in.size());
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> buf;
    for (long i = 0; i < iterations; ++i) {
        buf = corpus[rng() % corpus.size()];
        const int mutations = 1 + static_cast<int>(rng() % 6);
        for (int m = 0; m < mutations; ++m) {
            if (buf.empty()) buf.push_back(static_cast<uint8_t>(rng()));
            switch (rng() % 6) {
                case 0: buf[rng() % buf.size()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                case 1: buf[rng() % buf.size()] = static_cast<uint8_t>(rng()); break;
                case 2: buf.resize(rng() % (buf.size() + 1)); break;
                case 3: buf.insert(buf.begin() + static_cast<long>(rng() % (buf.size() + 1)), static_cast<uint8_t>(rng())); break;
                case 4: {  // splice: the tail of another input
                    const auto& other = corpus[rng() % corpus.size()];
                    if (other.empty()) break;
                    const size_t at = rng() % (buf.size() + 1), from = rng() % other.size();
                    buf.resize(at);
                    buf.insert(buf.end(), other.begin() + static_cast<long>(from), other.end());
                    break;
                }
                case 5: {
                    const size_t extra = rng() % 64;
                    for (size_t k = 0; k < extra; ++k) buf.push_back(static_cast<uint8_t>(rng()));
                    break;
                }
            }
        }
        LLVMFuzzerTestOneInput(buf.data(), buf.size());
    }
    std::printf("%s: %zu corpus inputs and %ld mutations, no invariant broken\n", argv[0], corpus.size(), iterations);
    return 0;
}
