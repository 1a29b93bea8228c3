/* log p(x) of a 2-D tanh concatsquash CNF by fixed-grid RK4, and its exact gradient, without autograd.
 *
 * The same mathematics as `flow.log_density_with_stats` with torchdiffeq's "rk4" (the 3/8 rule) on
 * `steps` equal steps, and the dynamics of `flow.LogDensityDynamics` with the RNODE channels: the
 * state y = (z, Δ, K, F) runs on the clock s ∈ [0, 1] from x at τ = t back to τ = 0, τ = t(1 - s):
 *     dz/ds = -t f(z, τ),  dΔ/ds = t tr J,  dK/ds = |t| |f|²,  dF/ds = |t| ‖J‖²_F,  J = ∂f/∂z.
 * `rk4_log_density_2d` solves it and keeps every stage's z; `rk4_log_density_vjp_2d` takes the
 * adjoint of the end state (what autograd hands back) and returns the adjoint of every parameter.
 * That is reverse-mode differentiation written out: back through the RK4 stages, and at each stage
 * (recomputed from its z) back through the network's forward-mode pass, activations h and tangents
 * T = ∂h/∂z. Training steps are small (batch 512, a few dozen evaluations), so autograd's thousands of small
 * operations, not arithmetic, bound the torch path; here a block of points stays in the cache.
 *
 * One layer at one stage time τ: A = g ⊙ W (row i scaled by the gate g_i = σ(w_g τ + b_g)_i),
 * c = g b + w_b τ; p = A h + c, U = A T, and for hidden layers h' = tanh p, T' = (1 - h'²) ⊙ U. From
 * the adjoints p̄, Ū of p and U: Ā = p̄ hᵀ + Ū Tᵀ and c̄ = p̄, so W̄ += g ⊙ Ā, b̄ += g p̄, w̄_b += τ p̄;
 * through the gate ū = ḡ g(1 - g) = (1 - g)(p̄ (p - c) + Σ_k Ū_k U_k) + g(1 - g) p̄ b (as A h = p - c
 * and A T = U), w̄_g += τ ū, b̄_g += ū.
 *
 * Parameters come raw, layer after layer: W (out×in, row-major), b, w_g, b_g, w_b, as in
 * ConcatSquashLinear; gradients come back in the same layout.
 */
#include "lanes.h"
#include <string.h>

#define STAGES 4
static const float STAGE_AT[STAGES] = {0.0f, 1.0f / 3, 2.0f / 3, 1.0f};   /* where in its step each stage is */
static const float STAGE_WEIGHT[STAGES] = {0.125f, 0.375f, 0.375f, 0.125f}; /* the 3/8 rule's b */

/* The network folded at every stage time, with one block's scratch and the gradient's lane sums. */
typedef struct {
    int depth, widest, stages;
    const int *widths;
    const float *params;
    float t;
    long per_stage;   /* floats of one stage's folded layers */
    float *folded;    /* per stage, per layer: A (out×in), Aᵀ (in×out), c, g */
    vf *scratch;      /* per hidden layer: p, h, slope, U₀, U₁, T₀, T₁; then 6 × widest for the adjoints */
    vf *gradient;     /* one block's lane sums in the parameters' layout */
    double *total;    /* the sums over blocks: float lanes over one block's stages only, then double */
    long n_params;
} net_t;

static long layer_floats(int in, int out) { return 2L * in * out + 2L * out; }

static float *stage_layer(const net_t *net, int stage, int layer) {
    float *at = net->folded + net->per_stage * stage;
    for (int l = 0; l < layer; l++) at += layer_floats(net->widths[l], net->widths[l + 1]);
    return at;
}

static const float *raw_layer(const net_t *net, int layer) {
    const float *at = net->params;
    for (int l = 0; l < layer; l++) at += (long)net->widths[l] * net->widths[l + 1] + 4L * net->widths[l + 1];
    return at;
}

