"""plugins.containerd_config: the catalogue of containerd settings taskplane ignores."""

from __future__ import annotations

import pytest

import taskplane
from plugins.containerd_config import CATALOGUE, UNIMPLEMENTED_PLUGINS, rename_v1_plugin
from registry.discovery import discover


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("cri", "io.containerd.grpc.v1.cri"),
        ("task", "io.containerd.runtime.v2.task"),
        ("overlayfs", "io.containerd.snapshotter.v1.overlayfs"),
        ("diff-service", "io.containerd.service.v1.diff-service"),
        ("windows", "io.containerd.snapshotter.v1.windows"),
        ("introspection", "io.containerd.grpc.v1.introspection"),  # containerd: "ambiguous"
        ("io.containerd.shim.v1.manager", "io.containerd.shim.v1.manager"),
    ],
)
def test_version_1_plugin_names_become_uris_by_containerds_rules(name: str, uri: str) -> None:
    assert rename_v1_plugin(name) == uri


def test_the_catalogue_never_names_what_taskplane_implements() -> None:
    registry, _ = discover(taskplane.builtin_plugins(), autoload=False)
    implemented = {r.uri for r in registry.registrations()}
    assert implemented.isdisjoint(UNIMPLEMENTED_PLUGINS)
    assert implemented.isdisjoint(CATALOGUE.top_level)
    assert set(CATALOGUE.plugin_keys) <= implemented


def test_every_explanation_is_one_short_clause() -> None:
    texts = [
        *CATALOGUE.top_level.values(),
        *CATALOGUE.plugins.values(),
        *CATALOGUE.timeouts.values(),
        *(text for keys in CATALOGUE.plugin_keys.values() for text in keys.values()),
    ]
    for text in texts:
        assert (
            "\n" not in text and not text.endswith(".") and text.startswith(("containerd", "the"))
        )


def test_used_and_ignored_timeouts_do_not_overlap() -> None:
    assert CATALOGUE.used_timeouts.isdisjoint(CATALOGUE.timeouts)
