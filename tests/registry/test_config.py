"""registry.config: loading, imports, strict validation, migration and defaults."""

from __future__ import annotations

import builtins
import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from registry import config as cfg
from registry.config import Config, ConfigError, ConfigIssue

# -- stand-in registrations (duck-typed like registry.Registration) ----------------------------


@attrs.frozen
class Reg:
    type: str
    id: str
    config: builtins.type | None = None
    config_migration: Callable[[Mapping[str, Any], int], dict[str, Any]] | None = None

    @property
    def uri(self) -> str:
        return f"{self.type}.{self.id}"


@attrs.frozen
class RuncOptions:
    binary_name: str = ""
    systemd_cgroup: bool = False


@attrs.frozen
class Runtime:
    runtime_type: str = "io.containerd.runc.v2"
    options: RuncOptions = attrs.Factory(RuncOptions)


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")


@attrs.frozen
class TaskConfig:
    platforms: tuple[str, ...] = ("linux/amd64",)
    sched_core: bool = False
    concurrency: int = attrs.field(default=4, validator=_non_negative)
    timeout: float = 2.5
    mode: Literal["fast", "safe"] = "safe"
    max_shims: int | None = None
    runtimes: dict[str, Runtime] = attrs.Factory(dict)
    default: Runtime = attrs.Factory(Runtime)


@attrs.frozen
class ShimConfig:
    env: list[str] = attrs.Factory(list)
    labels: dict[str, str] = attrs.Factory(dict)
    log_level: str = attrs.field(default="info", validator=attrs.validators.in_(["info", "debug"]))

    def __attrs_post_init__(self) -> None:
        if "FORBIDDEN=1" in self.env:
            raise ValueError("env FORBIDDEN=1 is not allowed")


TASK = Reg("io.containerd.runtime.v2", "task", TaskConfig)
SHIM = Reg("io.containerd.shim.v1", "manager", ShimConfig)
EVENTS = Reg("io.containerd.event.v1", "exchange")
REGS = (TASK, SHIM, EVENTS)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(exc.value).splitlines()


def decode_errors(data: Mapping[str, Any], regs: Any = REGS) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfg.decode_plugin_configs(Config.from_mapping(data, file="config.toml"), regs)
    return issues_of(info)


# -- loading and top-level validation ----------------------------------------------------------


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "")
    config = cfg.load_config(path)
    assert config.version == 1  # no version: a containerd 1.x file, as containerd 2 reads it
    assert config.root == "/var/lib/taskplane"
    assert config.state == "/run/taskplane"
    assert config.plugins == {}
    assert config.files == (str(path),)
    assert Config.from_mapping({}) == Config(version=1, files=("<dict>",))


def test_top_level_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        """
        version = 2
        root = "/srv/tp/root"
        state = "/srv/tp/state"
        disabled_plugins = ["io.containerd.event.v1.exchange"]
        required_plugins = ["io.containerd.runtime.v2.task"]
        [plugins."io.containerd.runtime.v2.task"]
        sched_core = true
        """,
    )
    config = cfg.load_config(path)
    assert (config.version, config.root, config.state) == (2, "/srv/tp/root", "/srv/tp/state")
    assert config.disabled_plugins == ("io.containerd.event.v1.exchange",)
    assert config.required_plugins == ("io.containerd.runtime.v2.task",)
    assert config.plugins == {"io.containerd.runtime.v2.task": {"sched_core": True}}


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        cfg.load_config(missing)
    assert info.value.issues == [
        ConfigIssue(str(missing), "", "cannot read config file: No such file or directory")
    ]
    assert str(info.value) == f"{missing}: cannot read config file: No such file or directory"


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", 'version = 3\nroot = "/a"\nstate = \n')
    with pytest.raises(ConfigError) as info:
        cfg.load_config(path)
    [issue] = info.value.issues
    assert issue.file == str(path)
    assert issue.message.startswith("invalid TOML: ")
    assert "line 3" in issue.message


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'root = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        cfg.load_config(path)


def test_unknown_top_level_key_suggests_the_known_one() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"disabled_plugin": [], "rooot": "/x"}, file="config.toml")
    assert issues_of(info) == [
        'config.toml: disabled_plugin: unknown key (did you mean "disabled_plugins"?)',
        'config.toml: rooot: unknown key (did you mean "root"?)',
    ]


def test_unknown_key_without_a_close_match_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match='zzz: unknown key \\(valid keys: "disabled_plugins"'):
        Config.from_mapping({"zzz": 1}, file="config.toml")


KNOWN = cfg.KnownSettings(
    top_level={"grpc": "containerd's gRPC API; taskplane has none"},
    plugins={"io.containerd.grpc.v1.cri": "containerd's CRI"},
    plugin_keys={TASK.uri: {"shim_debug": "containerd's shim debug switch"}},
    timeouts={"io.containerd.timeout.bolt.open": "containerd's bolt deadline"},
    used_timeouts=frozenset({"io.containerd.timeout.shim.load"}),
    rename_v1=lambda name: {"task": TASK.uri, "cri": "io.containerd.grpc.v1.cri"}.get(name, name),
)


def test_a_known_top_level_key_is_a_warning_naming_what_is_ignored() -> None:
    config = Config.from_mapping({"grpc": {"address": "/x"}}, file="config.toml", known=KNOWN)
    assert [str(w) for w in config.warnings] == [
        "config.toml: grpc: warning: containerd's gRPC API; taskplane has none: ignored"
    ]


def test_without_a_catalogue_a_containerd_key_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"grpc": {"address": "/x"}}, file="config.toml")
    assert issues_of(info)[0].startswith("config.toml: grpc: unknown key")


def test_a_misspelt_known_key_is_an_error_suggesting_it() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"grpcc": {}}, file="config.toml", known=KNOWN)
    assert issues_of(info) == ['config.toml: grpcc: unknown key (did you mean "grpc"?)']


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (0, "version: unsupported config version 0 (supported: 1, 2, 3, 4)"),
        (5, "version: unsupported config version 5 (supported: 1, 2, 3, 4)"),
        ("3", 'version: expected an integer, got str "3"'),
        (True, "version: expected an integer, got bool true"),
        (3.0, "version: expected an integer, got float 3.0"),
    ],
)
def test_version_must_be_a_supported_integer(version: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"version": version}, file="config.toml")
    assert issues_of(info) == [f"config.toml: {message}"]