static float stage_time(const net_t *net, int stage) {
    const float s = ((float)(stage / STAGES) + STAGE_AT[stage % STAGES]) / (float)(net->stages / STAGES);
    return net->t * (1.0f - s);
}

static void net_free(net_t *net) {
    free(net->folded);
    free(net->scratch);
    free(net->gradient);
    free(net->total);
}

/* Returns 0, or -1 (with nothing left allocated) where memory ran out. */
static int net_init(net_t *net, int depth, const int *widths, const float *params, float t, int steps, int with_gradient) {
    memset(net, 0, sizeof *net);
    net->depth = depth;
    net->widths = widths;
    net->params = params;
    net->t = t;
    net->stages = STAGES * steps;
    long hidden_units = 0;
    for (int l = 0; l < depth; l++) {
        net->per_stage += layer_floats(widths[l], widths[l + 1]);
        net->n_params += (long)widths[l] * widths[l + 1] + 4L * widths[l + 1];
        if (widths[l + 1] > net->widest) net->widest = widths[l + 1];
        if (l < depth - 1) hidden_units += widths[l + 1];
    }
    if (widths[0] > net->widest) net->widest = widths[0];
    net->folded = malloc(sizeof(float) * net->per_stage * net->stages);
    net->scratch = aligned_alloc(sizeof(vf), sizeof(vf) * (7 * hidden_units + 6 * (long)net->widest + 8));
    if (with_gradient) {
        net->gradient = aligned_alloc(sizeof(vf), sizeof(vf) * net->n_params);
        net->total = calloc(net->n_params, sizeof(double));
    }
    if (!net->folded || !net->scratch || (with_gradient && (!net->gradient || !net->total))) {
        net_free(net);
        return -1;
    }
    for (int stage = 0; stage < net->stages; stage++) {
        const float tau = stage_time(net, stage);
        for (int l = 0; l < depth; l++) {
            const int in = widths[l], out = widths[l + 1];
            const float *W = raw_layer(net, l), *b = W + (long)out * in, *gw = b + out, *gb = gw + out, *sw = gb + out;
            float *A = stage_layer(net, stage, l), *AT = A + (long)out * in, *c = AT + (long)out * in, *g = c + out;
            for (int i = 0; i < out; i++) {
                g[i] = sigmoid(gw[i] * tau + gb[i]);
                c[i] = g[i] * b[i] + sw[i] * tau;
                for (int j = 0; j < in; j++) {
                    A[i * in + j] = g[i] * W[i * in + j];
                    AT[j * out + i] = A[i * in + j];
                }
            }
        }
    }
    return 0;
}

static inline vf tanh_lanes(vf p) { return 2.0f * sigmoid_lanes(p * (-2.0f * LOG2E)) - 1.0f; }

/* The hidden layer l's stored vectors in the scratch: p, h, slope, U₀, U₁, T₀, T₁ (each `width` long). */
static vf *hidden_store(const net_t *net, int layer) {
    vf *at = net->scratch;
    for (int l = 1; l < layer; l++) at += 7L * net->widths[l];
    return at;
}

