"""ServerOptions: the one definition of the server's options (defaults, ranges, help) that App, Server,
serve and ``gwinfer serve`` share. No server is started here."""

from __future__ import annotations

import dataclasses

import pytest

from gwinfer.errors import GwinferError
from gwinfer.serving.server.options import (
    BACKGROUND_DEFAULTS,
    ServerOptions,
    option_help,
    option_names,
    server_options,
)

BAD = [
    ({"port": 70000}, "port 70000 must be an integer in [1, 65535]"),
    ({"port": -1}, "port -1 must be an integer in [1, 65535]"),
    ({"port": "80"}, "port '80' must be an integer"),
    ({"grpc_port": 65536}, "gRPC port 65536 must be an integer in [1, 65535]"),
    ({"grpc_port": 8000}, "the gRPC port must differ from the HTTP port (8000)"),
    ({"host": ""}, "host '' must be a listen address"),
    ({"token": " "}, "the token must be a non-empty string"),
    ({"max_body_bytes": 1023}, "max_body_bytes = 1023 must be an integer >= 1024"),
    ({"max_json_bytes": 1.5e6}, "max_json_bytes = 1500000.0 must be an integer >= 1024"),
    ({"threads": 0}, "threads = 0 must be an integer >= 1"),
    ({"max_sequences": 0}, "max_sequences = 0 must be an integer >= 1"),
    ({"dynamic_batching": "yes"}, "dynamic_batching = 'yes' must be true or false"),
    ({"shadow_fraction": 1.5}, "shadow fraction = 1.5 must be in [0, 1]"),
    ({"header_timeout": 0}, "header_timeout = 0 s must lie in (0, 3600] s"),
    ({"body_timeout": 3601}, "body_timeout = 3601 s must lie in (0, 3600] s"),
    ({"max_concurrency": 0}, "max_concurrency = 0 must be an integer in [1, 100000]"),
    ({"http": "nginx"}, "http = 'nginx' must be one of auto, httptools, h11"),
    ({"loop": "trio"}, "loop = 'trio' must be one of auto, uvloop, asyncio"),
]


@pytest.mark.parametrize("changes, message", BAD)
def test_every_option_is_checked_once_with_one_line(changes, message):
    with pytest.raises(GwinferError) as err:
        ServerOptions(**changes)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GwinferError, match="must"):  # the same check through the keyword convenience
        server_options(None, **changes)


def test_defaults_help_and_the_keyword_convenience():
    opts = ServerOptions()
    assert (opts.host, opts.port, opts.grpc_port, opts.token) == ("127.0.0.1", 8000, 8001, None)
    assert (opts.max_body_bytes, opts.max_json_bytes, opts.threads) == (64 << 20, 1 << 20, 1)
    assert (opts.header_timeout, opts.body_timeout, opts.max_concurrency) == (10.0, 60.0, 512)
    for name in option_names():
        assert option_help(name) and "\n" not in option_help(name)
    assert option_help("body_timeout").endswith("[s]") and option_help("max_body_bytes").endswith("[bytes]")
    # Server's defaults: a free port, no gRPC; keyword changes on top; a given ServerOptions kept as is
    background = server_options(None, BACKGROUND_DEFAULTS, grpc_port=0, token="t")
    assert (background.port, background.grpc_port, background.token) == (0, 0, "t")
    assert server_options(opts) is opts and server_options(opts, threads=2).threads == 2
    with pytest.raises(GwinferError, match=r"unknown server option\(s\) \['thread'\]; accepted: \['host'"):
        server_options(None, thread=2)
    with pytest.raises(GwinferError, match="options must be a ServerOptions"):
        server_options({"port": 1})
    assert "s3cret" not in repr(ServerOptions(token="s3cret"))  # the token stays out of logs
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.port = 1  # type: ignore[misc]


def test_a_foreground_server_needs_known_ports():
    assert ServerOptions(port=9000, grpc_port=None).fixed_ports().port == 9000
    for changes, message in (({"port": 0}, "port 0 must be"), ({"grpc_port": 0}, "gRPC port 0 must be")):
        with pytest.raises(GwinferError, match=message):
            ServerOptions(**changes).fixed_ports()


def test_the_serve_command_is_built_from_the_options(tmp_path, monkeypatch, capsys):
    """Every option is a ``gwinfer serve`` flag with the dataclass's default and help; the parsed flags
    reach serve() as one ServerOptions; bad values are one line and exit 2."""
    from gwinfer.cli import main
    from gwinfer.cli.main import build_parser
    from gwinfer.serving.server import run

    serve_parser = build_parser()._subparsers._group_actions[0].choices["serve"]
    actions = {a.dest: a for a in serve_parser._actions}
    for f in dataclasses.fields(ServerOptions):
        assert actions[f.name].default == f.default and actions[f.name].help, f.name
    assert "--no-dynamic-batching" in actions["dynamic_batching"].option_strings
    assert set(actions) == {*option_names(), "help", "repo", "token_file"}

    seen = {}
    monkeypatch.setattr(run, "serve", lambda repo, options: seen.update(repo=repo, options=options))
    (tmp_path / "tok").write_text("from-file\n")
    argv = ["serve", "--repo", "r", "--port", "9000", "--grpc-port", "-1", "--threads", "2", "--body-timeout",
            "5", "--no-dynamic-batching", "--http", "h11", "--token-file", str(tmp_path / "tok")]  # fmt: skip
    assert main(argv) == 0
    assert seen["repo"] == "r" and seen["options"] == ServerOptions(
        port=9000, grpc_port=None, threads=2, body_timeout=5.0, dynamic_batching=False, http="h11", token="from-file"
    )
    monkeypatch.undo()
    for flags, message in (
        (["--max-body-bytes", "10"], "max_body_bytes = 10 must be an integer >= 1024"),
        (["--body-timeout", "0"], "body_timeout = 0.0 s must lie in (0, 3600] s"),
        (["--header-timeout", "4000"], "header_timeout = 4000.0 s must lie in (0, 3600] s"),
        (["--shadow-fraction", "2"], "shadow fraction = 2.0 must be in [0, 1]"),
        (["--max-concurrency", "0"], "max_concurrency = 0 must be an integer in [1, 100000]"),
        (["--max-sequences", "0"], "max_sequences = 0 must be an integer >= 1"),
    ):
        assert main(["serve", "--repo", str(tmp_path), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gwinfer: error: ") and message in err and err.count("\n") == 1, err


def test_app_and_server_take_the_options(tmp_path):
    """App and Server (not started) hold the options they were given, by dataclass or by keyword."""
    from gwinfer.serving.server.app import App
    from gwinfer.serving.server.run import Server

    (tmp_path / "repo").mkdir()
    app = App(tmp_path / "repo", ServerOptions(max_json_bytes=4096, body_timeout=2))
    assert (app.max_json_bytes, app.body_timeout, app.token) == (4096, 2.0, None)
    app.close()
    server = Server(tmp_path / "repo", token="t", header_timeout=1.5)
    assert (server.port, server.grpc_port, server.header_timeout, server.state.token) == (0, None, 1.5, "t")
    server.state.close()
    with pytest.raises(GwinferError, match="max_body_bytes = 5 must be"):
        Server(tmp_path / "repo", max_body_bytes=5)
