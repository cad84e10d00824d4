"""``taskplane plugins ls`` and ``taskplane config ...``, driven as a user does."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from .conftest import REPO, Taskplane, lines, single_error_line

TASK_URI = "io.containerd.runtime.v2.task"
SHIM_MANAGER_URI = "io.containerd.shim.v1.manager"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- plugins ls -------------------------------------------------------------------------------


def test_plugins_ls_prints_ctr_columns_with_status_words(taskplane: Taskplane) -> None:
    result = taskplane("plugins", "ls")
    assert result.returncode == 0, result.stderr
    rows = lines(result.stdout)
    assert rows[0].split() == ["TYPE", "ID", "PLATFORMS", "STATUS"]
    task_row = next(r for r in rows if r.split()[:2] == ["io.containerd.runtime.v2", "task"])
    assert task_row.split()[-1] == "ok"
    assert "linux/" in task_row


def test_plugins_ls_json_gives_every_plugin_one_status(taskplane: Taskplane) -> None:
    result = taskplane("plugins", "ls", "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    uris = [r["uri"] for r in records]
    assert TASK_URI in uris and SHIM_MANAGER_URI in uris
    assert len(uris) == len(set(uris))
    for record in records:
        assert record["status"] in {"ok", "skip", "error", "disabled", "blocked"}
        assert isinstance(record["init_time"], float)
        assert isinstance(record["capabilities"], list)


def test_plugins_ls_detailed_adds_init_time_and_reason(taskplane: Taskplane) -> None:
    result = taskplane("plugins", "ls", "--detailed")
    assert result.returncode == 0, result.stderr
    header = lines(result.stdout)[0]
    assert "INIT TIME" in header and "REASON/ERROR" in header
    assert "ms" in lines(result.stdout)[1]


def test_disabled_plugin_is_listed_and_names_what_it_blocks(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    config = write(tmp_path / "c.toml", f'version = 3\ndisabled_plugins = ["{SHIM_MANAGER_URI}"]\n')
    result = taskplane("--config", str(config), "plugins", "ls", "--json")
    assert result.returncode == 0, result.stderr
    by_uri = {r["uri"]: r for r in json.loads(result.stdout)}
    assert by_uri[SHIM_MANAGER_URI]["status"] == "disabled"
    assert by_uri[TASK_URI]["status"] == "blocked"
    assert "io.containerd.shim.v1" in by_uri[TASK_URI]["reason"]


def test_plugins_ls_with_a_broken_config_is_one_clear_line(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    config = write(tmp_path / "c.toml", "version = 3\nroot = 7\n")
    line = single_error_line(taskplane("--config", str(config), "plugins", "ls"))
    assert "c.toml" in line and "root" in line


# -- config -----------------------------------------------------------------------------------


def test_config_default_is_accepted_by_config_validate(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    result = taskplane("config", "default")
    assert result.returncode == 0, result.stderr
    data = tomllib.loads(result.stdout)
    assert data["version"] == 3
    assert TASK_URI in data["plugins"]
    path = write(tmp_path / "default.toml", result.stdout)
    validated = taskplane("config", "validate", str(path))
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.strip() == f"{path}: ok"


def test_config_validate_prints_every_error_and_exits_1(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "bad.toml",
        f"""
version = 3
disabled_plugins = ["io.containerd.shim.v1.manger"]

[plugins."{TASK_URI}"]
platfroms = ["linux/amd64"]

[plugins."io.example.nobody.v1.here"]
x = 1
""",
    )
    result = taskplane("config", "validate", str(path))
    assert result.returncode == 1
    errors = lines(result.stderr)
    assert len(errors) == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert any("platfroms" in e and 'did you mean "platforms"' in e for e in errors)
    assert any("io.example.nobody.v1.here" in e for e in errors)
    assert any("io.containerd.shim.v1.manger" in e and SHIM_MANAGER_URI in e for e in errors)
    assert all(e.startswith(f"taskplane: {path}") for e in errors)


def test_config_validate_of_a_missing_file_names_it(taskplane: Taskplane, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = single_error_line(taskplane("config", "validate", str(missing)))
    assert str(missing) in line


def test_config_validate_rejects_an_unsupported_version(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    path = write(tmp_path / "v9.toml", "version = 9\n")
    line = single_error_line(taskplane("config", "validate", str(path)))
    assert "version" in line and "2, 3" in line


def test_config_dump_shows_imports_merged_and_defaults_filled(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    write(tmp_path / "dropin.toml", f'[plugins."{TASK_URI}"]\nplatforms = ["linux/arm64"]\n')
    main = write(tmp_path / "main.toml", 'version = 3\nimports = ["dropin.toml"]\n')
    result = taskplane("--config", str(main), "config", "dump")
    assert result.returncode == 0, result.stderr
    data = tomllib.loads(result.stdout)
    assert data["plugins"][TASK_URI]["platforms"] == ["linux/arm64"]
    assert SHIM_MANAGER_URI in data["plugins"]  # defaults filled in
    assert data["root"] == str(taskplane.root)  # --root applies
    assert "imports" not in data


def test_config_dump_migrates_a_version_2_file(taskplane: Taskplane, tmp_path: Path) -> None:
    path = write(tmp_path / "v2.toml", "version = 2\n")
    result = taskplane("--config", str(path), "config", "dump")
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(result.stdout)["version"] == 3


def test_examples_config_toml_is_valid(taskplane: Taskplane) -> None:
    result = taskplane("config", "validate", str(REPO / "examples" / "config.toml"))
    assert result.returncode == 0, result.stderr


# -- the command itself -----------------------------------------------------------------------


def test_help_lists_every_command(taskplane: Taskplane) -> None:
    result = taskplane("--help")
    assert result.returncode == 0
    for command in ("plugins", "config", "run", "tasks", "runtime", "demo"):
        assert command in result.stdout


def test_an_unknown_command_is_a_usage_error(taskplane: Taskplane) -> None:
    result = taskplane("frobnicate")
    assert result.returncode == 2
    assert "frobnicate" in result.stderr
    assert "Traceback" not in result.stderr


def test_global_options_work_after_the_command_too(taskplane: Taskplane, tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", f'version = 3\ndisabled_plugins = ["{TASK_URI}"]\n')
    result = taskplane("plugins", "ls", "--json", "--config", str(path))
    assert result.returncode == 0, result.stderr
    by_uri = {r["uri"]: r for r in json.loads(result.stdout)}
    assert by_uri[TASK_URI]["status"] == "disabled"


def test_debug_adds_the_traceback_to_an_error(taskplane: Taskplane, tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "version = [\n")
    plain = taskplane("--config", str(path), "plugins", "ls")
    debug = taskplane("--debug", "--config", str(path), "plugins", "ls")
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr
    assert lines(debug.stderr)[-1] == lines(plain.stderr)[-1]
    assert plain.returncode == debug.returncode == 1


EXAMPLE_URI = "io.containerd.runtime.v2.example"


def with_path(taskplane: Taskplane, extra: str) -> dict[str, str]:
    return {"PYTHONPATH": f"{taskplane.env['PYTHONPATH']}:{extra}"}


def plant_distribution(site: Path, name: str, entry_point: str, source: str | None = None) -> Path:
    """A distribution ``name`` (0.1) in directory ``site`` whose ``taskplane.plugins`` entry
    point is ``entry_point`` (``id = module``), with ``source`` as that module when given;
    returns ``site`` (for PYTHONPATH)."""
    dist = site / f"{name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir(parents=True)
    write(dist / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    write(dist / "entry_points.txt", f"[taskplane.plugins]\n{entry_point}\n")
    if source is not None:
        write(site / f"{entry_point.partition('=')[2].strip()}.py", source)
    return site


def test_third_party_runtime_appears_in_plugins_ls(
    taskplane: Taskplane, third_party_path: str
) -> None:
    result = taskplane("plugins", "ls", "--json", env=with_path(taskplane, third_party_path))
    assert result.returncode == 0, result.stderr
    by_uri = {r["uri"]: r for r in json.loads(result.stdout)}
    assert by_uri[EXAMPLE_URI]["status"] == "ok"
    assert by_uri[EXAMPLE_URI]["exports"] == {"greeting": "hello from taskplane-example-runtime"}
    assert by_uri[TASK_URI]["status"] == "ok"  # the built-in task manager is still there
    table = taskplane("plugins", "ls", env=with_path(taskplane, third_party_path))
    assert any(
        r.split()[:2] == ["io.containerd.runtime.v2", "example"] for r in lines(table.stdout)
    )


def test_third_party_config_is_in_config_default_and_validated(
    taskplane: Taskplane, third_party_path: str, tmp_path: Path
) -> None:
    env = with_path(taskplane, third_party_path)
    default = taskplane("config", "default", env=env)
    assert tomllib.loads(default.stdout)["plugins"][EXAMPLE_URI] == {
        "greeting": "hello from taskplane-example-runtime"
    }
    path = write(tmp_path / "c.toml", f'version = 3\n[plugins."{EXAMPLE_URI}"]\ngreetin = "typo"\n')
    result = taskplane("config", "validate", str(path), env=env)
    assert result.returncode == 1
    assert 'greetin: unknown key (did you mean "greeting"?)' in result.stderr
    # Without the package installed, the table names a plugin nobody registered.
    assert "is registered" in taskplane("config", "validate", str(path)).stderr


def test_autoload_off_hides_third_party_plugins(
    taskplane: Taskplane, third_party_path: str
) -> None:
    env = {**with_path(taskplane, third_party_path), "TASKPLANE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    uris = [r["uri"] for r in json.loads(taskplane("plugins", "ls", "--json", env=env).stdout)]
    assert EXAMPLE_URI not in uris and TASK_URI in uris


def test_a_broken_third_party_package_is_reported_and_boot_goes_on(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    site = plant_distribution(tmp_path / "site", "broken-pkg", "broken = no_such_module_xyz")
    result = taskplane("plugins", "ls", "--json", env=with_path(taskplane, str(site)))
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    broken = [r for r in records if r["id"] == "broken-pkg:broken"]
    assert broken and broken[0]["status"] == "error"
    assert "no_such_module_xyz" in broken[0]["reason"]
    assert {r["uri"]: r["status"] for r in records}[TASK_URI] == "ok"


def test_third_party_runtime_is_reachable_through_the_python_api(
    taskplane: Taskplane, third_party_path: str
) -> None:
    import subprocess
    import sys

    code = (
        "import sys, taskplane\n"
        "with taskplane.boot(root=sys.argv[1], state=sys.argv[2]) as host:\n"
        "    runtime = host.get('io.containerd.runtime.v2', 'example')\n"
        "    print(runtime.greeting)\n"
        "assert runtime.closed\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(taskplane.root), str(taskplane.state)],
        env={**taskplane.env, **with_path(taskplane, third_party_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from taskplane-example-runtime\n"


FAILING_PLUGIN = """
from registry import Registration, hookimpl


