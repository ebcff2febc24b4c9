"""GRPO learner (docs/design.md §5): G rollouts per kernel, median baseline, clipped surrogate,
KL to BC.

One obvious loop, `train()`: per epoch sample a batch of kernels, roll out G episodes each at
the scheduled temperature (stop masked in the first steps early on), turn episode returns into
median-centred, globally normalized advantages, take a few clipped-surrogate steps with a KL
penalty to the frozen BC policy, log everything, check the reward-hacking monitors,
checkpoint, and every `eval_every` epochs evaluate the argmax policy and offer it to the
promotion gate. Randomness is derived from (seed, epoch), so a resumed run samples the same
kernels and actions as an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from agents import checkpoint as ckpt
from agents.config import DynamicSamplingConfig, GRPOConfig
from agents.grpo_math import (
    approx_kl,
    clipped_surrogate,
    group_advantages,
    zero_spread_fraction,
    zero_spread_groups,
)
from agents.metrics import MetricsLogger
from agents.monitors import check
from agents.policy import PolicyMLP, entropy, kl_divergence, log_probs
from agents.rollout import Episode, RolloutPolicy, rollout
from agents.schedules import ForcedSteps, TemperatureSchedule
from agents.self_imitation import SelfImitationBuffer, imitation_loss
from chronos.fmt import speedup
from chronos.stores.trajectories import StepRecord, TrajectoryLog
from chronos.transforms import ACTION_NAMES, STOP

log = logging.getLogger("chronos.grpo")


class Interrupted(RuntimeError):
    """Raised by `stop_after_epoch` to simulate a crash (tests of resume)."""


@dataclass
class EvalResult:
    """The argmax policy on every eval kernel: raw (the rollout's final state) and guarded (the
    best verified state it measured, the untransformed kernel included, so never slower)."""

    epoch: int
    episodes: list[Episode]

    @property
    def improvements(self) -> dict[str, float]:
        """Raw: final/base - 1 per kernel."""
        return {e.kernel_id: e.improvement for e in self.episodes}

    @property
    def guarded_improvements(self) -> dict[str, float]:
        """Guarded: best measured state/base - 1 per kernel (never above 0)."""
        return {e.kernel_id: e.guarded_improvement for e in self.episodes}

    @property
    def measurements(self) -> dict[str, int]:
        """Distinct states each kernel's rollout had measured (the base included)."""
        return {e.kernel_id: e.measurements for e in self.episodes}

    @property
    def mean_improvement(self) -> float:
        return float(np.mean([e.improvement for e in self.episodes]))

    @property
    def mean_guarded_improvement(self) -> float:
        return float(np.mean([e.guarded_improvement for e in self.episodes]))

    @property
    def score(self) -> float:
        """Higher is better: the mean return of the argmax rollouts, the objective GRPO
        maximizes (for the log_speedup reward: log speed-up less the step costs), and what the
        promotion gate compares. The log speed-up alone would prefer a sequence that takes a
        step worth less than its cost."""
        return float(np.mean([e.ret for e in self.episodes]))

    def summary(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "mean_improvement": self.mean_improvement,
            "mean_guarded_improvement": self.mean_guarded_improvement,
            "score": self.score,
            "kernels": {
                e.kernel_id: {
                    "improvement": e.improvement,
                    "guarded_improvement": e.guarded_improvement,
                    "actions": list(e.actions),
                    "guarded_actions": list(e.guarded_actions),
                    "first_action": ACTION_NAMES[e.steps[0].action] if e.steps else "stop",
                    "final_cycles": e.final_cycles,
                    "guarded_cycles": e.guarded_cycles,
                    "base_cycles": e.base_cycles,
                    "measurements": e.measurements,
                }
                for e in self.episodes
            },
        }


@dataclass
class GRPOState:
    """Everything a resume needs besides the policy and optimizer weights."""

    epoch: int = -1  # last completed epoch
    best_found: dict[str, dict[str, Any]] = field(default_factory=dict)  # kernel → best episode
    evals: list[dict[str, Any]] = field(default_factory=list)
    train_s: float = 0.0
    imitation: dict[str, dict[str, Any]] = field(default_factory=dict)  # the buffer's state()


def evaluate(mdp: Any, specs: Sequence[Any], policy: RolloutPolicy, epoch: int) -> EvalResult:
    """Argmax rollouts: deterministic, so one episode per kernel says what the policy does."""
    return EvalResult(epoch, rollout(mdp, specs, policy, group_size=1, temperature=0.0))


def step_records(
    episodes: Sequence[Episode],
    phase: str,
    epoch: int,
    backend: str,
    device: str,
    temperature: float | None = None,
    advantages: dict[int, float] | None = None,
) -> list[StepRecord]:
    """Episodes as trajectory-log rows (one per step)."""
    rows = []
    for i, e in enumerate(episodes):
        names: list[str] = []
        for t, s in enumerate(e.steps):
            names.append(ACTION_NAMES[s.action])
            rows.append(
                StepRecord(
                    phase=phase,
                    epoch=epoch,
                    episode=i,
                    kernel_id=e.kernel_id,
                    step=t,
                    action=s.action,
                    action_name=ACTION_NAMES[s.action],
                    actions=",".join(names),
                    reward=s.reward,
                    cycles_before=s.cycles_before,
                    cycles_after=s.cycles_after,
                    invalid=s.invalid,
                    done=s.done,
                    reason=s.reason,
                    ptx_sha256=s.ptx_sha256,
                    backend=backend,
                    device=device,
                    temperature=temperature,
                    logp=s.logp,
                    advantage=None if advantages is None else advantages.get(i),
                )
            )
    return rows


@dataclass
class Sampled:
    """One epoch's groups after dynamic sampling: episodes [K*G], kept groups, counts."""

    episodes: list[Episode]
    returns: torch.Tensor  # [K, G]
    keep: torch.Tensor  # bool [K]: groups with reward spread (the others are dropped)
    first_zero_std: float  # frac_reward_zero_std of the first sampling, before any re-roll
    resampled: int  # re-rolls done
    recovered: int  # groups that got a spread from a re-roll


def returns_of(episodes: Sequence[Episode], k: int, g: int) -> torch.Tensor:
    return torch.tensor([e.ret for e in episodes], dtype=torch.float64).view(k, g)


def dynamic_sample(
    sample: Callable[[list[int], float], list[Episode]],
    k: int,
    group_size: int,
    temperature: float,
    cfg: DynamicSamplingConfig,
) -> Sampled:
    """DAPO dynamic sampling over the groups of a batch of `k` kernels.

    `sample(kernel_indices, T)` rolls out `group_size` episodes for each listed kernel at
    temperature T. A group whose returns are all equal carries no advantage; it is re-rolled
    at T * temperature_factor^retry (capped at max_temperature) up to `max_retries` times, and
    dropped from the update if it is still flat. Re-rolled episodes keep the temperature they
    were sampled at, so their importance ratios stay exact.
    """
    episodes = sample(list(range(k)), temperature)
    returns = returns_of(episodes, k, group_size)
    flat = zero_spread_groups(returns)
    first = float(flat.double().mean()) if k else 0.0
    resampled = recovered = 0
    for retry in range(1, cfg.max_retries + 1):
        idx = [int(i) for i in torch.nonzero(flat).flatten()]
        if not idx:
            break
        t = min(temperature * cfg.temperature_factor**retry, cfg.max_temperature)
        fresh = sample(idx, t)
        resampled += len(idx)
        for j, i in enumerate(idx):
            group = fresh[j * group_size : (j + 1) * group_size]
            r = torch.tensor([e.ret for e in group], dtype=torch.float64)
            if float(r.max() - r.min()) > 1e-12:
                episodes[i * group_size : (i + 1) * group_size] = group
                returns[i] = r
                flat[i] = False
                recovered += 1
    return Sampled(episodes, returns, ~flat, first, resampled, recovered)


