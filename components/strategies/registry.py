"""The strategy registry: every strategy a run can train, by name, and what a run of some of them needs.

One line per plugin module (`_PLUGINS`) registers the built-in strategies;
`register` adds one from anywhere else: a test, or a user's module listed in
`trainer.plugins`, which every process imports before it looks a strategy up
(`load_plugins`), so a user's strategy runs under kfp.local and Kubeflow too. The config
checks `trainer.strategies` here (`check_trainer`), the pipeline graph asks
which train steps to make (`train_steps`), in which order, with which teacher
and inputs, how the evaluator pairs them (`pairing_for`) and which evaluate
step judges them (`evaluation_for`). Nothing else in tlpipe names a strategy.
"""

from __future__ import annotations

import importlib
from typing import Optional

from tlpipe.components.config_schema import prefixed
from tlpipe.components.evaluator.pairing import Pairing
from tlpipe.components.evaluator.spec import EVALUATE
from tlpipe.components.spec import ComponentSpec
from tlpipe.components.strategies import domain, multi_task, self_training, transfer
from tlpipe.components.strategies.plugin import CANDIDATE, REFERENCE, Strategy
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.models.plumbing.errors import ConfigError

_PLUGINS = (transfer, self_training, domain, multi_task)
_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> None:
    """Add `strategy` to the registry; a name already registered is refused."""
    if strategy.name in _REGISTRY:
        raise ValueError(f"a strategy named {strategy.name!r} is already registered; Received: {strategy}")
    _REGISTRY[strategy.name] = strategy


def unregister(name: str) -> None:
    """Remove the strategy `name` (e.g. a test's own); a KeyError when it is not registered."""
    get_strategy(name)
    del _REGISTRY[name]


for _plugin in _PLUGINS:
    for _strategy in _plugin.STRATEGIES:
        register(_strategy)


def get_strategy(name: str) -> Strategy:
    """The registry entry of `name`; a KeyError names the known strategies."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(_REGISTRY)}") from None


def candidate_strategies() -> tuple[str, ...]:
    """The strategies a user may list in `trainer.strategies` (their references train with them)."""
    return tuple(name for name, strategy in _REGISTRY.items() if strategy.role == CANDIDATE)


def load_plugins(config: TrainerConfig) -> None:
    """Import the modules of `trainer.plugins`, which register their strategies when imported (once per process:
    the config's check, each train step's process)."""
    for index, module in enumerate(config.plugins):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"trainer.plugins[{index}]", module,
                              f"an importable module that registers strategies ({error})") from None


def check_trainer(config: TrainerConfig) -> None:
    """ConfigError (keys under `trainer.`) unless `trainer.strategies` lists known candidates, each once, and
    every strategy's own checks of the section pass. Loads `trainer.plugins` first."""
    load_plugins(config)
    known = candidate_strategies()
    with prefixed("trainer"):
        if not config.strategies:
            raise ConfigError("strategies", config.strategies, "a non-empty list of " + ", ".join(known))
        for name in config.strategies:
            if name not in known:
                raise ConfigError("strategies", name, known)
        if len(set(config.strategies)) != len(config.strategies):
            raise ConfigError("strategies", config.strategies, "each strategy at most once")
        for strategy in _REGISTRY.values():
            if strategy.check_config:
                strategy.check_config(config)


def teacher_of(name: str, config: TrainerConfig) -> Optional[str]:
    """The strategy whose model teaches `name` under `config`, if any."""
    return get_strategy(name).teacher_for(config)


def train_steps(config: TrainerConfig) -> list[str]:
    """The strategies a run trains, each teacher before its students: the listed candidates, their matched
    references, and the references the section asks for on its own (`Strategy.also_runs_when`)."""
    matched = [get_strategy(name).reference for name in config.strategies]
    asked = [name for name, strategy in _REGISTRY.items() if strategy.also_runs_when and strategy.also_runs_when(config)]
    ordered: list[str] = []
    for name in dict.fromkeys([*config.strategies, *matched, *asked]):
        teacher = teacher_of(name, config)
        if teacher and teacher not in ordered:
            ordered.append(teacher)
        if name not in ordered:
            ordered.append(name)
    return ordered


def required_splits(names: list[str]) -> dict[str, tuple[str, ...]]:
    """Strategy -> the splits it needs, for the strategies that need any."""
    return {name: get_strategy(name).requires_splits for name in names if get_strategy(name).requires_splits}


def needs_source_domain(names: list[str]) -> bool:
    """Whether any of these strategies trains on the labelled source domain (`source.ingest`)."""
    return any(get_strategy(name).source_domain for name in names)


def pairing_for(names: list[str], config: TrainerConfig) -> Pairing:
    """The evaluator's view of a run that trains `names`: candidates, matched references, what builds on what."""
    strategies = {name: get_strategy(name) for name in names}
    matched = {name: s.reference for name, s in strategies.items()
               if s.role == CANDIDATE and s.reference in names}
    return Pairing(
        candidates=tuple(name for name, s in strategies.items() if s.role == CANDIDATE),
        matched=matched,
        builds_on={name: teacher for name in names  # a teacher that is also the matched reference adds nothing
                   if (teacher := teacher_of(name, config)) in names and teacher != matched.get(name)},
        extra_data={name: s.extra_data for name, s in strategies.items() if s.extra_data},
        from_scratch=tuple(name for name, s in strategies.items() if s.role == REFERENCE and not s.source_domain),
        source_domain=tuple(name for name, s in strategies.items() if s.source_domain),
    )


def evaluation_for(names: list[str]) -> ComponentSpec:
    """The evaluate step of a run that trains `names`: a candidate's own (`Strategy.evaluate`), else `EVALUATE`."""
    own = {spec.executor: spec for name in names if (spec := get_strategy(name).evaluate)}
    if len(own) > 1:
        raise ValueError(f"strategies {names} declare different evaluations; one run can have one. Received: "
                         f"{sorted(own)}")
    return next(iter(own.values()), EVALUATE)
