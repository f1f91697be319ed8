"""Describing the model in production: highest version, its path and a content fingerprint."""

from __future__ import annotations

import os

import pytest

from tlpipe.components.production import ProductionModel, describe_production

pytestmark = pytest.mark.quick


def _version(serving, version: int, content: bytes) -> None:
    folder = serving / str(version) / "variables"
    folder.mkdir(parents=True)
    (serving / str(version) / "saved_model.pb").write_bytes(content)
    (folder / "variables.index").write_bytes(b"index")


def test_empty_or_missing_serving_folder_means_nothing_in_production(tmp_path):
    assert describe_production(str(tmp_path / "absent")) == ProductionModel(None, None, None)
    (tmp_path / "serving" / ".push-tmp-1234").mkdir(parents=True)  # temp folders are not versions
    assert describe_production(str(tmp_path / "serving")).version is None


def test_highest_version_and_a_fingerprint_of_its_files(tmp_path):
    serving = tmp_path / "serving"
    _version(serving, 1, b"model one")
    _version(serving, 2, b"model two")
    production = describe_production(str(serving))
    assert production.version == 2 and production.path == os.path.join(str(serving), "2")
    assert len(production.fingerprint) == 64
    # Same bytes under another version number: same fingerprint; different bytes: different fingerprint.
    _version(tmp_path / "copy", 7, b"model two")
    assert describe_production(str(tmp_path / "copy")).fingerprint == production.fingerprint
    (serving / "2" / "saved_model.pb").write_bytes(b"model 2, edited")
    assert describe_production(str(serving)).fingerprint != production.fingerprint


def test_round_trip_through_a_dict(tmp_path):
    _version(tmp_path, 3, b"x")
    production = describe_production(str(tmp_path))
    assert ProductionModel.from_dict(production.to_dict()) == production
    assert ProductionModel.from_dict(None) == ProductionModel.from_dict({}) == ProductionModel(None, None, None)
    assert production.same_model(ProductionModel(3, "/elsewhere/3", production.fingerprint))
    assert not production.same_model(ProductionModel(None, None, None))
