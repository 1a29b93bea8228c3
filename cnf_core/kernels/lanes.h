/* Vectors of float lanes, one point per lane, and the exp2/sigmoid they need: shared by the kernels.
 * GCC/Clang vector extensions: 16 floats with AVX-512, 8 with AVX, 4 otherwise. No -ffast-math:
 * the rounding in `exp2_lanes` relies on IEEE arithmetic. */
#ifndef CNF_LAB_LANES_H
#define CNF_LAB_LANES_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* Points per vector and output rows per register block: what fits the vector registers of the target. */
#if defined(__AVX512F__)
#define LANES 16
#define ROWS 8
#elif defined(__AVX__)
#define LANES 8
#define ROWS 4
#else
#define LANES 4
#define ROWS 4
#endif
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

static inline vf splat(float a) { return (vf){0} + a; }

static inline vf clamp_lanes(vf x, float lo, float hi) {
    vi below = x < lo, above = x > hi; /* comparisons give -1 (all bits) where true */
    vi bits = ((vi)x & ~(below | above)) | ((vi)splat(lo) & below) | ((vi)splat(hi) & above);
    return (vf)bits;
}

/* 2^r for |r| ≤ 1/2 by a degree-6 fit: relative error 1e-7 in float32. */
static inline vf exp2_reduced(vf r) {
    vf p = splat(1.546531857457012e-4f);
    p = p * r + 1.3395285932347178e-3f;
    p = p * r + 9.618040174245834e-3f;
    p = p * r + 5.550340563058853e-2f;
    p = p * r + 2.4022650718688965e-1f;
    p = p * r + 6.931471824645996e-1f;
    return p * r + 1.0f;
}

/* 2^x lane by lane: x = n + r with n an integer and |r| ≤ 1/2, then 2^n · 2^r. */
static inline vf exp2_lanes(vf x) {
#if defined(__AVX512F__) && LANES == 16
    /* round, and scale by 2^n, in one instruction each; vscalefps saturates to 0 and ∞ by itself */
    const __m512 n = _mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return (vf)_mm512_scalef_ps((__m512)exp2_reduced(x - (vf)n), n);
#else
    x = clamp_lanes(x, -126.0f, 126.0f);
    const float round_magic = 12582912.0f; /* 1.5·2^23: adding then subtracting it rounds to an integer */
    const vf n = (x + round_magic) - round_magic;
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return exp2_reduced(x - n) * (vf)bits;
#endif
}

/* σ(q) for pre-activations given as q' = -q·log₂e (folded into the weights): 1 / (1 + 2^q'). */
static inline vf sigmoid_lanes(vf q_log2) { return 1.0f / (1.0f + exp2_lanes(q_log2)); }

static inline float sigmoid(float q) { return 1.0f / (1.0f + expf(-q)); }

#define LOG2E 1.44269504088896341f

#endif
