/* f(z, t) and tr ∂f/∂z of a 2-D tanh concatsquash network, without autograd.
 *
 * The same mathematics as the torch pass `ConcatSquashField.velocity_and_divergence`
 * (field.py), fused into one pass per block of points so nothing leaves the cache:
 * each layer's gate and shift fold into its weights at the time t, the hidden
 * state is s = σ(2·pre) (tanh = 2s - 1 absorbed by the next layer's weights),
 * and the two tangents ∂s/∂z_j ride along with s through every matrix product.
 * Loaded by `cnf_core/kernels` (see build.py) and checked against the torch pass.
 *
 * Points sit in the lanes of a vector (GCC/Clang vector extensions: 16
 * floats with AVX-512, 8 with AVX, 4 otherwise), so a weight is one broadcast
 * shared by the state and both tangents. No -ffast-math: the rounding in
 * `exp2_lanes` relies on IEEE arithmetic.
 *
 * Parameters come raw, layer after layer: W (out×in, row-major), b, w_g, b_g,
 * w_b (each of length out), as in ConcatSquashLinear.
 */
#include "lanes.h"

/* Fold every layer's gate and shift at time t, then rewrite it for the state s = σ(2·pre), with the
 * pre-activations of σ given as -2·pre·log₂e (see `sigmoid_lanes`). */
static void fold(int depth, const int *widths, const float *params, float t, float *weights, float *biases) {
    for (int i = 0; i < depth; i++) {
        const int in = widths[i], out = widths[i + 1];
        const float *W = params, *b = W + out * in, *gw = b + out, *gb = gw + out, *sw = gb + out;
        params = sw + out;
        for (int j = 0; j < out; j++) {
            const float gate = sigmoid(gw[j] * t + gb[j]);
            float bias = b[j] * gate + sw[j] * t, row_sum = 0.0f;
            for (int k = 0; k < in; k++) {
                const float w = W[j * in + k] * gate;
                row_sum += w;
                weights[j * in + k] = w;
            }
            float scale = 1.0f;
            if (i > 0) { /* fed by tanh = 2s - 1: W(2s - 1) + b = (2W)s + (b - W·1) */
                bias -= row_sum;
                scale *= 2.0f;
            }
            if (i < depth - 1) { /* feeds σ(2·) as 1 / (1 + 2^(-2·pre·log₂e)) */
                scale *= -2.0f * LOG2E;
                bias *= -2.0f * LOG2E;
            }
            for (int k = 0; k < in; k++) weights[j * in + k] *= scale;
            biases[j] = bias;
        }
        weights += out * in;
        biases += out;
    }
}

/* One hidden layer on a block: (s, ∂s/∂z₁, ∂s/∂z₂) of width `in` to the next ones of width `out`.
 * ROWS output units at a time: 3·ROWS accumulators stay in registers while each input vector is loaded once. */
static void hidden_layer(int in, int out, const float *W, const float *b, const vf *s, const vf *t1, const vf *t2,
                         vf *s_out, vf *t1_out, vf *t2_out) {
    for (int j = 0; j < out; j += ROWS) {
        const int rows = out - j < ROWS ? out - j : ROWS;
        if (rows == ROWS) {
            vf a[ROWS], c[ROWS], d[ROWS];
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++) {
                a[r] = splat(b[j + r]);
                c[r] = splat(0.0f);
                d[r] = splat(0.0f);
            }
            const float *w = W + j * in;
            for (int k = 0; k < in; k++) {
                const vf x = s[k], y = t1[k], u = t2[k];
#pragma GCC unroll 8
                for (int r = 0; r < ROWS; r++) {
                    const float weight = w[r * in + k];
                    a[r] += weight * x;
                    c[r] += weight * y;
                    d[r] += weight * u;
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++) {
                const vf v = sigmoid_lanes(a[r]), slope = v - v * v;
                s_out[j + r] = v;
                t1_out[j + r] = c[r] * slope;
                t2_out[j + r] = d[r] * slope;
            }
            continue;
        }
        for (int r = 0; r < rows; r++) {
            const float *w = W + (j + r) * in;
            vf a = splat(b[j + r]), c = splat(0.0f), d = c;
            for (int k = 0; k < in; k++) {
                a += w[k] * s[k];
                c += w[k] * t1[k];
                d += w[k] * t2[k];
            }
            const vf v = sigmoid_lanes(a), slope = v - v * v;
            s_out[j + r] = v;
            t1_out[j + r] = c * slope;
            t2_out[j + r] = d * slope;
        }
    }
}