/* f and J = ∂f/∂z at one stage for the block (z₁, z₂), keeping each hidden layer's vectors for `stage_vjp`. */
static void stage_forward(const net_t *net, int stage, vf z1, vf z2, vf f[2], vf J[2][2]) {
    const int depth = net->depth;
    const vf *h_in = NULL, *T0_in = NULL, *T1_in = NULL;
    for (int l = 0; l < depth; l++) {
        const int in = net->widths[l], out = net->widths[l + 1];
        const float *A = stage_layer(net, stage, l), *c = A + 2L * out * in;
        if (l == depth - 1) {
            for (int i = 0; i < 2; i++) {
                vf p = splat(c[i]), u0 = splat(0.0f), u1 = u0;
                for (int j = 0; j < in; j++) {
                    const float a = A[i * in + j];
                    p += a * h_in[j];
                    u0 += a * T0_in[j];
                    u1 += a * T1_in[j];
                }
                f[i] = p;
                J[i][0] = u0;
                J[i][1] = u1;
            }
            return;
        }
        vf *store = hidden_store(net, l + 1), *p = store, *h = p + out, *slope = h + out, *U0 = slope + out, *U1 = U0 + out,
           *T0 = U1 + out, *T1 = T0 + out;
        for (int i0 = 0; i0 < out; i0 += ROWS) { /* ROWS units at a time: each input vector is loaded once for all */
            const int rows = out - i0 < ROWS ? out - i0 : ROWS;
            vf pre[ROWS], u0[ROWS], u1[ROWS];
            for (int r = 0; r < rows; r++) {
                const float *a = A + (long)(i0 + r) * in;
                pre[r] = splat(c[i0 + r]);
                u0[r] = splat(l == 0 ? a[0] : 0.0f);
                u1[r] = splat(l == 0 ? a[1] : 0.0f);
                if (l == 0) pre[r] += a[0] * z1 + a[1] * z2;
            }
            if (l > 0 && rows == ROWS) {
                for (int j = 0; j < in; j++) {
                    const vf x = h_in[j], y = T0_in[j], q = T1_in[j];
#pragma GCC unroll 8
                    for (int r = 0; r < ROWS; r++) {
                        const float a = A[(long)(i0 + r) * in + j];
                        pre[r] += a * x;
                        u0[r] += a * y;
                        u1[r] += a * q;
                    }
                }
            } else if (l > 0) {
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < in; j++) {
                        const float a = A[(long)(i0 + r) * in + j];
                        pre[r] += a * h_in[j];
                        u0[r] += a * T0_in[j];
                        u1[r] += a * T1_in[j];
                    }
            }
            for (int r = 0; r < rows; r++) {
                const int i = i0 + r;
                const vf value = tanh_lanes(pre[r]), d = 1.0f - value * value;
                p[i] = pre[r];
                h[i] = value;
                slope[i] = d;
                U0[i] = u0[r];
                U1[i] = u1[r];
                T0[i] = d * u0[r];
                T1[i] = d * u1[r];
            }
        }
        h_in = h;
        T0_in = T0;
        T1_in = T1;
    }
}

/* Adds one layer's parameter adjoints at one stage, given p̄, Ū and the forward p - c and U (see the top). */
static void add_layer_gradient(const net_t *net, int stage, int l, const vf *pbar, const vf *Ubar0, const vf *Ubar1, const vf *p,
                               const vf *U0, const vf *U1, const vf *h_in, const vf *T0_in, const vf *T1_in, vf z1, vf z2) {
    const int in = net->widths[l], out = net->widths[l + 1];
    const float tau = stage_time(net, stage);
    const float *A = stage_layer(net, stage, l), *c = A + 2L * out * in, *g = c + out, *b = raw_layer(net, l) + (long)out * in;
    vf *gW = net->gradient + (raw_layer(net, l) - net->params), *gb = gW + (long)out * in, *ggw = gb + out, *ggb = ggw + out,
       *gsw = ggb + out;
    for (int i0 = 0; i0 < out; i0 += ROWS) { /* ROWS rows of W̄ at a time: each input vector is loaded once for all */
        const int rows = out - i0 < ROWS ? out - i0 : ROWS;
        vf gp[ROWS], gu0[ROWS], gu1[ROWS];
        for (int r = 0; r < rows; r++) {
            const int i = i0 + r;
            const float gate = g[i];
            const vf u = (1.0f - gate) * (pbar[i] * (p[i] - c[i]) + Ubar0[i] * U0[i] + Ubar1[i] * U1[i]) + gate * (1.0f - gate) * b[i] * pbar[i];
            gb[i] += gate * pbar[i];
            gsw[i] += tau * pbar[i];
            ggw[i] += tau * u;
            ggb[i] += u;
            gp[r] = gate * pbar[i];
            gu0[r] = gate * Ubar0[i];
            gu1[r] = gate * Ubar1[i];
        }
        if (l == 0) { /* the input is z and its tangents the identity */
            for (int r = 0; r < rows; r++) {
                vf *row = gW + (long)(i0 + r) * in;
                row[0] += gp[r] * z1 + gu0[r];
                row[1] += gp[r] * z2 + gu1[r];
            }
            continue;
        }
        for (int j = 0; j < in; j++) {
            const vf x = h_in[j], y = T0_in[j], q = T1_in[j];
            for (int r = 0; r < rows; r++) gW[(long)(i0 + r) * in + j] += gp[r] * x + gu0[r] * y + gu1[r] * q;
        }
    }
}