def init(ic):
    raise RuntimeError("the flux capacitor is missing")


@hookimpl
def taskplane_registrations():
    return [Registration("io.example.flaky.v1", "flux", init=init)]
"""


def test_a_failing_plugin_is_a_row_not_an_error_and_log_level_shows_its_log(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    site = plant_distribution(
        tmp_path / "site", "flaky-plugin", "flaky = flaky_plugin", FAILING_PLUGIN
    )
    env = with_path(taskplane, str(site))
    quiet = taskplane("plugins", "ls", "--json", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    by_uri = {r["uri"]: r for r in json.loads(quiet.stdout)}
    assert by_uri["io.example.flaky.v1.flux"]["status"] == "error"
    assert "flux capacitor" in by_uri["io.example.flaky.v1.flux"]["reason"]
    assert by_uri[TASK_URI]["status"] == "ok"
    loud = taskplane("--log-level", "warning", "plugins", "ls", env=env)
    assert loud.returncode == 0
    assert "WARNING" in loud.stderr and "io.example.flaky.v1.flux" in loud.stderr


#: A third-party plugin that logs through its own logger as it is imported.
CHATTY_PLUGIN = """
import logging

from registry import hookimpl

logging.getLogger("acme").warning("below the default level")
logging.getLogger("acme").error("no licence file found")