/* A network folded at one time, with room for one block's hidden vectors. */
typedef struct {
    int depth;
    const int *widths;
    float *weights, *biases; /* folded, layer after layer */
    vf *state;               /* 6 × widest vectors: (s, ∂s/∂z₁, ∂s/∂z₂) twice */
    int widest;
    float trace_scale; /* each σ layer's weights carry -log₂e, so its tangents come out -log₂e times too large */
} network;

static int network_init(network *net, int depth, const int *widths) {
    long folded = 0, units = 0;
    int widest = 0;
    for (int i = 0; i < depth; i++) {
        folded += (long)widths[i] * widths[i + 1];
        units += widths[i + 1];
        if (widths[i + 1] > widest) widest = widths[i + 1];
    }
    net->depth = depth;
    net->widths = widths;
    net->widest = widest;
    net->trace_scale = 1.0f;
    for (int i = 0; i < depth - 1; i++) net->trace_scale *= -1.0f / LOG2E;
    net->weights = malloc(sizeof(float) * (folded + units));
    net->state = aligned_alloc(sizeof(vf), sizeof(vf) * 6 * (size_t)widest);
    if (!net->weights || !net->state) {
        free(net->weights);
        free(net->state);
        return -1;
    }
    net->biases = net->weights + folded;
    return 0;
}

static void network_free(network *net) {
    free(net->weights);
    free(net->state);
}

/* f = (f1, f2) and tr ∂f/∂z for the LANES points (x, y) of one block. */
static void network_block(const network *net, vf x, vf y, vf *f1, vf *f2, vf *trace) {
    const int depth = net->depth, *widths = net->widths, widest = net->widest;
    vf *s = net->state, *t1 = s + widest, *t2 = t1 + widest, *s_next = t2 + widest, *t1_next = s_next + widest,
       *t2_next = t1_next + widest;
    const float *W = net->weights, *b = net->biases;
    for (int j = 0; j < widths[1]; j++) {
        const float w_x = W[2 * j], w_y = W[2 * j + 1];
        const vf v = sigmoid_lanes(w_x * x + w_y * y + b[j]), slope = v - v * v;
        s[j] = v;
        t1[j] = slope * w_x;
        t2[j] = slope * w_y;
    }
    W += 2 * widths[1];
    b += widths[1];
    for (int i = 1; i < depth - 1; i++) {
        hidden_layer(widths[i], widths[i + 1], W, b, s, t1, t2, s_next, t1_next, t2_next);
        W += widths[i] * widths[i + 1];
        b += widths[i + 1];
        vf *swap = s; s = s_next; s_next = swap;
        swap = t1; t1 = t1_next; t1_next = swap;
        swap = t2; t2 = t2_next; t2_next = swap;
    }
    const int in = widths[depth - 1];
    vf a1 = splat(b[0]), a2 = splat(b[1]), tr = splat(0.0f);
    for (int k = 0; k < in; k++) {
        const float u = W[k], w = W[in + k];
        a1 += u * s[k];
        a2 += w * s[k];
        tr += u * t1[k] + w * t2[k];
    }
    *f1 = a1;
    *f2 = a2;
    *trace = tr * net->trace_scale;
}