/* Back through the network at one stage: from f̄ and J̄ to z̄, adding the parameters' adjoints (needs `stage_forward` first). */
static void stage_vjp(const net_t *net, int stage, vf z1, vf z2, const vf f[2], const vf J[2][2], const vf fbar[2],
                      const vf Jbar[2][2], vf zbar[2]) {
    const int depth = net->depth, widest = net->widest;
    zbar[0] = zbar[1] = splat(0.0f);
    vf *adjoint = hidden_store(net, depth), *hbar = adjoint, *T0bar = hbar + widest, *T1bar = T0bar + widest;
    vf *pbar = T1bar + widest, *Ubar0 = pbar + widest, *Ubar1 = Ubar0 + widest;
    /* the output layer: p̄ = f̄, Ū = J̄, p = f, U = J */
    {
        const int l = depth - 1, in = net->widths[l];
        const vf *store = hidden_store(net, l), *h_in = store + in, *T0_in = store + 5 * in, *T1_in = store + 6 * in;
        const vf p[2] = {f[0], f[1]}, U0[2] = {J[0][0], J[1][0]}, U1[2] = {J[0][1], J[1][1]};
        const vf pb[2] = {fbar[0], fbar[1]}, ub0[2] = {Jbar[0][0], Jbar[1][0]}, ub1[2] = {Jbar[0][1], Jbar[1][1]};
        add_layer_gradient(net, stage, l, pb, ub0, ub1, p, U0, U1, h_in, T0_in, T1_in, z1, z2);
        const float *AT = stage_layer(net, stage, l) + 2L * in;
        for (int j = 0; j < in; j++) {
            const float a0 = AT[2 * j], a1 = AT[2 * j + 1];
            hbar[j] = a0 * pb[0] + a1 * pb[1];
            T0bar[j] = a0 * ub0[0] + a1 * ub0[1];
            T1bar[j] = a0 * ub1[0] + a1 * ub1[1];
        }
    }
    for (int l = depth - 2; l >= 0; l--) {
        const int in = net->widths[l], out = net->widths[l + 1];
        const vf *store = hidden_store(net, l + 1), *p = store, *h = p + out, *slope = h + out, *U0 = slope + out,
                 *U1 = U0 + out;
        for (int i = 0; i < out; i++) {
            const vf sbar = T0bar[i] * U0[i] + T1bar[i] * U1[i];
            Ubar0[i] = slope[i] * T0bar[i];
            Ubar1[i] = slope[i] * T1bar[i];
            pbar[i] = (hbar[i] - 2.0f * h[i] * sbar) * slope[i];
        }
        const vf *h_in = NULL, *T0_in = NULL, *T1_in = NULL;
        if (l > 0) {
            const vf *before = hidden_store(net, l);
            h_in = before + in;
            T0_in = before + 5 * in;
            T1_in = before + 6 * in;
        }
        add_layer_gradient(net, stage, l, pbar, Ubar0, Ubar1, p, U0, U1, h_in, T0_in, T1_in, z1, z2);
        const float *AT = stage_layer(net, stage, l) + (long)out * in;
        if (l == 0) {
            vf a = splat(0.0f), b = a;
            for (int i = 0; i < out; i++) {
                a += AT[i] * pbar[i];
                b += AT[out + i] * pbar[i];
            }
            zbar[0] = a;
            zbar[1] = b;
            return;
        }
        const float *A = stage_layer(net, stage, l);
        for (int j0 = 0; j0 < in; j0 += ROWS) { /* ROWS inputs at a time, along the rows of A */
            const int rows = in - j0 < ROWS ? in - j0 : ROWS;
            vf a[ROWS], b[ROWS], d[ROWS];
            for (int r = 0; r < ROWS; r++) a[r] = b[r] = d[r] = splat(0.0f);
            if (rows == ROWS) {
                for (int i = 0; i < out; i++) {
                    const vf x = pbar[i], y = Ubar0[i], q = Ubar1[i];
                    const float *row = A + (long)i * in + j0;
#pragma GCC unroll 8
                    for (int r = 0; r < ROWS; r++) {
                        a[r] += row[r] * x;
                        b[r] += row[r] * y;
                        d[r] += row[r] * q;
                    }
                }
            } else {
                for (int r = 0; r < rows; r++) {
                    const float *column = AT + (long)(j0 + r) * out;
                    for (int i = 0; i < out; i++) {
                        a[r] += column[i] * pbar[i];
                        b[r] += column[i] * Ubar0[i];
                        d[r] += column[i] * Ubar1[i];
                    }
                }
            }
            for (int r = 0; r < rows; r++) {
                hbar[j0 + r] = a[r];
                T0bar[j0 + r] = b[r];
                T1bar[j0 + r] = d[r];
            }
        }
    }
}

static void load_block(const float *from, long n, long start, int stride, int count, vf *out) {
    const int m = n - start < LANES ? (int)(n - start) : LANES;
    for (int k = 0; k < count; k++) out[k] = splat(0.0f);
    for (int q = 0; q < m; q++)
        for (int k = 0; k < count; k++) out[k][q] = from[stride * (start + q) + k];
}

/* Solves the n points x (n×2) to the end state (n×5: z, Δ, K, F) and keeps each stage's z
 * (stage_z: stages × n × 2). Returns 0, or -1 where memory ran out. */
int rk4_log_density_2d(long n, int depth, const int *widths, const float *params, float t, int steps, const float *x,
                       float *end, float *stage_z) {
    net_t net;
    if (net_init(&net, depth, widths, params, t, steps, 0)) return -1;
    const float h = 1.0f / steps, speed = -t, size = fabsf(t);
    for (long start = 0; start < n; start += LANES) {
        const int m = n - start < LANES ? (int)(n - start) : LANES;
        vf z[2], delta = splat(0.0f), kinetic = delta, frobenius = delta;
        load_block(x, n, start, 2, 2, z);
        for (int step = 0; step < steps; step++) {
            vf kz[STAGES][2], in[2] = {z[0], z[1]};
            for (int i = 0; i < STAGES; i++) {
                const int stage = STAGES * step + i;
                for (int k = 0; k < 2; k++) {
                    if (i == 1) in[k] = z[k] + h / 3 * kz[0][k];
                    if (i == 2) in[k] = z[k] + h * (kz[1][k] - kz[0][k] / 3);
                    if (i == 3) in[k] = z[k] + h * (kz[0][k] - kz[1][k] + kz[2][k]);
                }
                for (int q = 0; q < m; q++) {
                    stage_z[2 * (stage * n + start + q)] = in[0][q];
                    stage_z[2 * (stage * n + start + q) + 1] = in[1][q];
                }
                vf f[2], J[2][2];
                stage_forward(&net, stage, in[0], in[1], f, J);
                kz[i][0] = speed * f[0];
                kz[i][1] = speed * f[1];
                const float w = h * STAGE_WEIGHT[i];
                delta += w * t * (J[0][0] + J[1][1]);
                kinetic += w * size * (f[0] * f[0] + f[1] * f[1]);
                frobenius += w * size * (J[0][0] * J[0][0] + J[0][1] * J[0][1] + J[1][0] * J[1][0] + J[1][1] * J[1][1]);
            }
            for (int k = 0; k < 2; k++) z[k] += h * 0.125f * (kz[0][k] + 3.0f * (kz[1][k] + kz[2][k]) + kz[3][k]);
        }
        for (int q = 0; q < m; q++) {
            float *row = end + 5 * (start + q);
            row[0] = z[0][q];
            row[1] = z[1][q];
            row[2] = delta[q];
            row[3] = kinetic[q];
            row[4] = frobenius[q];
        }
    }
    net_free(&net);
    return 0;
}