def test_version_5_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "version = 5\n")
    with pytest.raises(ConfigError) as info:
        cfg.load_config(path)
    assert issues_of(info) == [
        f"{path}: version: unsupported config version 5 (supported: 1, 2, 3, 4)"
    ]


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_every_containerd_config_version_is_read(version: int) -> None:
    config = Config.from_mapping({"version": version, "plugins": {TASK.uri: {}}})
    assert config.version == version
    assert cfg.migrate(config, REGS).version == max(version, cfg.CONFIG_VERSION)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"root": 5}, "root: expected a string, got int 5"),
        ({"root": ""}, "root: must not be empty"),
        ({"state": "run/tp"}, 'state: must be an absolute path, got "run/tp"'),
        ({"root": "/same", "state": "/same"}, "state: must differ from root (both are /same)"),
        (
            {"disabled_plugins": "a.b"},
            'disabled_plugins: expected a list of strings, got str "a.b"',
        ),
        ({"required_plugins": [1]}, "required_plugins[0]: expected a string, got int 1"),
        ({"imports": [""]}, "imports[0]: must not be empty"),
        ({"plugins": []}, "plugins: expected a table, got an array"),
        ({"plugins": {"a.b": 3}}, 'plugins."a.b": expected a table, got int 3'),
    ],
)
def test_top_level_types_are_strict(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(data, file="config.toml")
    assert issues_of(info) == [f"config.toml: {message}"]


def test_from_mapping_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match=r"config.toml: expected a table, got an array"):
        Config.from_mapping([], file="config.toml")  # type: ignore[arg-type]


def test_from_mapping_copies_its_input() -> None:
    data: dict[str, Any] = {"plugins": {"a.b": {"x": [1]}}}
    config = Config.from_mapping(data)
    data["plugins"]["a.b"]["x"].append(2)
    assert config.plugins == {"a.b": {"x": [1]}}


def test_coerce_config_accepts_path_mapping_config_and_none(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'root = "/r"\n')
    assert cfg.coerce_config(path).root == "/r"
    assert cfg.coerce_config(str(path)).root == "/r"
    assert cfg.coerce_config({"root": "/m"}).root == "/m"
    config = Config(root="/c")
    assert cfg.coerce_config(config) is config
    assert cfg.coerce_config(None) == Config()


# -- imports -----------------------------------------------------------------------------------


def test_imports_merge_in_order_later_files_win(tmp_path: Path) -> None:
    main = write(
        tmp_path / "config.toml",
        """
        version = 3
        root = "/main/root"
        state = "/main/state"
        imports = ["conf.d/*.toml", "extra.toml"]
        disabled_plugins = ["a.one"]
        [plugins."io.containerd.runtime.v2.task"]
        sched_core = true
        concurrency = 1
        [plugins."io.containerd.runtime.v2.task".runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        """,
    )
    write(
        tmp_path / "conf.d" / "10-a.toml",
        """
        state = "/a/state"
        disabled_plugins = ["a.two", "a.one"]
        [plugins."io.containerd.runtime.v2.task"]
        concurrency = 2
        [plugins."io.containerd.runtime.v2.task".runtimes.runc.options]
        binary_name = "/usr/bin/runc"
        """,
    )
    write(
        tmp_path / "conf.d" / "20-b.toml",
        """
        [plugins."io.containerd.runtime.v2.task"]
        concurrency = 3
        platforms = ["linux/arm64"]
        """,
    )
    write(tmp_path / "extra.toml", 'root = "/extra/root"\n')
    write(tmp_path / "conf.d" / "ignored.txt", "not toml [")

    config = cfg.load_config(main)
    assert config.files == (
        str(main),
        str(tmp_path / "conf.d" / "10-a.toml"),
        str(tmp_path / "conf.d" / "20-b.toml"),
        str(tmp_path / "extra.toml"),
    )
    assert (config.root, config.state) == ("/extra/root", "/a/state")
    assert config.disabled_plugins == ("a.one", "a.two")
    assert config.plugins == {
        "io.containerd.runtime.v2.task": {
            "sched_core": True,
            "concurrency": 3,
            "platforms": ["linux/arm64"],
            "runtimes": {
                "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    "options": {"binary_name": "/usr/bin/runc"},
                }
            },
        }
    }
    assert config.imports == ("conf.d/*.toml", "extra.toml")
    # Each key remembers the file that set it last.
    task = ["plugins", "io.containerd.runtime.v2.task"]
    assert config.file_for([*task, "concurrency"]) == str(tmp_path / "conf.d" / "20-b.toml")
    assert config.file_for([*task, "sched_core"]) == str(main)
    assert config.file_for('plugins."io.containerd.runtime.v2.task".runtimes.runc.options') == str(
        tmp_path / "conf.d" / "10-a.toml"
    )
    assert config.file_for([*task, "not", "there"]) == str(tmp_path / "conf.d" / "20-b.toml")
    assert config.file_for("nothing") == str(main)


def test_imports_are_relative_to_the_importing_file(tmp_path: Path) -> None:
    main = write(tmp_path / "etc" / "config.toml", 'imports = ["sub/a.toml"]\n')
    write(tmp_path / "etc" / "sub" / "a.toml", 'imports = ["b.toml"]\n')
    write(tmp_path / "etc" / "sub" / "b.toml", 'root = "/from/b"\n')
    config = cfg.load_config(main)
    assert config.root == "/from/b"
    assert config.files[-1] == str(tmp_path / "etc" / "sub" / "b.toml")


def test_absolute_imports_are_used_as_is(tmp_path: Path) -> None:
    other = write(tmp_path / "elsewhere" / "x.toml", 'state = "/abs/state"\n')
    main = write(tmp_path / "etc" / "config.toml", f'imports = ["{other}"]\n')
    assert cfg.load_config(main).state == "/abs/state"


