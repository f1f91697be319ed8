"""rank_candidates on tiny modules: who is recommended, what is written, failures, the feature cache."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tlpipe.components.rank.executor import rank_candidates
from tlpipe.models.plumbing.errors import ConfigError, ModelError

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def ranking(tmp_path_factory, transformed_dir, sighted_module, blind_module, rgb_module):
    output = str(tmp_path_factory.mktemp("rank"))
    candidates = [blind_module, "/no/such/module", sighted_module, rgb_module]
    return output, candidates, rank_candidates(candidates, transformed_dir, output)


def _by_candidate(result: dict) -> dict:
    return {entry["candidate"]: entry for entry in result["candidates"]}


def test_features_that_see_the_classes_are_recommended_over_blind_ones(ranking, sighted_module, blind_module):
    _, _, result = ranking
    entries = _by_candidate(result)
    assert result["recommended"] != blind_module
    assert entries[blind_module]["scores"]["logme"] < entries[sighted_module]["scores"]["logme"]
    assert entries[blind_module]["scores"]["h_score"] < entries[sighted_module]["scores"]["h_score"]
    assert result["reason"].startswith("highest logme")
    assert "1 candidate(s) failed" in result["reason"]
    assert [entry["rank"] for entry in result["candidates"]] == [1, 2, 3, None]


def test_a_candidate_that_cannot_load_is_reported_and_the_rest_ranked(ranking):
    _, _, result = ranking
    failed = _by_candidate(result)["/no/such/module"]
    assert failed["status"] == "failed" and failed["scores"] == {}
    assert "cannot load hub module '/no/such/module'" in failed["error"]
    assert sum(entry["status"] == "ok" for entry in result["candidates"]) == 3


def test_source_scores_only_for_modules_with_a_source_classifier(ranking, sighted_module, rgb_module):
    _, _, result = ranking
    entries = _by_candidate(result)
    every = {"logme", "h_score", "regularized_h_score", "knn_accuracy"}
    assert set(entries[sighted_module]["scores"]) == every | {"leep", "nce"}
    assert set(entries[rgb_module]["scores"]) == every  # its images resized to 16x16 RGB
    assert entries[rgb_module]["feature_dim"] == 4
    for name in ("load", "features", *every, "leep", "nce", "total"):
        assert entries[sighted_module]["seconds"][name] >= 0


def test_the_table_the_page_and_the_chart_are_written(ranking, sighted_module):
    output, _, result = ranking
    with open(os.path.join(output, "rank.json")) as handle:
        assert json.load(handle)["recommended"] == result["recommended"]
    markdown = open(os.path.join(output, "rank.md")).read()
    assert f"**Recommended: {result['recommended']}**" in markdown
    assert "| rank | candidate | logme | h_score | regularized_h_score | knn_accuracy | leep | nce |" in markdown
    assert "/no/such/module" in markdown and "failed: ModelError" in markdown
    page = open(os.path.join(output, "rank.html")).read()
    assert '<img src="rank.png"' in page and sighted_module in page
    with open(os.path.join(output, "rank.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_reuses_the_cached_features(ranking, transformed_dir, sighted_module):
    output, candidates, first = ranking
    again = rank_candidates(candidates, transformed_dir, output)
    before, after = _by_candidate(first), _by_candidate(again)
    assert after[sighted_module]["features_cached"] is True
    assert before[sighted_module]["features_cached"] is False
    assert after[sighted_module]["scores"] == before[sighted_module]["scores"]
    assert again["recommended"] == first["recommended"]


def test_a_module_republished_in_place_is_run_again(tmp_path, transformed_dir, rgb_module):
    module = str(tmp_path / "module")
    shutil.copytree(rgb_module, module)
    first = rank_candidates([module], transformed_dir, str(tmp_path / "rank"))
    os.utime(os.path.join(module, "saved_model.pb"), (1e9 + 7, 2e9))
    again = rank_candidates([module], transformed_dir, str(tmp_path / "rank"))
    assert first["candidates"][0]["features_cached"] is False
    assert again["candidates"][0]["features_cached"] is False


def test_select_leep_picks_among_modules_with_a_source_classifier(tmp_path, transformed_dir, sighted_module,
                                                                   rgb_module):
    result = rank_candidates([rgb_module, sighted_module], transformed_dir, str(tmp_path), select="leep")
    assert result["recommended"] == sighted_module
    assert result["reason"].startswith("highest leep (")


def test_nothing_to_recommend_is_an_error_after_the_report(tmp_path, transformed_dir, rgb_module):
    with pytest.raises(ModelError, match="no candidate could be ranked: every candidate failed"):
        rank_candidates(["/no/such/module"], transformed_dir, str(tmp_path / "failed"))
    assert json.load(open(tmp_path / "failed" / "rank.json"))["candidates"][0]["status"] == "failed"
    with pytest.raises(ModelError, match="needs a module with a source classifier"):
        rank_candidates([rgb_module], transformed_dir, str(tmp_path / "no_source"), select="nce")


def test_settings_are_checked(tmp_path, transformed_dir, rgb_module):
    with pytest.raises(ConfigError, match="select"):
        rank_candidates([rgb_module], transformed_dir, str(tmp_path), select="accuracy")
    with pytest.raises(ConfigError, match="at most once"):
        rank_candidates([rgb_module, rgb_module], transformed_dir, str(tmp_path))
