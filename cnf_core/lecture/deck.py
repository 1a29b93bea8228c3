"""Lecture 12 as a walk: its ideas in the deck's order, each with the statement and formulas a step shows.

The Lecture page draws one `Step` at a time (its address is `?step=<slug>`);
this module holds only what the deck says, in order, so the walk's content
can be read and tested without Streamlit. Formulas are LaTeX, quoted from
the deck (Isachenko, "Deep Generative Models", lecture 12) in the app's
notation: dz/dt = f(z(t), t; θ), base at t₀ = 0, data at t₁ = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Step", "STEPS", "SLUGS", "step_index", "neighbours"]


@dataclass(frozen=True)
class Step:
    """One idea of the lecture: where it lives, what the deck states, which full page explores it further."""

    slug: str
    title: str
    statement: str  # a few lines of Markdown
    formulas: tuple[str, ...]  # LaTeX, shown under the statement
    full_page: str  # the app page that explores the idea in depth (path under the project root)
    full_page_title: str
    sources: str = ""


STEPS: tuple[Step, ...] = (
    Step(
        "recap",
        "Recap: IS, FID, precision and recall",
        "A likelihood-free model is judged by its samples. The Inception Score rewards sharp and diverse "
        "samples; the Fréchet distance compares Gaussian fits of real and generated sets (moment matching). "
        "Precision and recall compare the sets' **k-NN manifolds**: precision is the share of generated points "
        "on the real manifold, recall the share of real points on the generated one. Sampling from a shrunk "
        "base (truncation) trades recall for precision.",
        (
            r"IS = \exp\big(\mathbb{E}_{\mathbf{x}}\, KL(p(y|\mathbf{x})\,\|\,p(y))\big),\qquad "
            r"D^2(\pi, p) = \|\mathbf{m}_\pi - \mathbf{m}_p\|_2^2 + \mathrm{Tr}\big(\Sigma_\pi + \Sigma_p - 2\sqrt{\Sigma_\pi \Sigma_p}\big)",
            r"f(\mathbf{g}, \mathcal{G}) = \mathbb{1}\big[\exists\, \mathbf{g}' \in \mathcal{G}:\ \|\mathbf{g} - \mathbf{g}'\|_2 \le "
            r"\|\mathbf{g}' - \mathrm{NN}_k(\mathbf{g}', \mathcal{G})\|_2\big],\quad "
            r"\mathrm{Precision} = \tfrac{1}{n}\sum_{\mathbf{g} \in \mathcal{G}_p} f(\mathbf{g}, \mathcal{G}_\pi),\quad "
            r"\mathrm{Recall} = \tfrac{1}{n}\sum_{\mathbf{g} \in \mathcal{G}_\pi} f(\mathbf{g}, \mathcal{G}_p)",
        ),
        "pages/precision_recall.py",
        "Precision & recall",
        "Salimans et al., 2016; Heusel et al., 2017; Kynkäänniemi et al., 2019",
    ),
    Step(
        "neural-ode",
        "Neural ODE: a residual block is an Euler step",
        "An ODE with a neural network as its right-hand side. One Euler step is z + Δt f(z); a residual "
        "block z + f(z) is exactly that step with **Δt = 1**. With more, thinner blocks (Δt = 1/L) the "
        "network approaches the continuous dynamics, and the forward pass becomes one call to an ODE solver.",
        (
            r"\frac{d\mathbf{z}(t)}{dt} = f(\mathbf{z}(t), t; \theta),\qquad "
            r"\mathbf{z}(t + \Delta t) = \mathbf{z}(t) + \Delta t\, f(\mathbf{z}(t), t; \theta)",
            r"\mathbf{z}_{t+1} = \mathbf{z}_t + f(\mathbf{z}_t, \theta)\qquad\Longrightarrow\qquad "
            r"\mathbf{z}(t_1) = \mathbf{z}(t_0) + \int_{t_0}^{t_1} f(\mathbf{z}(t), t; \theta)\, dt = \mathrm{ODESolve}(\mathbf{z}(t_0), f, t_0, t_1, \theta)",
        ),
        "pages/neural_ode.py",
        "Neural ODE & adjoint",
        "Chen et al., 2018",
    ),
    Step(
        "adjoint",
        "The adjoint method",
        "Gradients through the solver without storing its steps. The adjoint a_z(t) = ∂L/∂z(t) follows "
        "Pontryagin's equation **backwards** from t₁, next to z(t) itself re-solved backwards and to a_θ, "
        "which accumulates dL/dθ. It gives the same gradient as backprop through the solver, up to the "
        "solver's tolerance, with memory that does not grow with the number of steps.",
        (
            r"\mathbf{a}_z(t) = \frac{\partial L}{\partial \mathbf{z}(t)},\quad "
            r"\frac{d\mathbf{a}_z(t)}{dt} = -\mathbf{a}_z(t)^\top \frac{\partial f(\mathbf{z}(t), t; \theta)}{\partial \mathbf{z}},\quad "
            r"\frac{d\mathbf{a}_\theta(t)}{dt} = -\mathbf{a}_z(t)^\top \frac{\partial f(\mathbf{z}(t), t; \theta)}{\partial \theta}",
            r"\frac{\partial L}{\partial \theta} = \mathbf{a}_\theta(t_0) = -\int_{t_1}^{t_0} \mathbf{a}_z(t)^\top "
            r"\frac{\partial f}{\partial \theta}\, dt,\qquad \mathbf{z}(t_0) = \mathbf{z}(t_1) - \int_{t_1}^{t_0} f(\mathbf{z}(t), t; \theta)\, dt",
        ),
        "pages/neural_ode.py",
        "Neural ODE & adjoint",
        "Pontryagin et al., 1962; Chen et al., 2018",
    ),
    Step(
        "discrete-vs-continuous",
        "Discrete flows against continuous ones: log|det| against the trace",
        "A discrete flow changes the density by log|det| of its Jacobian, which costs **O(d³)** for a "
        "free-form d×d Jacobian, so discrete flows restrict f (triangular Jacobians). A continuous flow needs "
        "only the **trace** of ∂f/∂z, d vector–Jacobian products, **O(d²)**; Hutchinson's estimator needs one.",
        (
            r"\mathbf{z}_{t+1} = f(\mathbf{z}_t, \theta),\qquad \log p(\mathbf{z}_{t+1}) = \log p(\mathbf{z}_t) - "
            r"\log\left|\det \frac{\partial f(\mathbf{z}_t, \theta)}{\partial \mathbf{z}_t}\right|",
            r"\frac{d \log p(\mathbf{z}(t))}{dt} = -\mathrm{tr}\left(\frac{\partial f(\mathbf{z}(t), t; \theta)}{\partial \mathbf{z}(t)}\right)",
        ),
        "pages/solver_lab.py",
        "Solver lab",
        "Grathwohl et al., 2019",
    ),
    Step(
        "picard",
        "Picard: a unique solution, so trajectories never cross",
        "If f is Lipschitz in z and continuous in t, the ODE has a **unique** solution through every point "
        "(Picard). So the flow is a bijection for any free-form f, and two trajectories can never cross. "
        "The price: some maps are out of reach. In 1-D no Neural ODE maps x to −x; an augmented Neural ODE, "
        "solved in more dimensions, goes around.",
        (
            r"\mathbf{x} = \mathbf{z}(t_1) = \mathbf{z}(t_0) + \int_{t_0}^{t_1} f(\mathbf{z}(t), t; \theta)\, dt,\qquad "
            r"\mathbf{z} = \mathbf{z}(t_0) = \mathbf{z}(t_1) + \int_{t_1}^{t_0} f(\mathbf{z}(t), t; \theta)\, dt",
        ),
        "pages/neural_ode.py",
        "Neural ODE & adjoint",
        "Dupont, Doucet & Teh, 2019 (augmented Neural ODEs)",
    ),
    Step(
        "change-of-variables",
        "The instantaneous change of variables",
        "The deck calls it Fokker–Planck; with no diffusion it is the **continuity equation**: probability "
        "mass moves with the flow and is conserved. Along a trajectory, log p changes by minus the trace of "
        "the Jacobian, so [z, log p] is solved as one augmented ODE, and the density at any time t follows.",
        (
            r"\frac{\partial p_t}{\partial t} = -\nabla \cdot (p_t\, f)\qquad\Longleftrightarrow\qquad "
            r"\frac{d \log p(\mathbf{z}(t))}{dt} = -\mathrm{tr}\left(\frac{\partial f(\mathbf{z}(t), t; \theta)}{\partial \mathbf{z}(t)}\right)",
            r"\begin{bmatrix} \mathbf{x} \\ \log p(\mathbf{x}|\theta) \end{bmatrix} = "
            r"\begin{bmatrix} \mathbf{z} \\ \log p(\mathbf{z}) \end{bmatrix} + \int_{t_0}^{t_1} "
            r"\begin{bmatrix} f(\mathbf{z}(t), t; \theta) \\ -\mathrm{tr}\big(\frac{\partial f(\mathbf{z}(t), t; \theta)}{\partial \mathbf{z}(t)}\big) \end{bmatrix} dt",
        ),
        "pages/density.py",
        "Density evolution",
        "Chen et al., 2018; Grathwohl et al., 2019",
    ),
    Step(
        "ffjord",
        "FFJORD: Hutchinson's estimator, and what a free-form Jacobian buys",
        "FFJORD replaces the exact trace with **Hutchinson's** unbiased estimate εᵀ(∂f/∂z)ε, one "
        "vector–Jacobian product per step, so CNFs scale with d. Among flows it alone has all three: "
        "one-pass sampling, exact log-likelihood and a free-form Jacobian.",
        (
            r"\mathrm{tr}(A) = \mathbb{E}_{\varepsilon}\big[\varepsilon^\top A\, \varepsilon\big],\quad "
            r"\mathbb{E}[\varepsilon] = 0,\ \mathrm{Cov}(\varepsilon) = I",
            r"\log p(\mathbf{x}|\theta) = \log p(\mathbf{z}) - \mathbb{E}_{\varepsilon} \int_{t_0}^{t_1} "
            r"\varepsilon^\top \frac{\partial f(\mathbf{z}(t), t; \theta)}{\partial \mathbf{z}(t)}\, \varepsilon\, dt",
        ),
        "pages/train.py",
        "Train",
        "Hutchinson, 1989; Grathwohl et al., 2019",
    ),
    Step(
        "summary",
        "Summary",
        "- A **residual network** is the Euler solution of an ODE.\n"
        "- The **adjoint method** generalises backprop: it trains a Neural ODE by solving the adjoint ODE back in time.\n"
        "- The **instantaneous change of variables** (Fokker–Planck without diffusion) gives continuous-in-time "
        "flows with far fewer restrictions on f.\n"
        "- **FFJORD** makes such flows scalable, with Hutchinson's trace estimator.",
        (),
        "pages/density.py",
        "Density evolution",
    ),
    Step(
        "after-ffjord",
        "After FFJORD: straight flows",
        "Flow matching trains the same kind of CNF with **no solve**: it regresses f onto x₁ − x₀ along straight lines "
        "from noise to data. Its paths still bend, because independent pairs cross; **reflow** trains again on the "
        "flow's own pairs (z₀, x₁ = flow(z₀)), which do not cross, and the paths straighten. A straight flow is "
        "solved exactly by **one Euler step**: Euler against adaptive solvers comes down to how curved the paths are "
        "(rectified flow; the few-step samplers of today's image models).",
        (
            r"\min_\theta\ \mathbb{E}_{t, x_0, x_1}\big\|f_\theta\big((1-t)x_0 + t x_1, t\big) - (x_1 - x_0)\big\|^2,\qquad "
            r"S = \int_0^1 \mathbb{E}\big\|(x_1 - x_0) - f(x_t, t)\big\|^2 dt",
        ),
        "pages/straight_flows.py",
        "Straight flows",
        "Lipman et al., 2023; Liu, Gong & Liu, 2023; Esser et al., 2024",
    ),
)
SLUGS: tuple[str, ...] = tuple(step.slug for step in STEPS)


def step_index(slug: str) -> int:
    """The position of the step named `slug` in the walk; `ConfigError` for an unknown name."""
    if slug not in SLUGS:
        raise ConfigError(f"step: unknown {slug!r}; choose one of {', '.join(SLUGS)}")
    return SLUGS.index(slug)


def neighbours(slug: str) -> tuple[Step | None, Step | None]:
    """The steps before and after `slug` (None at either end of the walk)."""
    index = step_index(slug)
    return (STEPS[index - 1] if index > 0 else None, STEPS[index + 1] if index + 1 < len(STEPS) else None)