def test_import_cycles_load_each_file_once(tmp_path: Path) -> None:
    a = write(tmp_path / "a.toml", 'imports = ["b.toml"]\ndisabled_plugins = ["x.a"]\n')
    write(tmp_path / "b.toml", 'imports = ["a.toml", "./b.toml"]\ndisabled_plugins = ["x.b"]\n')
    config = cfg.load_config(a)
    assert config.files == (str(a), str(tmp_path / "b.toml"))
    assert config.disabled_plugins == ("x.a", "x.b")


def test_glob_matching_nothing_is_not_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'imports = ["conf.d/*.toml"]\n')
    assert cfg.load_config(main).files == (str(main),)


def test_missing_import_names_the_importer(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'imports = ["missing.toml"]\n')
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    assert issues_of(info) == [
        f"{tmp_path / 'missing.toml'}: cannot read config file: No such file or directory "
        f"(imported by {main})"
    ]


def test_mapping_imports_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "drop.toml", 'root = "/dropped"\n')
    monkeypatch.chdir(tmp_path)
    config = Config.from_mapping({"imports": ["drop.toml"]})
    assert config.root == "/dropped"
    assert config.files == ("<dict>", os.path.join(str(tmp_path), "drop.toml"))


@pytest.mark.parametrize(
    ("root_version", "drop_version"),
    [
        # containerd's TestLoadConfigWithImportsWithHigerVersion (an error, not a migration).
        ("version = 2\n", 3),
        # containerd's TestLoadConfigWithImportsRejectsHigherVersionThanHeaderlessRoot.
        ("", 2),
    ],
)
def test_drop_in_version_may_not_exceed_the_root_version(
    tmp_path: Path, root_version: str, drop_version: int
) -> None:
    main = write(tmp_path / "config.toml", root_version + 'imports = ["d.toml"]\n')
    drop = write(tmp_path / "d.toml", f"version = {drop_version}\n")
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    assert issues_of(info) == [
        f"{drop}: version: drop-in config version {drop_version} is higher than the root config "
        f"version {drop_version - 1} ({main})"
    ]


def test_drop_in_without_version_is_version_1(tmp_path: Path) -> None:
    # containerd 2: every file is migrated from its own version; none given means 1.x.
    main = write(tmp_path / "config.toml", 'version = 2\nimports = ["d.toml"]\n')
    write(tmp_path / "d.toml", '[plugins."a.b"]\nx = 1\n')
    config = cfg.load_config(main)
    assert [(layer.version, layer.plugins) for layer in config.layers] == [
        (2, {}),
        (1, {"a.b": {"x": 1}}),
    ]


def test_errors_of_every_file_are_reported_together(tmp_path: Path) -> None:
    main = write(
        tmp_path / "config.toml",
        'imports = ["a.toml", "b.toml", "gone.toml"]\nrooot = "/x"\n',
    )
    a = write(tmp_path / "a.toml", "version = 7\nrequired_plugins = [3]\n")
    b = write(tmp_path / "b.toml", "this is not toml\n")
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    files = [issue.file for issue in info.value.issues]
    assert files == [str(main), str(a), str(a), str(b), str(tmp_path / "gone.toml")]
    assert len(issues_of(info)) == 5


# -- decoding plugin configs -------------------------------------------------------------------


def test_absent_tables_decode_to_defaults_and_configless_plugins_to_none() -> None:
    decoded = cfg.decode_plugin_configs(Config(), REGS)
    assert decoded == {TASK.uri: TaskConfig(), SHIM.uri: ShimConfig(), EVENTS.uri: None}
    assert list(decoded) == [TASK.uri, SHIM.uri, EVENTS.uri]


def test_tables_decode_into_nested_attrs_classes() -> None:
    data = {
        "plugins": {
            TASK.uri: {
                "platforms": ["linux/amd64", "linux/arm64"],
                "concurrency": 8,
                "timeout": 3,
                "mode": "fast",
                "max_shims": 10,
                "runtimes": {"runc": {"options": {"binary_name": "/bin/runc"}}},
                "default": {"runtime_type": "io.containerd.kata.v2"},
            },
            SHIM.uri: {"env": ["A=1"], "labels": {"k": "v"}, "log_level": "debug"},
        }
    }
    decoded = cfg.decode_plugin_configs(Config.from_mapping(data), REGS)
    assert decoded[TASK.uri] == TaskConfig(
        platforms=("linux/amd64", "linux/arm64"),
        concurrency=8,
        timeout=3.0,
        mode="fast",
        max_shims=10,
        runtimes={"runc": Runtime(options=RuncOptions(binary_name="/bin/runc"))},
        default=Runtime(runtime_type="io.containerd.kata.v2"),
    )
    assert decoded[SHIM.uri] == ShimConfig(env=["A=1"], labels={"k": "v"}, log_level="debug")


def test_unknown_key_suggests_the_field() -> None:
    assert decode_errors({"plugins": {TASK.uri: {"platfroms": []}}}) == [
        'config.toml: plugins."io.containerd.runtime.v2.task".platfroms: '
        'unknown key (did you mean "platforms"?)'
    ]


def test_go_style_key_suggests_the_snake_case_field() -> None:
    data = {"plugins": {TASK.uri: {"runtimes": {"runc": {"options": {"BinaryName": "x"}}}}}}
    assert decode_errors(data) == [
        'config.toml: plugins."io.containerd.runtime.v2.task".runtimes.runc.options.BinaryName: '
        'unknown key (did you mean "binary_name"?)'
    ]


@pytest.mark.parametrize(
    ("table", "path", "message"),
    [
        ({"env": "A=1"}, "env", 'expected a list of strings, got str "A=1"'),
        ({"env": ["A=1", 2]}, "env[1]", "expected a string, got int 2"),
        ({"env": {"A": "1"}}, "env", "expected a list of strings, got a table"),
        ({"labels": ["k=v"]}, "labels", "expected a table of strings, got an array"),
        ({"labels": {"k": True}}, "labels.k", "expected a string, got bool true"),
        ({"log_level": 1}, "log_level", "expected a string, got int 1"),
        ({"log_level": ["info"]}, "log_level", "expected a string, got an array"),
    ],
)
def test_wrong_types_in_shim_config(table: dict[str, Any], path: str, message: str) -> None:
    assert decode_errors({"plugins": {SHIM.uri: table}}) == [
        f'config.toml: plugins."io.containerd.shim.v1.manager".{path}: {message}'
    ]


