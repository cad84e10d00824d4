"""The plugin module named by this package's ``taskplane.plugins`` entry point."""

from __future__ import annotations

from typing import Any

import attrs

from plugins.types import EVENT_PLUGIN, RUNTIME_PLUGIN_V2
from registry import InitContext, Registration, hookimpl


@attrs.define
class ExampleConfig:
    """``[plugins."io.containerd.runtime.v2.example"]``; the default instance is the default."""

    greeting: str = "hello from taskplane-example-runtime"


class ExampleRuntime:
    """What init returns: the plugin instance other plugins (and the host) get."""

    def __init__(self, greeting: str, events: Any, root: str) -> None:
        self.greeting = greeting
        self.events = events
        self.root = root
        self.closed = False

    def close(self) -> None:
        """Called by the host at shutdown, in reverse init order."""
        self.closed = True


def init(ic: InitContext) -> ExampleRuntime:
    """Build the runtime from its config and the event exchange."""
    config: ExampleConfig = ic.config
    ic.meta.exports["greeting"] = config.greeting
    return ExampleRuntime(config.greeting, ic.get_single(EVENT_PLUGIN), ic.root)


@hookimpl
def taskplane_registrations() -> list[Registration]:
    """This package's plugins."""
    return [
        Registration(
            RUNTIME_PLUGIN_V2,
            "example",
            init=init,
            requires=(EVENT_PLUGIN,),
            config=ExampleConfig,
        )
    ]
