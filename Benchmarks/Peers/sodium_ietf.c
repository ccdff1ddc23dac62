/* Raw libsodium ChaCha20-Poly1305-IETF throughput at the message sizes of the transport benchmarks.
 *
 * The shared peer driver (../shared/peers/sodium/sodium_bench.c) prints the IETF construction only at
 * 1 KiB; the transport's 64 KiB figures must be compared with the same construction at 64 KiB, measured
 * in the same run, so scripts/bench-transport.sh builds and runs this next to it. Same timing method as
 * the peer driver (batches for ~BENCH_SECONDS, single thread, MBps = 10^6 bytes per second), 13 bytes of
 * associated data like a StateMesh frame header, combined (ciphertext||tag) API like the peer.
 * Prints `sodium-ietf METRIC VALUE` lines.
 * Build: cc -O2 -o sodium_ietf sodium_ietf.c $(pkg-config --cflags --libs libsodium) */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double secs_per = 0.4;
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define TIMED(batch, body)                                              \
    ({                                                                  \
        unsigned long long _n = 0;                                      \
        double _t0 = now(), _t;                                         \
        do {                                                            \
            for (int _i = 0; _i < (batch); _i++) { body; }              \
            _n += (batch);                                              \
            _t = now();                                                 \
        } while (_t - _t0 < secs_per);                                  \
        (double)_n / (_t - _t0);                                        \
    })

static volatile unsigned char sink;

static int bench(size_t len, const char *tag) {
    unsigned char *m = malloc(len), *c = malloc(len + crypto_aead_chacha20poly1305_ietf_ABYTES), *m2 = malloc(len);
    unsigned char key[crypto_aead_chacha20poly1305_ietf_KEYBYTES], nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    unsigned char ad[13];
    unsigned long long clen = 0, mlen = 0;
    if (!m || !c || !m2) return 1;
    randombytes_buf(m, len);
    randombytes_buf(key, sizeof key);
    randombytes_buf(nonce, sizeof nonce);
    randombytes_buf(ad, sizeof ad);
    int batch = len >= 65536 ? 4 : 256;
    int bad = 0;
    double ops = TIMED(batch, {
        nonce[4]++;
        bad |= crypto_aead_chacha20poly1305_ietf_encrypt(c, &clen, m, len, ad, sizeof ad, NULL, nonce, key);
        sink ^= c[0];
    });
    printf("sodium-ietf chacha20poly1305_ietf_encrypt_%s_MBps %.1f\n", tag, ops * len / 1e6);
    bad |= crypto_aead_chacha20poly1305_ietf_encrypt(c, &clen, m, len, ad, sizeof ad, NULL, nonce, key);
    ops = TIMED(batch, {
        bad |= crypto_aead_chacha20poly1305_ietf_decrypt(m2, &mlen, NULL, c, clen, ad, sizeof ad, nonce, key);
        sink ^= m2[0];
    });
    if (bad || mlen != len || memcmp(m, m2, len)) {
        fprintf(stderr, "ietf %s round trip failed\n", tag);
        return 1;
    }
    printf("sodium-ietf chacha20poly1305_ietf_decrypt_%s_MBps %.1f\n", tag, ops * len / 1e6);
    free(m);
    free(c);
    free(m2);
    return 0;
}

int main(void) {
    if (getenv("BENCH_SECONDS")) secs_per = atof(getenv("BENCH_SECONDS"));
    if (sodium_init() < 0) return 1;
    printf("sodium-ietf version %s\n", sodium_version_string());
    if (bench(1024, "1k") || bench(65536, "64k")) return 1;
    return 0;
}
