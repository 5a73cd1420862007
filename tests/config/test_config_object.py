"""The Config object: immutable, converts to a plain dict and back, and the example configs are valid."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from gravtrain.config import Config, load_config, resolved_yaml
from gravtrain.config.fields import is_section, section_keys
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


def all_key_paths(cls: type, prefix: str = "") -> list[str]:
    paths = []
    for info in section_keys(cls):
        here = f"{prefix}{info.yaml_name}"
        paths.append(here)
        inner = info.type
        if typing.get_origin(inner) is tuple and is_section(typing.get_args(inner)[0]):
            inner = typing.get_args(inner)[0]
        if typing.get_origin(inner) is typing.Union:
            inner = typing.get_args(inner)[0]
        if is_section(inner):
            paths += all_key_paths(inner, here + ".")
    return paths


def test_reference_documents_every_key():
    reference = schema_reference()
    for path in all_key_paths(Config):
        name = path.rsplit(".", 1)[-1]
        assert f"{name}:" in reference, path
    for info in section_keys(Config):
        assert info.spec.doc in reference


def test_every_key_has_a_doc():
    for path_cls in [Config]:
        stack = [path_cls]
        while stack:
            cls = stack.pop()
            for info in section_keys(cls):
                assert info.spec.doc.strip(), f"{cls.__name__}.{info.yaml_name}"
                inner = info.type
                if typing.get_origin(inner) is tuple and is_section(typing.get_args(inner)[0]):
                    stack.append(typing.get_args(inner)[0])
                elif is_section(inner):
                    stack.append(inner)