/* The parameters' adjoint (grad, in their layout) for the end state's adjoint `seed` (n×5), from the
 * stage_z of `rk4_log_density_2d` with the same arguments. Returns 0, or -1 where memory ran out. */
int rk4_log_density_vjp_2d(long n, int depth, const int *widths, const float *params, float t, int steps, const float *stage_z,
                           const float *seed, float *grad) {
    net_t net;
    if (net_init(&net, depth, widths, params, t, steps, 1)) return -1;
    const float h = 1.0f / steps, speed = -t, size = fabsf(t);
    for (long start = 0; start < n; start += LANES) {
        vf seeds[5];
        memset(net.gradient, 0, sizeof(vf) * net.n_params);
        load_block(seed, n, start, 5, 5, seeds); /* padding lanes get zero seeds, so they add nothing */
        vf zbar[2] = {seeds[0], seeds[1]};
        const vf delta_bar = seeds[2], kinetic_bar = seeds[3], frobenius_bar = seeds[4];
        for (int step = steps - 1; step >= 0; step--) {
            vf kbar[STAGES][2], ybar[2] = {zbar[0], zbar[1]};
            for (int i = 0; i < STAGES; i++)
                for (int k = 0; k < 2; k++) kbar[i][k] = h * STAGE_WEIGHT[i] * zbar[k];
            for (int i = STAGES - 1; i >= 0; i--) {
                const int stage = STAGES * step + i;
                vf in[2];
                load_block(stage_z + 2L * stage * n, n, start, 2, 2, in);
                vf f[2], J[2][2], fbar[2], Jbar[2][2], inbar[2];
                stage_forward(&net, stage, in[0], in[1], f, J);
                const float w = h * STAGE_WEIGHT[i];
                for (int k = 0; k < 2; k++) {
                    fbar[k] = speed * kbar[i][k] + 2.0f * w * size * kinetic_bar * f[k];
                    for (int j = 0; j < 2; j++) Jbar[k][j] = 2.0f * w * size * frobenius_bar * J[k][j];
                    Jbar[k][k] += w * t * delta_bar;
                }
                stage_vjp(&net, stage, in[0], in[1], f, J, fbar, Jbar, inbar);
                for (int k = 0; k < 2; k++) {
                    ybar[k] += inbar[k];
                    if (i == 3) {
                        kbar[0][k] += h * inbar[k];
                        kbar[1][k] -= h * inbar[k];
                        kbar[2][k] += h * inbar[k];
                    } else if (i == 2) {
                        kbar[1][k] += h * inbar[k];
                        kbar[0][k] -= h / 3 * inbar[k];
                    } else if (i == 1) {
                        kbar[0][k] += h / 3 * inbar[k];
                    }
                }
            }
            zbar[0] = ybar[0];
            zbar[1] = ybar[1];
        }
        for (long k = 0; k < net.n_params; k++)
            for (int q = 0; q < LANES; q++) net.total[k] += net.gradient[k][q];
    }
    for (long k = 0; k < net.n_params; k++) grad[k] = (float)net.total[k];
    net_free(&net);
    return 0;
}