def update(
    policy: PolicyMLP,
    ref: PolicyMLP,
    opt: torch.optim.Optimizer,
    episodes: Sequence[Episode],
    advantages: torch.Tensor,
    temperature: float,
    cfg: GRPOConfig,
    generator: torch.Generator,
    buffer: SelfImitationBuffer | None = None,
) -> dict[str, float]:
    """Clipped surrogate (clip-higher) + β·KL(π‖π_BC) + the entropy-floor hinge over every
    step; each step carries its episode's A and is scored at the temperature it was sampled at.
    With a self-imitation buffer, every gradient step also adds `self_imitation.coef` times
    the cross-entropy on the buffered steps where the best known action does not lead the
    others by `self_imitation.margin` logits.

    Dropout is off during updates (eval mode): with it on, the ratio of an unchanged policy is
    not 1 and clipping would fire on noise.
    """
    steps = [
        (s, float(advantages[i]), e.temperature or temperature)
        for i, e in enumerate(episodes)
        for s in e.steps
    ]
    sil_obs, sil_mask, sil_act = (
        buffer.arrays() if buffer is not None and cfg.self_imitation.coef > 0 else (None,) * 3
    )
    if not steps:
        return imitation_only(policy, opt, sil_obs, sil_mask, sil_act, cfg)
    sil_margin = cfg.self_imitation.margin
    obs = torch.as_tensor(np.stack([s.obs for s, _, _ in steps]))
    mask = torch.as_tensor(np.stack([s.mask for s, _, _ in steps]))
    act = torch.as_tensor([s.action for s, _, _ in steps])
    old_logp = torch.as_tensor([s.logp for s, _, _ in steps], dtype=torch.float32)
    adv = torch.as_tensor([a for _, a, _ in steps], dtype=torch.float32)
    temps = torch.as_tensor([t for _, _, t in steps], dtype=torch.float32)[:, None]
    with torch.no_grad():
        ref_logits = ref(obs, mask)
    policy.eval()
    n = len(steps)
    sums: Counter[str] = Counter()
    count = 0
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, cfg.minibatch_size):
            idx = perm[start : start + cfg.minibatch_size]
            logits = policy(obs[idx], mask[idx])
            logp = log_probs(logits, temps[idx]).gather(-1, act[idx, None]).squeeze(-1)
            pg_loss, clip = clipped_surrogate(
                logp, old_logp[idx], adv[idx], cfg.clip_eps_low, cfg.clip_eps_high
            )
            kl_ref = kl_divergence(logits, ref_logits[idx]).mean()
            ent = entropy(logits, temps[idx]).mean()
            ent_loss = torch.relu(cfg.entropy_floor - ent)
            loss = pg_loss + cfg.kl_beta * kl_ref + cfg.entropy_coef * ent_loss
            if sil_act is not None:
                sil_loss, _ = imitation_loss(policy(sil_obs, sil_mask), sil_act, sil_margin)
                loss = loss + cfg.self_imitation.coef * sil_loss
                sums["losses/imitation"] += float(sil_loss.detach())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            opt.step()
            with torch.no_grad():
                sums["losses/policy_loss"] += float(pg_loss)
                sums["losses/kl"] += float(kl_ref)
                sums["losses/entropy_floor_loss"] += float(ent_loss)
                sums["losses/total_loss"] += float(loss)
                for name, v in clip.items():
                    sums[f"losses/clip_ratio/{name}"] += float(v)
                sums["losses/approx_kl"] += float(approx_kl(logp, old_logp[idx]))
                sums["losses/entropy"] += float(ent)
            count += 1
    return {k: v / max(count, 1) for k, v in sums.items()}


def imitation_only(
    policy: PolicyMLP,
    opt: torch.optim.Optimizer,
    obs: torch.Tensor | None,
    mask: torch.Tensor | None,
    action: torch.Tensor | None,
    cfg: GRPOConfig,
) -> dict[str, float]:
    """An epoch whose groups were all dropped: only the self-imitation term, `update_epochs`
    gradient steps (none without a buffer)."""
    if obs is None or mask is None or action is None or len(action) == 0:
        return {}
    policy.eval()
    total = 0.0
    for _ in range(cfg.update_epochs):
        sil_loss, _ = imitation_loss(policy(obs, mask), action, cfg.self_imitation.margin)
        loss = cfg.self_imitation.coef * sil_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        opt.step()
        total += float(sil_loss.detach())
    return {"losses/imitation": total / cfg.update_epochs}


def imitation_metrics(policy: PolicyMLP, buffer: SelfImitationBuffer) -> dict[str, float]:
    """After the update: the share of buffered steps where the argmax leaves the best known
    path (margin 0), and how many kernels' best episode GRPO found (the rest are greedy's)."""
    obs, mask, action = buffer.arrays()
    policy.eval()
    with torch.no_grad():
        _, off = imitation_loss(policy(obs, mask), action)
    return {
        "charts/imitation_off_path": float(off),
        "charts/imitation_grpo_kernels": float(buffer.sources().get("grpo", 0)),
    }