@pytest.mark.parametrize(
    ("table", "path", "message"),
    [
        ({"concurrency": "7"}, "concurrency", 'expected an integer, got str "7"'),
        ({"concurrency": True}, "concurrency", "expected an integer, got bool true"),
        ({"concurrency": 7.5}, "concurrency", "expected an integer, got float 7.5"),
        ({"sched_core": 1}, "sched_core", "expected a boolean, got int 1"),
        ({"sched_core": "true"}, "sched_core", 'expected a boolean, got str "true"'),
        ({"timeout": "2s"}, "timeout", 'expected a number, got str "2s"'),
        ({"timeout": False}, "timeout", "expected a number, got bool false"),
        ({"mode": "slow"}, "mode", 'expected one of "fast", "safe", got str "slow"'),
        ({"max_shims": "10"}, "max_shims", 'expected an integer, got str "10"'),
        ({"platforms": "linux"}, "platforms", 'expected a list of strings, got str "linux"'),
        ({"runtimes": {"runc": "x"}}, "runtimes.runc", 'expected a table, got str "x"'),
        ({"runtimes": {"runc": {"options": []}}}, "runtimes.runc.options",
         "expected a table, got an array"),
        ({"default": {"runtime_type": 2}}, "default.runtime_type", "expected a string, got int 2"),
    ],
)  # fmt: skip
def test_wrong_types_in_task_config(table: dict[str, Any], path: str, message: str) -> None:
    assert decode_errors({"plugins": {TASK.uri: table}}) == [
        f'config.toml: plugins."io.containerd.runtime.v2.task".{path}: {message}'
    ]


def test_attrs_validators_become_issues_at_their_path() -> None:
    data = {"plugins": {TASK.uri: {"concurrency": -1}, SHIM.uri: {"log_level": "trace"}}}
    errors = decode_errors(data)
    assert errors[0] == (
        'config.toml: plugins."io.containerd.runtime.v2.task".concurrency: must be >= 0, got -1'
    )
    assert errors[1].startswith(
        "config.toml: plugins.\"io.containerd.shim.v1.manager\".log_level: 'log_level' must be in"
    )
    assert len(errors) == 2


def test_post_init_errors_become_issues_at_the_table() -> None:
    assert decode_errors({"plugins": {SHIM.uri: {"env": ["FORBIDDEN=1"]}}}) == [
        'config.toml: plugins."io.containerd.shim.v1.manager": env FORBIDDEN=1 is not allowed'
    ]


def test_table_for_an_unregistered_plugin_suggests_the_registered_one() -> None:
    assert decode_errors({"plugins": {"io.containerd.runtime.v2.tsak": {}}}) == [
        'config.toml: plugins."io.containerd.runtime.v2.tsak": no plugin '
        '"io.containerd.runtime.v2.tsak" is registered '
        '(did you mean "io.containerd.runtime.v2.task"?)'
    ]


def test_short_plugin_id_suggests_the_full_uri() -> None:
    assert decode_errors({"disabled_plugins": ["exchange"]}) == [
        'config.toml: disabled_plugins: no plugin "exchange" is registered '
        '(did you mean "io.containerd.event.v1.exchange"?)'
    ]


def test_unknown_required_plugin_is_an_error() -> None:
    assert decode_errors({"required_plugins": ["io.containerd.runtime.v2.task", "x.nothing"]}) == [
        'config.toml: required_plugins: no plugin "x.nothing" is registered'
    ]


def test_a_plugin_both_required_and_disabled_is_an_error() -> None:
    uri = EVENTS.uri
    assert decode_errors({"required_plugins": [uri], "disabled_plugins": [uri]}) == [
        f'config.toml: required_plugins: plugin "{uri}" is both required and disabled'
    ]


def test_table_for_a_plugin_without_config_is_an_error() -> None:
    assert decode_errors({"plugins": {EVENTS.uri: {"x": 1}}}) == [
        'config.toml: plugins."io.containerd.event.v1.exchange": '
        'plugin "io.containerd.event.v1.exchange" takes no configuration'
    ]
    empty = Config.from_mapping({"plugins": {EVENTS.uri: {}}})
    assert cfg.decode_plugin_configs(empty, REGS)[EVENTS.uri] is None


def test_all_decode_errors_are_reported_together() -> None:
    data = {
        "disabled_plugins": ["io.containerd.shim.v1.manger"],
        "plugins": {
            "io.containerd.runtime.v2.tsak": {},
            TASK.uri: {"platfroms": [], "concurrency": "7"},
            SHIM.uri: {"env": "A=1"},
        },
    }
    errors = decode_errors(data)
    assert errors == [
        'config.toml: plugins."io.containerd.runtime.v2.tsak": no plugin '
        '"io.containerd.runtime.v2.tsak" is registered '
        '(did you mean "io.containerd.runtime.v2.task"?)',
        'config.toml: disabled_plugins: no plugin "io.containerd.shim.v1.manger" is registered '
        '(did you mean "io.containerd.shim.v1.manager"?)',
        'config.toml: plugins."io.containerd.runtime.v2.task".concurrency: '
        'expected an integer, got str "7"',
        'config.toml: plugins."io.containerd.runtime.v2.task".platfroms: '
        'unknown key (did you mean "platforms"?)',
        'config.toml: plugins."io.containerd.shim.v1.manager".env: '
        'expected a list of strings, got str "A=1"',
    ]


def test_decode_errors_name_the_file_that_set_the_key(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'imports = ["conf.d/*.toml"]\n')
    drop = write(
        tmp_path / "conf.d" / "shim.toml",
        """
        disabled_plugins = ["nope.nope"]
        [plugins."io.containerd.shim.v1.manager"]
        env = "A=1"
        """,
    )
    with pytest.raises(ConfigError) as info:
        cfg.decode_plugin_configs(cfg.load_config(main), REGS)
    assert [issue.file for issue in info.value.issues] == [str(drop), str(drop)]


