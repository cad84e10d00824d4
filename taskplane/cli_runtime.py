"""``taskplane runtime info NAME|PATH``: a runtime's PluginInfo as JSON (``ctr`` has no such
command; containerd serves it as the introspection service's ``PluginInfo`` for a runtime)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from plugins import errdefs
from taskplane import preflight
from taskplane.cli_client import with_client
from taskplane.cli_common import Command, Options, add_commands
from taskplane.containers import Client, runc_options
from taskplane.errors import CLIError

if TYPE_CHECKING:
    from google.protobuf import any_pb2

    from runtime_v2.api import introspection_pb2

__all__ = ["register", "register_info", "runtime_info", "runtime_info_record"]


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane runtime COMMAND``."""
    add_commands(
        parser,
        [
            Command(
                "info",
                "taskplane.cli_runtime:register_info",
                "print a runtime's PluginInfo (name, version, features, annotations) as JSON",
            )
        ],
    )


def register_info(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane runtime info``."""
    parser.add_argument("runtime", metavar="NAME|PATH")
    parser.add_argument(
        "--runc-binary",
        metavar="PATH",
        help="runc-compatible binary to pass in the runtime options",
    )
    parser.set_defaults(handler=runtime_info)


def runtime_info(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane runtime info``: the runtime's PluginInfo as JSON."""
    preflight.resolve_runtime(args.runtime)  # names what it searched when missing
    if args.runc_binary:
        preflight.find_runc(args.runc_binary)

    async def body(client: Client) -> dict[str, Any]:
        from runtime_v2 import typeurl
        from runtime_v2.api import introspection_pb2

        request = introspection_pb2.RuntimeRequest(runtime_path=args.runtime)
        if args.runc_binary:
            request.options.CopyFrom(typeurl.pack(runc_options(args.runc_binary)))
        negotiated = client.task_manager.shims.negotiated(args.runtime)
        try:
            info = await client.task_manager.plugin_info(request)
        except errdefs.NotImplemented as exc:  # a shim without -info (before containerd 2.0)
            if negotiated is None or not negotiated.task_api:
                raise
            raise CLIError(
                f"{exc}; taskplane starts it with the {negotiated.start_protocol} start "
                f"protocol and speaks task API v{negotiated.task_api} to it"
            ) from exc
        record = runtime_info_record(info)
        # taskplane's own addition: how it starts this shim (null until a task has run on it).
        record["start"] = {
            "protocol": negotiated.start_protocol if negotiated else None,
            "task_api": (negotiated.task_api or None) if negotiated else None,
        }
        return record

    json.dump(with_client(opts, body), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def runtime_info_record(info: introspection_pb2.RuntimeInfo) -> dict[str, Any]:
    """A ``containerd.types.RuntimeInfo`` as a JSON-able dict (Any values decoded)."""
    from google.protobuf import json_format

    from runtime_v2 import typeurl

    def decode(any_: any_pb2.Any) -> Any:
        if not any_.type_url:
            return None
        try:
            value = typeurl.unpack(any_)
        except errdefs.ContainerdError:
            return {"type_url": any_.type_url, "value": any_.value.hex()}
        if isinstance(value, typeurl.JSONValue):
            return value.value
        return json_format.MessageToDict(value, preserving_proto_field_name=True)

    return {
        "name": info.name,
        "version": {"version": info.version.version, "revision": info.version.revision},
        "options": decode(info.options) if info.HasField("options") else None,
        "features": decode(info.features) if info.HasField("features") else None,
        "annotations": dict(info.annotations),
    }
