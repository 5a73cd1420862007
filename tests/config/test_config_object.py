"""The Config object: immutable, converts to a plain dict and back, and the example configs are valid."""

from __future__ import annotations

import ast
import dataclasses
import graphlib

import pytest

from gravtrain.config import Config, load_config, resolved_yaml
from gravtrain.config.fields import LIST_ITEM, section_keys, walk_keys
from gravtrain.config.reference import schema_reference
from tests.config.helpers import MINIMAL


@pytest.fixture(params=["toy.yaml", "hgcal.yaml"])
def example(request, repo_root):
    return load_config(repo_root / "configs" / request.param)


def test_examples_round_trip_through_dict(example):
    assert Config.from_dict(example.to_dict()) == example


def test_resolved_yaml_loads_back(example, write_config):
    assert load_config(write_config(resolved_yaml(example))) == example


def test_config_is_immutable(example):
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.General.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        example.Tracking.tags["x"] = "y"
    assert isinstance(example.Training, tuple) and isinstance(example.Architecture.gravnet, tuple)


def test_hgcal_example_is_hgcal_sized(repo_root):
    config = load_config(repo_root / "configs" / "hgcal.yaml")
    assert [block.n for block in config.Architecture.gravnet] == [256, 256, 256]
    assert config.Architecture.n_gravnet_space_coordinates == 6
    assert config.Architecture.n_cluster_space_coordinates == 6
    assert [stage.batch_size for stage in config.Training] == [150_000] * 3


def test_to_dict_uses_yaml_names_and_plain_types(write_config):
    data = load_config(write_config(MINIMAL)).to_dict()
    assert "description-string" in data["General"] and "pre-model-type" in data["General"]
    assert data["Training"][0]["LossOptions"] == {}
    assert type(data["Tracking"]["tags"]) is dict and type(data["Architecture"]["gravnet"]) is list


def test_reference_documents_every_key():
    reference = schema_reference()
    for path, info in walk_keys(Config):
        assert f"\n{'  ' * (len(path) - path.count(LIST_ITEM) - 1)}{info.yaml_name}:" in "\n" + reference, path
    for info in section_keys(Config):
        assert info.spec.doc in reference


def test_every_key_has_a_doc():
    for path, info in walk_keys(Config):
        assert info.spec.doc.strip(), ".".join(path)


def test_walk_reaches_list_items_and_stage_overrides():
    paths = {".".join(path) for path, _ in walk_keys(Config)}
    assert {"Architecture.gravnet.N.n", "Training.N.LossOptions.q_min", "Data.toy.seed", "General.seed"} <= paths


def test_config_modules_import_one_way(repo_root):
    """No import cycle inside the config room, lazy imports in functions included (schema uses the validator,
    the validator knows only the schema's vocabulary)."""
    room = repo_root / "modules" / "gravtrain" / "config"
    graph = {}
    for path in room.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gravtrain.config."):
                imported.add(node.module.removeprefix("gravtrain.config."))
        graph[path.stem] = imported
    assert "schema" not in graph["validate"]
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle
