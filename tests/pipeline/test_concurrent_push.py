"""Two runs racing to push onto one serving folder: never the worse model on top of the better one.

Driven at the pusher level, with real blessing records and two processes that push at the same moment:
the full pipelines take minutes each, while the race is only in the push. The scenario is the one a user
met: two runs on one root evaluated their candidates against the same (empty) production, both were
blessed, and both push. Compare-and-push lets exactly one through; the other is refused with its reason
and recorded in the history. Then the refused run is evaluated again (against the new production) and
its push goes through only if it is better.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.executor import read_push_history, run_pusher
from tlpipe.components.production import describe_production

pytestmark = pytest.mark.quick

ROUNDS = 12


def _model(folder, name: str, accuracy: float) -> str:
    """A model folder as the pusher sees a SavedModel (its files are what the fingerprint covers)."""
    path = folder / name
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_text(f"model {name}")
    (path / "variables" / "variables.index").write_text(f"weights of {name}: accuracy {accuracy}")
    return str(path)


def _blessing(folder, model_dir: str, name: str, accuracy: float, production: dict) -> str:
    """The blessing record the evaluator writes: blessed against `production`, which it compared with."""
    path = folder / f"blessing-{name}.json"
    path.write_text(json.dumps({
        "blessed": True, "candidate": name, "candidate_model_dir": model_dir,
        "reason": f"'{name}' beats the baseline and production", "report": "report/index.html",
        "candidates": {name: {"accuracy": {"value": accuracy}}},
        "thresholds": {"compare_with_production": True}, "production": production,
    }))
    return str(path)


def _push_at(start: float, model_dir: str, blessing: str, serving: str, results) -> None:
    while time.time() < start:
        pass
    record = run_pusher(PusherConfig(), model_dir, blessing, serving)
    results.put((os.path.basename(model_dir), record["pushed"], record.get("version"), record.get("reason", "")))


def _race(tmp_path, round_index: int) -> tuple[str, dict[str, tuple], dict[str, float]]:
    folder = tmp_path / f"round-{round_index}"
    serving = str(folder / "serving")
    accuracy = {"worse": 0.875, "better": 0.881}
    empty = describe_production(serving).to_dict()  # what both evaluations compared with
    pushes = [(_model(folder, name, value), name, value) for name, value in accuracy.items()]
    blessings = [_blessing(folder, model_dir, name, value, empty) for model_dir, name, value in pushes]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = time.time() + 0.3
    processes = [context.Process(target=_push_at, args=(start, model_dir, blessing, serving, results))
                 for (model_dir, _, _), blessing in zip(pushes, blessings)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    outcome = {}
    for _ in processes:
        name, pushed, version, reason = results.get(timeout=10)
        outcome[name] = (pushed, version, reason)
    return serving, outcome, accuracy


def test_two_pushes_at_once_let_one_through_and_refuse_the_other_with_its_reason(tmp_path):
    for round_index in range(ROUNDS):
        serving, outcome, accuracy = _race(tmp_path, round_index)
        winners = [name for name, (pushed, _, _) in outcome.items() if pushed]
        assert len(winners) == 1, outcome  # never both: the second would have gone on top unchecked
        (loser,) = set(outcome) - set(winners)
        assert outcome[winners[0]][1] == 1
        assert "production moved on since the evaluation" in outcome[loser][2]
        assert "version 1" in outcome[loser][2]
        production = describe_production(serving)
        assert production.version == 1 and sorted(os.listdir(serving)) == [".push.lock", "1", "push_history.jsonl"]
        history = read_push_history(serving)
        assert sorted((entry["pushed"], entry["source_model_dir"].rsplit("/", 1)[-1]) for entry in history) == \
            sorted([(True, winners[0]), (False, loser)])

        # The refused run is evaluated again, now against what is in production, and pushed only if better.
        folder = tmp_path / f"round-{round_index}"
        if accuracy[loser] > accuracy[winners[0]]:
            again = _blessing(folder, str(folder / loser), loser, accuracy[loser], production.to_dict())
            assert run_pusher(PusherConfig(), str(folder / loser), again, serving)["version"] == 2
        with open(os.path.join(describe_production(serving).path, "saved_model.pb"), encoding="utf-8") as handle:
            assert handle.read() == "model better"  # on top in the end, whichever won the race