def epoch_metrics(
    episodes: Sequence[Episode], returns: torch.Tensor, temperature: float, forced: int
) -> dict[str, float]:
    """Rollout statistics of one epoch (charts/*, actions/*)."""
    steps = [s for e in episodes for s in e.steps]
    acts = Counter(s.action for s in steps)
    n_steps = max(len(steps), 1)
    m = {
        "charts/reward_mean": float(returns.mean()),
        "charts/reward_std": float(returns.std(unbiased=False)),
        "charts/frac_reward_zero_std": zero_spread_fraction(returns),
        "charts/improvement_mean": float(np.mean([e.improvement for e in episodes])),
        "charts/episode_len": len(steps) / max(len(episodes), 1),
        "charts/stop_rate": float(np.mean([e.steps[-1].action == STOP for e in episodes])),
        "charts/invalid_rate": sum(s.invalid for s in steps) / n_steps,
        "charts/temperature": temperature,
        "charts/forced_steps": float(forced),
    }
    for a, name in enumerate(ACTION_NAMES):
        m[f"actions/{name}"] = acts.get(a, 0) / n_steps
    return m


def _best_found(state: GRPOState, episodes: Sequence[Episode]) -> None:
    """Remember the fastest sequence sampled per kernel (novel-sequence accounting)."""
    for e in episodes:
        if not math.isfinite(e.final_cycles):
            continue
        cur = state.best_found.get(e.kernel_id)
        if cur is None or e.final_cycles < cur["final_cycles"]:
            state.best_found[e.kernel_id] = {
                "final_cycles": e.final_cycles,
                "base_cycles": e.base_cycles,
                "actions": list(e.actions),
            }


def _payload(
    policy: PolicyMLP, opt: torch.optim.Optimizer, state: GRPOState, provenance: dict[str, Any]
) -> dict[str, Any]:
    """What last.pt holds: weights, optimizer, GRPO state at the end of `state.epoch`."""
    return ckpt.policy_payload(
        policy,
        optimizer=opt.state_dict(),
        grpo_state=vars(state),
        epoch=state.epoch,
        provenance=provenance,
    )


@dataclass
class Batch:
    """One epoch's rollouts: the dynamic sample, the kept episodes and their advantages."""

    sampled: Sampled
    episodes: list[Episode]  # the kept groups' episodes, in group order
    adv: torch.Tensor  # one advantage per kept episode
    rollout_s: float  # wall time of the rollouts, measurements included
    measure_s: float  # of which inside the backend


def collect(
    cfg: GRPOConfig,
    mdp: Any,
    specs: Sequence[Any],
    policy: PolicyMLP,
    seed: int,
    epoch: int,
    temperature: float,
    n_forced: int,
    gen: torch.Generator,
) -> Batch:
    """Sample the epoch's kernels from (seed, epoch), roll out G episodes each (re-rolling flat
    groups) and turn the kept groups' returns into advantages."""
    rng = np.random.default_rng([seed, epoch])
    k = min(cfg.batch_kernels, len(specs))
    batch = [specs[i] for i in sorted(rng.choice(len(specs), size=k, replace=False))]
    measure0 = mdp.measure_s
    t0 = time.perf_counter()

    def sample(idx: list[int], t: float) -> list[Episode]:
        return rollout(
            mdp,
            [batch[i] for i in idx],
            policy,
            group_size=cfg.group_size,
            temperature=t,
            stop_masked_steps=n_forced,
            generator=gen,
        )

    ds = dynamic_sample(sample, k, cfg.group_size, temperature, cfg.dynamic_sampling)
    rollout_s = time.perf_counter() - t0
    kept = ds.keep.repeat_interleave(cfg.group_size).tolist()
    episodes = [e for e, keep in zip(ds.episodes, kept, strict=True) if keep]
    returns = ds.returns[ds.keep]
    lengths = torch.tensor([len(e.steps) for e in episodes], dtype=torch.float64).view(
        -1, cfg.group_size
    )
    adv = (
        group_advantages(returns, lengths, cfg.adv_eps, cfg.adv_scale).flatten()
        if len(episodes)
        else torch.zeros(0)
    )
    return Batch(ds, episodes, adv, rollout_s, mdp.measure_s - measure0)