/* The field at time t on n points stored with `stride` floats each (z₁, z₂ first): out gets
 * (scale·f₁, scale·f₂, -scale·tr ∂f/∂z) with the same stride, or, when out_divergence is given,
 * scale·f into out (n×2) and scale·tr into out_divergence. */
static void network_apply(network *net, const float *params, float t, long n, const float *z, int stride, float scale,
                          float *out, int out_stride, float *out_divergence) {
    fold(net->depth, net->widths, params, t, net->weights, net->biases);
    for (long start = 0; start < n; start += LANES) {
        const int m = n - start < LANES ? (int)(n - start) : LANES;
        vf x = splat(0.0f), y = x, f1, f2, trace;
        for (int p = 0; p < m; p++) {
            x[p] = z[stride * (start + p)];
            y[p] = z[stride * (start + p) + 1];
        }
        network_block(net, x, y, &f1, &f2, &trace);
        for (int p = 0; p < m; p++) {
            float *row = out + out_stride * (start + p);
            row[0] = scale * f1[p];
            row[1] = scale * f2[p];
            if (out_divergence)
                out_divergence[start + p] = scale * trace[p];
            else
                row[2] = -scale * trace[p];
        }
    }
}

/* velocity (n×2) and divergence (n) of the network with `depth` layers of widths[0..depth], at time t. */
int tanh_field_2d(long n, int depth, const int *widths, const float *params, float t, const float *z, float *velocity,
                  float *divergence) {
    network net;
    if (network_init(&net, depth, widths)) return -1;
    network_apply(&net, params, t, n, z, 2, 1.0f, velocity, 2, divergence);
    network_free(&net);
    return 0;
}

/* ------------------------------------------------------------------ one density frame
 *
 * log p_t(x) = log N(z(0)) - ∫₀ᵗ tr ∂f/∂z dτ, solved backwards from t on the clock s ∈ [0, 1],
 * τ = t(1 - s): d(z, Δ)/ds = (-t f(z, τ), t tr ∂f/∂z), and log p_t(x) = log N(z) - Δ at s = 1.
 *
 * Dormand–Prince 5(4) with the error control of torchdiffeq's dopri5: error ratio = RMS over every
 * component of err / (atol + rtol·max(|y₀|, |y₁|)), accept when ≤ 1, next step
 * h·min(10, max(0.9·ratio^(-1/5), 0.2 if rejected else 1)), first-same-as-last. The last step
 * is shortened to end exactly at s = 1, as torchdiffeq's is with step_t = 1 (`solvers.landing`);
 * without it torchdiffeq steps past 1 and interpolates.
 */

enum { SOLVED = 0, NFE_CAP = 1, TIME_CAP = 2, DIVERGED = 3, UNDERFLOW = 4, NO_MEMORY = 5 };

static const double C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double A[7][6] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
};
/* fifth-order weights (= the last row of A) minus the embedded fourth-order ones, Shampine's as in torchdiffeq */
static const double E[7] = {35.0 / 384 - 1951.0 / 21600, 0, 500.0 / 1113 - 22642.0 / 50085, 125.0 / 192 - 451.0 / 720,
                            -2187.0 / 6784 + 12231.0 / 42400, 11.0 / 84 - 649.0 / 6300, -1.0 / 60};

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + 1e-9 * now.tv_nsec;
}

/* Solve one frame: x (n×2) at time t → z (n×2) at time 0 and Δ (n). counts: NFE, accepted, rejected steps.
 * The first `capacity` attempted steps go to `steps` as (s, h, 1 if accepted else 0) triples, so tests
 * can hold the controller to torchdiffeq's. Stops with a status (not SOLVED) at max_nfe evaluations,
 * after max_seconds (≤ 0: no limit), on a non-finite error, or when the step underflows. */