@hookimpl
def taskplane_registrations():
    return []
"""


def test_a_plugin_logging_as_it_is_imported_logs_one_line_before_logging_is_set_up(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    # config validate imports no logging of its own: the log is set up before the plugin's
    # import (registry.log.first_use), so its records read as every other record does.
    site = plant_distribution(
        tmp_path / "site", "chatty-plugin", "chatty = chatty_plugin", CHATTY_PLUGIN
    )
    config = write(tmp_path / "config.toml", "version = 3\n")
    for _ in range(2):  # the scan of the entry points, then the cache
        result = taskplane("config", "validate", str(config), env=with_path(taskplane, str(site)))
        assert result.returncode == 0, result.stderr
        assert result.stderr == "taskplane: ERROR acme: no licence file found\n"


def test_config_validate_checks_plugin_values_like_the_socket_dir_length(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    long_dir = "/run/" + "x" * 60
    path = write(
        tmp_path / "c.toml",
        f'version = 3\n[plugins."{SHIM_MANAGER_URI}"]\nsocket_dir = "{long_dir}"\n',
    )
    line = single_error_line(taskplane("config", "validate", str(path)))
    assert "socket_dir" in line and f"{len(long_dir)} characters" in line


# -- containerd's settings taskplane does not implement (issue 15) -----------------------------


def test_config_validate_warns_about_containerd_settings_and_exits_0(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "c.toml",
        'version = 3\n[grpc]\naddress = "/run/containerd/containerd.sock"\n'
        '[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause"\n',
    )
    result = taskplane("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert lines(result.stderr) == [
        f"taskplane: {path}: grpc: warning: containerd's gRPC API; taskplane has none: ignored",
        f'taskplane: {path}: plugins."io.containerd.grpc.v1.cri": warning: containerd\'s cri '
        "gRPC service; taskplane does not implement it: ignored",
    ]
    assert result.stdout == f"{path}: ok\n"


def test_config_validate_prints_errors_before_warnings_and_exits_1(
    taskplane: Taskplane, tmp_path: Path
) -> None:
    path = write(tmp_path / "c.toml", 'version = 3\noom_score = -999\ndisabled_plugin = ["x"]\n')
    result = taskplane("config", "validate", str(path))
    assert result.returncode == 1
    assert lines(result.stderr) == [
        f'taskplane: {path}: disabled_plugin: unknown key (did you mean "disabled_plugins"?)',
        f"taskplane: {path}: oom_score: warning: the containerd daemon's OOM score; taskplane "
        "has no daemon: ignored",
    ]
    assert result.stdout == ""


def test_config_validate_strict_makes_warnings_errors(taskplane: Taskplane, tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "version = 3\noom_score = -999\n")
    result = taskplane("config", "validate", "--strict", str(path))
    assert result.returncode == 1
    assert lines(result.stderr) == [
        f"taskplane: {path}: oom_score: the containerd daemon's OOM score; taskplane has no "
        "daemon: ignored"
    ]


def test_config_dump_leaves_out_what_is_ignored(taskplane: Taskplane, tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        'version = 2\n[grpc]\naddress = "/x"\n[plugins."io.containerd.runtime.v2.task"]\n'
        "sched_core = true\n",
    )
    result = taskplane("--config", str(path), "config", "dump")
    assert result.returncode == 0, result.stderr
    data = tomllib.loads(result.stdout)
    assert "grpc" not in data
    assert data["plugins"][SHIM_MANAGER_URI]["env"] == ["SCHED_CORE=1"]
    assert "sched_core" not in data["plugins"][TASK_URI]