class CacheRate:
    """The backend's measurement-cache hit rate since the previous call."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.stats0 = dict(getattr(backend, "stats", {}) or {})

    def __call__(self) -> float:
        stats = dict(getattr(self.backend, "stats", {}) or {})
        hits = stats.get("hits", 0) - self.stats0.get("hits", 0)
        misses = stats.get("misses", 0) - self.stats0.get("misses", 0)
        self.stats0 = stats
        return hits / (hits + misses) if hits + misses else 1.0


def train_metrics(
    b: Batch,
    losses: dict[str, float],
    cfg: GRPOConfig,
    epoch: int,
    temperature: float,
    n_forced: int,
    cache_hit_rate: float,
    update_s: float,
) -> dict[str, float]:
    """The epoch's train.csv row; logs the reward-hacking monitors' alarms."""
    ds = b.sampled
    mon = check(ds.episodes, cfg.monitors)
    for msg in mon.alarms:
        log.warning("epoch %d alarm: %s", epoch, msg)
    return {
        **epoch_metrics(ds.episodes, ds.returns, temperature, n_forced),
        "charts/frac_reward_zero_std_sampled": ds.first_zero_std,
        "charts/resampled_groups": float(ds.resampled),
        "charts/recovered_groups": float(ds.recovered),
        "charts/dropped_groups": float((~ds.keep).sum()),
        **losses,
        **mon.values,
        "charts/cache_hit_rate": cache_hit_rate,
        "perf/rollout_s": b.rollout_s - b.measure_s,
        "perf/measure_s": b.measure_s,
        "perf/update_s": update_s,
    }


def log_actions(logger: MetricsLogger, episodes: Sequence[Episode], epoch: int) -> None:
    """The histogram of the actions taken (TensorBoard only)."""
    if logger.writer is not None:
        acts = [s.action for e in episodes for s in e.steps]
        logger.writer.add_histogram("actions/histogram", np.asarray(acts), epoch)


def start(
    cfg: GRPOConfig, policy: PolicyMLP, ref: PolicyMLP, last: Path, resume: bool
) -> tuple[torch.optim.Optimizer, GRPOState]:
    """The optimizer and GRPO state: fresh, or from `last` when `resume` and it exists; the
    reference policy is frozen."""
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    state = GRPOState()
    if resume and last.exists():
        payload = ckpt.load(last)
        policy.load_state_dict(payload["policy"])
        opt.load_state_dict(payload["optimizer"])
        state = GRPOState(**payload["grpo_state"])
        log.info("resuming GRPO after epoch %d from %s", state.epoch, last)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return opt, state


def open_logs(
    run_dir: Path,
    state: GRPOState,
    provenance: dict[str, Any],
    traj: TrajectoryLog,
    tensorboard: bool,
) -> MetricsLogger:
    """The metrics logger (continuing after a resumed epoch) and a new trajectory attempt."""
    resumed = state.epoch if state.epoch >= 0 else None
    logger = MetricsLogger(run_dir / "metrics", resume_after=resumed, tensorboard=tensorboard)
    traj.begin_attempt(
        run_name=run_dir.name,
        resumed_from_epoch=resumed,
        backend=str(provenance.get("backend", "")),
        device=str(provenance.get("device", "")),
        git_rev=str(provenance.get("git_revision")),
        config=provenance.get("config"),
    )
    return logger


def train(
    cfg: GRPOConfig,
    *,
    mdp: Any,
    specs: Sequence[Any],
    policy: PolicyMLP,
    ref: PolicyMLP,
    run_dir: Path,
    seed: int,
    provenance: dict[str, Any],
    traj: TrajectoryLog,
    resume: bool = True,
    progress: bool = True,
    tensorboard: bool = True,
    stop_after_epoch: int | None = None,
    buffer: SelfImitationBuffer | None = None,
) -> tuple[PolicyMLP, GRPOState]:
    """The GRPO loop; resumes from `run_dir/checkpoints/last.pt` when `resume` and it exists.

    `buffer` (agents.self_imitation) starts the self-imitation buffer, typically with greedy's
    sequences; without one it starts empty and fills from the rollouts, and a resumed run
    continues from the buffer its checkpoint holds. With `self_imitation.coef` 0 the loop is
    the design's GRPO.
    """
    ckdir = run_dir / "checkpoints"
    last = ckdir / "last.pt"
    gate = ckpt.PromotionGate(ckdir, cfg.promotion_min_delta)
    opt, state = start(cfg, policy, ref, last, resume)
    if cfg.self_imitation.coef <= 0:
        buffer = None
    else:
        if buffer is None:
            buffer = SelfImitationBuffer(mdp.layout, cfg.self_imitation.min_gain)
        if state.imitation:
            buffer.load_state(state.imitation)
    backend, device = str(provenance.get("backend", "")), str(provenance.get("device", ""))
    logger = open_logs(run_dir, state, provenance, traj, tensorboard)
    temp = TemperatureSchedule(**vars(cfg.temperature))
    forced = ForcedSteps(**vars(cfg.forced_steps))
    epochs = range(state.epoch + 1, cfg.epochs)
    bar = tqdm(epochs, desc="grpo", unit="epoch", initial=state.epoch + 1, total=cfg.epochs,
               disable=not progress)  # fmt: skip
    cache_rate = CacheRate(mdp.backend)
    saved = state.epoch  # the last epoch whose state last.pt holds
    clean = True  # policy, optimizer and state are exactly those at the end of state.epoch
    try:
        for epoch in bar:
            t_epoch = time.perf_counter()
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            temperature, n_forced = temp(epoch), forced(epoch)
            clean = False
            b = collect(cfg, mdp, specs, policy, seed, epoch, temperature, n_forced, gen)
            if buffer is not None:
                buffer.offer_episodes(b.sampled.episodes)
            t1 = time.perf_counter()
            losses = update(policy, ref, opt, b.episodes, b.adv, temperature, cfg, gen, buffer)
            update_s = time.perf_counter() - t1
            _best_found(state, b.sampled.episodes)
            advs = {i: float(a) for i, a in enumerate(b.adv)}
            traj.append(step_records(b.episodes, "grpo", epoch, backend, device, temperature, advs))
            metrics = train_metrics(
                b, losses, cfg, epoch, temperature, n_forced, cache_rate(), update_s
            )
            log_actions(logger, b.sampled.episodes, epoch)
            is_eval = (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1
            ev = evaluate(mdp, specs, policy, epoch) if is_eval else None
            if buffer is not None:
                metrics.update(imitation_metrics(policy, buffer))
                if ev is not None:
                    buffer.offer_episodes(ev.episodes)
                state.imitation = buffer.state()
            state.epoch = epoch
            metrics["perf/epoch_s"] = epoch_s = time.perf_counter() - t_epoch
            state.train_s += epoch_s
            logger.log("train", epoch, metrics)
            if ev is not None:
                state.evals.append(ev.summary())
                traj.append(step_records(ev.episodes, "eval", epoch, backend, device, 0.0))
                scores = {"eval/mean_improvement": ev.mean_improvement, "eval/score": ev.score}
                logger.log("eval", epoch, scores)
            if ev is not None or (epoch + 1) % cfg.checkpoint_every == 0:
                saved = save_checkpoints(ckdir, policy, opt, state, provenance, gate, ev)
            clean = True
            logger.flush()
            bar.set_postfix(
                R=f"{metrics['charts/reward_mean']:+.3f}",
                speedup=speedup(metrics["charts/improvement_mean"], short=True),
                T=f"{temperature:.2f}",
            )
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                raise Interrupted(f"stopped after epoch {epoch} (stop_after_epoch)")
    except KeyboardInterrupt:
        # Ctrl-C between epochs: keep the last completed epoch (checkpoint_every may be > 1).
        if clean and state.epoch > saved:
            ckpt.save(last, _payload(policy, opt, state, provenance))
            log.info("saved epoch %d to %s", state.epoch, last)
        raise
    finally:
        logger.close()
    return policy, state


def save_checkpoints(
    ckdir: Path,
    policy: PolicyMLP,
    opt: torch.optim.Optimizer,
    state: GRPOState,
    provenance: dict[str, Any],
    gate: ckpt.PromotionGate,
    ev: EvalResult | None,
) -> int:
    """last.pt at the end of `state.epoch`; after an evaluation also epoch_NNNN.pt, offered to
    the promotion gate (best.pt). Returns the epoch saved."""
    epoch = state.epoch
    payload = _payload(policy, opt, state, provenance)
    ckpt.save(ckdir / "last.pt", payload)
    if ev is not None:
        path = ckpt.save(ckdir / f"epoch_{epoch:04d}.pt", payload)
        if gate.consider(path, ev.score, epoch):
            log.info("epoch %d promoted to best (score %.4f)", epoch, ev.score)
    return epoch