def test_config_error_lists_one_line_per_issue() -> None:
    error = ConfigError([ConfigIssue("a.toml", "root", "bad"), ConfigIssue("b.toml", "", "worse")])
    assert str(error) == "a.toml: root: bad\nb.toml: worse"
    assert error.issues[1].path == ""
    assert not isinstance(error, ValueError)


# -- migration ---------------------------------------------------------------------------------


def rename_task_timeout(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
    """v2 -> v3: the task plugin's `shim_timeout` became `timeout`."""
    out = dict(plugins)
    table = dict(out.get(TASK.uri, {}))
    if version == 2 and "shim_timeout" in table:
        table["timeout"] = table.pop("shim_timeout")
        out[TASK.uri] = table
    return out


def move_old_uri(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
    """v2 -> v3: the shim manager's table moved from its old uri."""
    out = dict(plugins)
    if version == 2 and "io.containerd.shim.v1.old" in out:
        out[SHIM.uri] = out.pop("io.containerd.shim.v1.old")
    return out


MIGRATING = (
    Reg(TASK.type, TASK.id, TaskConfig, rename_task_timeout),
    Reg(SHIM.type, SHIM.id, ShimConfig, move_old_uri),
)


def test_rename_task_timeout_is_pure() -> None:
    plugins = {TASK.uri: {"shim_timeout": 3.0}}
    assert rename_task_timeout(plugins, 2) == {TASK.uri: {"timeout": 3.0}}
    assert plugins == {TASK.uri: {"shim_timeout": 3.0}}
    assert rename_task_timeout(plugins, 3) == plugins


def test_migrate_v2_to_v3_runs_every_migration() -> None:
    config = Config.from_mapping(
        {
            "version": 2,
            "plugins": {
                TASK.uri: {"shim_timeout": 9.0},
                "io.containerd.shim.v1.old": {"env": ["A=1"]},
            },
        }
    )
    migrated = cfg.migrate(config, MIGRATING)
    assert migrated.version == 3
    assert migrated.plugins == {TASK.uri: {"timeout": 9.0}, SHIM.uri: {"env": ["A=1"]}}
    # pure: the input is untouched
    assert config.version == 2
    assert config.plugins[TASK.uri] == {"shim_timeout": 9.0}


def test_migrations_run_in_registration_order_with_the_from_version() -> None:
    calls: list[tuple[str, int, dict[str, Any]]] = []

    def recorder(name: str) -> Callable[[Mapping[str, Any], int], dict[str, Any]]:
        def migration(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
            calls.append((name, version, dict(plugins)))
            return {**plugins, name: {}}

        return migration

    regs = [
        Reg("t", "first", None, recorder("t.first")),
        Reg("t", "second", None, recorder("t.second")),
    ]
    cfg.migrate(Config.from_mapping({"version": 2}), regs)
    assert calls == [("t.first", 2, {}), ("t.second", 2, {"t.first": {}})]


def test_migration_cannot_change_the_config_it_was_given() -> None:
    def vandal(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
        plugins[TASK.uri]["concurrency"] = 99
        return dict(plugins)

    config = Config.from_mapping({"version": 2, "plugins": {TASK.uri: {"concurrency": 1}}})
    migrated = cfg.migrate(config, [Reg(TASK.type, TASK.id, TaskConfig, vandal)])
    assert config.plugins[TASK.uri] == {"concurrency": 1}
    assert migrated.plugins[TASK.uri] == {"concurrency": 99}


def test_version_3_config_is_not_migrated() -> None:
    config = Config.from_mapping({"version": 3, "plugins": {TASK.uri: {"shim_timeout": 1.0}}})
    assert cfg.migrate(config, MIGRATING) is config


def test_only_version_2_files_are_migrated(tmp_path: Path) -> None:
    main = write(
        tmp_path / "config.toml",
        f'version = 3\nimports = ["old.toml"]\n[plugins."{TASK.uri}"]\nshim_timeout = 1.0\n',
    )
    write(tmp_path / "old.toml", f'version = 2\n[plugins."{TASK.uri}"]\nshim_timeout = 5.0\n')
    migrated = cfg.migrate(cfg.load_config(main), MIGRATING)
    # The v3 root keeps its (now unknown) key; the v2 drop-in's key was renamed.
    assert migrated.plugins == {TASK.uri: {"shim_timeout": 1.0, "timeout": 5.0}}


def test_failing_migration_is_an_error_naming_the_plugin() -> None:
    def broken(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
        raise RuntimeError("boom")

    def wrong(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
        return ["not", "a", "table"]  # type: ignore[return-value]

    regs = [Reg("a", "broken", None, broken), Reg("a", "wrong", None, wrong)]
    with pytest.raises(ConfigError) as info:
        cfg.migrate(Config.from_mapping({"version": 2}, file="config.toml"), regs)
    assert issues_of(info) == [
        'config.toml: plugins: config migration of plugin "a.broken" from version 2 failed: boom',
        'config.toml: plugins: config migration of plugin "a.wrong" from version 2 returned '
        "an array, not a table",
    ]


def test_decode_migrates_old_configs_first() -> None:
    config = Config.from_mapping({"version": 2, "plugins": {TASK.uri: {"shim_timeout": 9.0}}})
    decoded = cfg.decode_plugin_configs(config, MIGRATING)
    assert decoded[TASK.uri] == TaskConfig(timeout=9.0)


# -- defaults, dump and TOML -------------------------------------------------------------------


def test_default_config_round_trips_through_load_and_decode(tmp_path: Path) -> None:
    defaults = cfg.default_config(REGS, root="/tp/root", state="/tp/state")
    assert defaults["version"] == 3
    assert set(defaults["plugins"]) == {TASK.uri, SHIM.uri}
    assert "max_shims" not in defaults["plugins"][TASK.uri]  # None is omitted
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml(defaults))
    config = cfg.load_config(path)
    assert (config.root, config.state) == ("/tp/root", "/tp/state")
    decoded = cfg.decode_plugin_configs(config, REGS)
    assert decoded == {TASK.uri: TaskConfig(), SHIM.uri: ShimConfig(), EVENTS.uri: None}


def test_default_config_uses_the_default_paths() -> None:
    text = cfg.to_toml(cfg.default_config([]))
    assert text.startswith('version = 3\nroot = "/var/lib/taskplane"\nstate = "/run/taskplane"\n')


def test_effective_config_shows_imports_migrations_and_defaults(tmp_path: Path) -> None:
    main = write(
        tmp_path / "config.toml",
        'version = 2\nroot = "/r"\nimports = ["more.toml"]\n'
        f'[plugins."{TASK.uri}"]\nshim_timeout = 7.0\n',
    )
    write(tmp_path / "more.toml", f'[plugins."{TASK.uri}"]\nconcurrency = 2\n')
    config = cfg.migrate(cfg.load_config(main), MIGRATING)
    decoded = cfg.decode_plugin_configs(config, MIGRATING)
    effective = cfg.effective_config_dict(config, decoded)
    assert effective["version"] == 3
    assert effective["root"] == "/r"
    assert "imports" not in effective
    task = effective["plugins"][TASK.uri]
    assert (task["timeout"], task["concurrency"], task["mode"]) == (7.0, 2, "safe")
    assert effective["plugins"][SHIM.uri] == {"env": [], "labels": {}, "log_level": "info"}
    # the dump is itself a valid config that decodes to the same values
    dumped = write(tmp_path / "dump.toml", cfg.to_toml(effective))
    assert cfg.decode_plugin_configs(cfg.load_config(dumped), MIGRATING) == decoded


def test_to_toml_drops_none_and_writes_tuples_as_arrays() -> None:
    text = cfg.to_toml({"a": None, "b": (1, 2), "c": {"d": None, "e": "x"}})
    assert text == 'b = [\n    1,\n    2,\n]\n\n[c]\ne = "x"\n'


def test_root_and_state_must_differ_across_files(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'root = "/same"\nimports = ["d.toml"]\n')
    drop = write(tmp_path / "d.toml", 'state = "/same/"\n')
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    assert issues_of(info) == [f"{drop}: state: must differ from root (both are /same)"]


def test_unquoted_plugin_uri_says_to_quote_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml", "[plugins.io.containerd.runtime.v2.task]\nsched_core = true\n"
    )
    with pytest.raises(ConfigError) as info:
        cfg.decode_plugin_configs(cfg.load_config(path), REGS)
    assert issues_of(info) == [
        f'{path}: plugins.io: no plugin "io" is registered '
        '(quote the plugin URI: [plugins."io.containerd.runtime.v2.task"])'
    ]


# -- hostile configs (issue 9): every limit is one issue naming the file ----------------------


def test_symlinked_directories_do_not_make_imports_grow(tmp_path: Path) -> None:
    # Two links back to their own directory: by abspath every "d/l1/l2/l1/..." is a new file.
    d = tmp_path / "d"
    main = write(d / "config.toml", 'imports = ["l1/config.toml", "l2/config.toml"]\n')
    os.symlink(".", d / "l1")
    os.symlink(".", d / "l2")
    assert cfg.load_config(main).files == (str(main),)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO, not a regular file"),
        (lambda p: os.symlink("/dev/zero", p), "is a device, not a regular file"),
        (lambda p: p.mkdir(), "is a directory, not a regular file"),
        (
            lambda p: p.write_bytes(b"#" * (cfg.MAX_CONFIG_BYTES + 1)),
            f"is larger than {cfg.MAX_CONFIG_BYTES} bytes, the limit",
        ),
    ],
)
def test_only_regular_files_of_bounded_size_are_read(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    main = write(tmp_path / "config.toml", 'imports = ["bad.toml"]\n')
    bad = tmp_path / "bad.toml"
    make(bad)
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    assert issues_of(info) == [f"{bad}: {message} (imported by {main})"]
    with pytest.raises(ConfigError) as info:
        cfg.load_config(bad)
    assert issues_of(info) == [f"{bad}: {message}"]


def test_a_config_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    main = tmp_path / "config.toml"
    main.write_bytes(b"#" * cfg.MAX_CONFIG_BYTES)
    assert cfg.load_config(main).files == (str(main),)


def test_the_number_of_files_is_capped(tmp_path: Path) -> None:
    for i in range(cfg.MAX_CONFIG_FILES + 5):
        write(tmp_path / "conf.d" / f"{i:03}.toml", "")
    main = write(tmp_path / "config.toml", 'imports = ["conf.d/*.toml"]\n')
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    [line] = issues_of(info)
    assert f"too many config files: more than {cfg.MAX_CONFIG_FILES} (imported by {main})" in line


def test_the_depth_of_imports_is_capped(tmp_path: Path) -> None:
    depth = cfg.MAX_IMPORT_DEPTH + 1
    for i in range(depth + 1):
        write(tmp_path / f"{i}.toml", f'imports = ["{i + 1}.toml"]\n')
    with pytest.raises(ConfigError) as info:
        cfg.load_config(tmp_path / "0.toml")
    assert issues_of(info) == [
        f"{tmp_path}/{depth}.toml: imports nest more than {cfg.MAX_IMPORT_DEPTH} deep "
        f"(imported by {tmp_path}/{depth - 1}.toml)"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 5000 + "]" * 5000 + "\n",  # past the recursion limit of the parser
        "x = " + "[" * (cfg.MAX_NESTING + 1) + "]" * (cfg.MAX_NESTING + 1) + "\n",
        "x = " + "{a = " * (cfg.MAX_NESTING + 1) + "1" + "}" * (cfg.MAX_NESTING + 1) + "\n",
    ],
)
def test_deep_nesting_is_one_clear_error(tmp_path: Path, text: str) -> None:
    main = tmp_path / "config.toml"
    main.write_text(text)
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    assert issues_of(info) == [f"{main}: tables and arrays nest more than {cfg.MAX_NESTING} deep"]


def test_deep_nesting_in_a_mapping_is_one_clear_error() -> None:
    deep: dict[str, Any] = {}
    for _ in range(cfg.MAX_NESTING + 1):
        deep = {"plugins": deep}
    with pytest.raises(ConfigError, match=f"nest more than {cfg.MAX_NESTING} deep"):
        Config.from_mapping(deep, file="config.toml")


# -- issue 15: known-but-ignored settings, one pass, versions, imports, timeouts ----------------


def check(data: Mapping[str, Any], known: cfg.KnownSettings = KNOWN) -> cfg.CheckedConfig:
    return cfg.check_config(data, REGS, known)


def check_errors(data: Mapping[str, Any], known: cfg.KnownSettings = KNOWN) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(data, known)
    return [str(i).removeprefix("<dict>: ") for i in info.value.issues]


def test_every_phase_reports_its_problems_in_one_pass() -> None:
    # An unknown top-level key (loading), an unknown plugin table and an unknown disabled id
    # (decoding): all three at once, not the first phase's only.
    errors = check_errors(
        {
            "version": 3,
            "disabled_plugin": ["x"],
            "disabled_plugins": ["io.example.nothing.v1.x"],
            "plugins": {"io.example.nosuch.v1.other": {}},
        }
    )
    assert errors == [
        'disabled_plugin: unknown key (did you mean "disabled_plugins"?)',
        'plugins."io.example.nosuch.v1.other": no plugin "io.example.nosuch.v1.other" is '
        "registered",
        'disabled_plugins: no plugin "io.example.nothing.v1.x" is registered',
    ]


def test_a_file_with_invalid_toml_does_not_hide_the_other_files_problems(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'version = 3\nimports = ["bad.toml"]\n[plugins."x.y"]\n')
    bad = write(tmp_path / "bad.toml", "not toml\n")
    with pytest.raises(ConfigError) as info:
        cfg.check_config(main, REGS)
    assert [(i.file, i.path) for i in info.value.issues] == [
        (str(bad), ""),
        (str(main), 'plugins."x.y"'),
    ]


@pytest.mark.parametrize("uri", ["io.containerd.grpc.v1.cri", "io.containerd.nosuch.v1.other"])
def test_did_you_mean_is_not_offered_for_names_that_are_not_close(uri: str) -> None:
    # Both used to get "did you mean io.containerd.shim.v1.manager?" (ratios 0.70 and 0.76).
    assert decode_errors({"version": 3, "plugins": {uri: {}}}) == [
        f'config.toml: plugins."{uri}": no plugin "{uri}" is registered'
    ]


def test_did_you_mean_is_offered_for_a_close_name() -> None:
    assert check_errors({"version": 3, "plugins": {"io.containerd.shim.v1.manger": {}}}) == [
        'plugins."io.containerd.shim.v1.manger": no plugin "io.containerd.shim.v1.manger" is '
        'registered (did you mean "io.containerd.shim.v1.manager"?)'
    ]


def test_suggest_uses_the_similarity_cutoff() -> None:
    from registry import _config_text as cv

    assert cv.suggest("platfroms", ["platforms", "env"]) == "platforms"  # 0.89
    assert cv.suggest("plat", ["platforms", "env"]) is None  # 0.62
    assert cv.SIMILARITY_CUTOFF == 0.8


def test_a_known_plugin_table_is_a_warning_and_a_close_typo_of_it_an_error() -> None:
    checked = check({"version": 3, "plugins": {"io.containerd.grpc.v1.cri": {"x": 1}}})
    assert [str(w) for w in checked.warnings] == [
        '<dict>: plugins."io.containerd.grpc.v1.cri": warning: containerd\'s CRI: ignored'
    ]
    assert "io.containerd.grpc.v1.cri" not in checked.decoded
    assert check_errors({"version": 3, "plugins": {"io.containerd.grpc.v1.crii": {}}}) == [
        'plugins."io.containerd.grpc.v1.crii": no plugin "io.containerd.grpc.v1.crii" is '
        'registered (did you mean "io.containerd.grpc.v1.cri"?)'
    ]


def test_disabling_a_known_plugin_warns_and_requiring_it_is_an_error() -> None:
    checked = check({"version": 3, "disabled_plugins": ["io.containerd.grpc.v1.cri"]})
    assert [str(w) for w in checked.warnings] == [
        '<dict>: disabled_plugins[0]: warning: "io.containerd.grpc.v1.cri" is containerd\'s CRI: '
        "ignored"
    ]
    assert check_errors({"version": 3, "required_plugins": ["io.containerd.grpc.v1.cri"]}) == [
        'required_plugins: plugin "io.containerd.grpc.v1.cri" cannot load: containerd\'s CRI'
    ]


def test_a_known_key_of_a_registered_plugin_is_a_warning_and_not_decoded() -> None:
    checked = check({"version": 3, "plugins": {TASK.uri: {"shim_debug": True, "concurrency": 2}}})
    assert [str(w) for w in checked.warnings] == [
        f'<dict>: plugins."{TASK.uri}".shim_debug: warning: containerd\'s shim debug switch: '
        "ignored"
    ]
    assert checked.decoded[TASK.uri] == TaskConfig(concurrency=2)
    assert check_errors({"version": 3, "plugins": {TASK.uri: {"shim_debugg": True}}}) == [
        f'plugins."{TASK.uri}".shim_debugg: unknown key (valid keys: "concurrency", "default", '
        '"max_shims", "mode", "platforms", "runtimes", "sched_core", "timeout")'
    ]


def test_a_version_1_file_has_its_bare_plugin_ids_renamed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        'disabled_plugins = ["cri"]\n[plugins.task]\nconcurrency = 3\n',
    )
    checked = cfg.check_config(path, REGS, KNOWN)
    assert checked.config.disabled_plugins == ("io.containerd.grpc.v1.cri",)
    assert checked.decoded[TASK.uri] == TaskConfig(concurrency=3)
    assert [w.path for w in checked.warnings] == ["disabled_plugins[0]"]


def test_an_explicit_version_1_is_renamed_too_but_version_2_is_not() -> None:
    assert check({"version": 1, "plugins": {"task": {}}}).config.plugins == {TASK.uri: {}}
    assert check_errors({"version": 2, "plugins": {"task": {}}}) == [
        'plugins.task: no plugin "task" is registered (did you mean '
        '"io.containerd.runtime.v2.task"?)'
    ]


def test_each_import_is_migrated_from_its_own_version(tmp_path: Path) -> None:
    main = write(
        tmp_path / "config.toml",
        f'version = 3\nimports = ["old.toml", "v1.toml"]\n[plugins."{TASK.uri}"]\n'
        "shim_timeout = 1.0\n",
    )
    write(tmp_path / "old.toml", f'version = 2\n[plugins."{TASK.uri}"]\nshim_timeout = 5.0\n')
    write(tmp_path / "v1.toml", "[plugins.manager]\nenv = []\n")
    config = cfg.load_config(main, KNOWN)
    assert [layer.version for layer in config.layers] == [3, 2, 1]
    migrated = cfg.migrate(config, MIGRATING)
    assert migrated.plugins[TASK.uri] == {"shim_timeout": 1.0, "timeout": 5.0}


def test_an_import_is_a_glob_only_when_it_has_a_star(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'version = 3\nimports = ["a?.toml", "[b].toml"]\n')
    literal = write(tmp_path / "a?.toml", "")
    write(tmp_path / "ab.toml", 'root = "/not/me"\n')
    write(tmp_path / "b.toml", 'root = "/nor/me"\n')
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    # "a?.toml" is that file, not a pattern; "[b].toml" is a file that does not exist.
    assert [i.file for i in info.value.issues] == [str(tmp_path / "[b].toml")]
    write(main, 'version = 3\nimports = ["a?.toml"]\n')
    assert cfg.load_config(main).files == (str(main), str(literal))


def test_a_star_matches_dot_files_as_go_does(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'version = 3\nimports = ["conf.d/*.toml"]\n')
    hidden = write(tmp_path / "conf.d" / ".hidden.toml", 'root = "/from/hidden"\n')
    shown = write(tmp_path / "conf.d" / "z.toml", 'state = "/from/z"\n')
    config = cfg.load_config(main)
    assert config.files == (str(main), str(hidden), str(shown))
    assert (config.root, config.state) == ("/from/hidden", "/from/z")


def test_timeouts_used_are_parsed_known_ones_warn_and_unknown_ones_are_errors() -> None:
    checked = check(
        {
            "version": 3,
            "timeouts": {
                "io.containerd.timeout.shim.load": "1m30s",
                "io.containerd.timeout.bolt.open": "0s",
            },
        }
    )
    assert checked.config.timeouts == {"io.containerd.timeout.shim.load": 90.0}
    assert checked.config.timeout("io.containerd.timeout.shim.load", 5.0) == 90.0
    assert checked.config.timeout("io.containerd.timeout.shim.cleanup", 5.0) == 5.0
    assert [w.path for w in checked.warnings] == ['timeouts."io.containerd.timeout.bolt.open"']
    errors = check_errors(
        {
            "version": 3,
            "timeouts": {
                "io.containerd.timeout.shim.lod": "1s",
                "io.containerd.timeout.shim.load": "5 s",
                "io.example.nothing": "1s",
            },
        }
    )
    assert errors == [
        'timeouts."io.containerd.timeout.shim.lod": unknown timeout '
        '(did you mean "io.containerd.timeout.shim.load"?)',
        'timeouts."io.containerd.timeout.shim.load": invalid duration "5 s" (a number and a '
        "unit: ns, us, ms, s, m, h)",
        'timeouts."io.example.nothing": unknown timeout',
    ]


def test_timeouts_of_a_later_file_override_and_name_their_file(tmp_path: Path) -> None:
    main = write(
        tmp_path / "config.toml",
        'version = 3\nimports = ["d.toml"]\n[timeouts]\n"io.containerd.timeout.shim.load" = "2s"\n',
    )
    drop = write(
        tmp_path / "d.toml", 'version = 3\n[timeouts]\n"io.containerd.timeout.shim.load" = "3s"\n'
    )
    config = cfg.load_config(main, KNOWN)
    assert config.timeouts == {"io.containerd.timeout.shim.load": 3.0}
    assert config.file_for(["timeouts", "io.containerd.timeout.shim.load"]) == str(drop)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("5s", 5.0), ("100ms", 0.1), ("1m0s", 60.0), ("1h2m3.5s", 3723.5),
     ("1.5m", 90.0), ("250us", 0.00025), ("250µs", 0.00025), ("7ns", 7e-9), ("+2s", 2.0)],
)  # fmt: skip
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert cfg.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "-1s", "s", "5 s", "5x", ".s", "1h-2m", "5sec"])
def test_parse_duration_rejects_what_go_rejects_and_negatives(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        cfg.parse_duration(text)


def test_parse_duration_names_a_value_that_is_no_string() -> None:
    with pytest.raises(ValueError, match='expected a duration string such as "5s", got int 5'):
        cfg.parse_duration(5)


def test_a_failing_migration_does_not_hide_the_decode_errors() -> None:
    def broken(plugins: Mapping[str, Any], version: int) -> dict[str, Any]:
        raise RuntimeError("boom")

    regs = (Reg(TASK.type, TASK.id, TaskConfig, broken),)
    with pytest.raises(ConfigError) as info:
        cfg.check_config({"version": 2, "plugins": {TASK.uri: {"platfroms": []}}}, regs)
    assert [str(i) for i in info.value.issues] == [
        '<dict>: plugins: config migration of plugin "io.containerd.runtime.v2.task" from '
        "version 2 failed: boom",
        '<dict>: plugins."io.containerd.runtime.v2.task".platfroms: unknown key (did you mean '
        '"platforms"?)',
    ]


def test_a_root_with_a_bad_version_is_one_error_not_one_per_drop_in(tmp_path: Path) -> None:
    main = write(tmp_path / "config.toml", 'version = "3"\nimports = ["d.toml"]\n')
    write(tmp_path / "d.toml", "version = 3\n")
    with pytest.raises(ConfigError) as info:
        cfg.load_config(main)
    assert issues_of(info) == [f'{main}: version: expected an integer, got str "3"']