int dopri5_frame_2d(long n, int depth, const int *widths, const float *params, double t, double first_step,
                    double rtol, double atol, long max_nfe, double max_seconds, const float *x, float *z_out,
                    float *delta_out, long *counts, double *steps, long capacity) {
    const long size = 3 * n;
    const double started = seconds_now();
    network net;
    if (network_init(&net, depth, widths)) return NO_MEMORY;
    float *memory = malloc(sizeof(float) * size * 10);
    if (!memory) {
        network_free(&net);
        return NO_MEMORY;
    }
    float *y = memory, *stage = y + size, *next = stage + size, *k[7];
    for (int i = 0; i < 7; i++) k[i] = next + size * (i + 1);
    for (long p = 0; p < n; p++) {
        y[3 * p] = x[2 * p];
        y[3 * p + 1] = x[2 * p + 1];
        y[3 * p + 2] = 0.0f;
    }
    long nfe = 0, accepted = 0, rejected = 0;
    int status = SOLVED;
#define EVALUATE(s, from, into)                                                                     \
    do {                                                                                            \
        if (nfe >= max_nfe) { status = NFE_CAP; goto done; }                                        \
        nfe++;                                                                                      \
        network_apply(&net, params, (float)(t * (1 - (s))), n, from, 3, (float)-t, into, 3, NULL);  \
    } while (0)
    EVALUATE(0.0, y, k[0]);
    double s = 0, h = first_step;
    while (s < 1) {
        if (max_seconds > 0 && seconds_now() - started > max_seconds) { status = TIME_CAP; goto done; }
        const int last = s + h >= 1;
        if (last) h = 1 - s;
        if (!(s + h > s)) { status = UNDERFLOW; goto done; }
        for (int i = 1; i < 7; i++) {
            const float *row_k[6];
            float a[6];
            for (int j = 0; j < i; j++) {
                row_k[j] = k[j];
                a[j] = (float)(h * A[i][j]);
            }
            float *target = i == 6 ? next : stage;
            for (long q = 0; q < size; q++) {
                float sum = y[q];
                for (int j = 0; j < i; j++) sum += a[j] * row_k[j][q];
                target[q] = sum;
            }
            EVALUATE(s + C[i] * h, target, k[i]);
        }
        double squares = 0;
        float e[7];
        for (int i = 0; i < 7; i++) e[i] = (float)(h * E[i]);
        for (long q = 0; q < size; q++) {
            float error = 0;
            for (int i = 0; i < 7; i++) error += e[i] * k[i][q];
            const float scale = (float)atol + (float)rtol * fmaxf(fabsf(y[q]), fabsf(next[q]));
            const double ratio = error / scale;
            squares += ratio * ratio;
        }
        const double error_ratio = sqrt(squares / size);
        if (!isfinite(error_ratio)) { status = DIVERGED; goto done; }
        double factor;
        if (error_ratio == 0) {
            factor = 10;
        } else {
            factor = 0.9 * pow(error_ratio, -0.2);
            factor = fmax(factor, error_ratio < 1 ? 1.0 : 0.2);
            factor = fmin(factor, 10);
        }
        const long attempt = accepted + rejected;
        if (attempt < capacity) {
            steps[3 * attempt] = s;
            steps[3 * attempt + 1] = h;
            steps[3 * attempt + 2] = error_ratio <= 1;
        }
        if (error_ratio <= 1) {
            accepted++;
            s = last ? 1 : s + h; /* s + (1 - s) may round below 1 */
            float *swap = y; y = next; next = swap;
            swap = k[0]; k[0] = k[6]; k[6] = swap; /* first same as last */
        } else {
            rejected++;
        }
        h *= factor;
    }
done:
    for (long p = 0; p < n; p++) {
        z_out[2 * p] = y[3 * p];
        z_out[2 * p + 1] = y[3 * p + 1];
        delta_out[p] = y[3 * p + 2];
    }
    counts[0] = nfe;
    counts[1] = accepted;
    counts[2] = rejected;
    free(memory);
    network_free(&net);
    return status;
#undef EVALUATE
}
