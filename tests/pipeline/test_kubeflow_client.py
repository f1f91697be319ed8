"""`tlpipe submit` and `tlpipe schedule` against a recording Kubeflow Pipelines API on 127.0.0.1.

The server answers the KFP v2beta1 REST calls that kfp.Client makes (healthz,
experiments list/create, runs create, recurringruns create) and records every
request, so the tests check what actually went over the wire.
"""

import http.server
import json
import os
import socket
import threading
import urllib.parse

import pytest
import yaml

from tlpipe.pipeline.cli import main

pytestmark = pytest.mark.quick

API = "/apis/v2beta1"


class RecordingKfpApi(http.server.ThreadingHTTPServer):
    """A minimal KFP API: known experiments by name, and one answer per create call."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.experiments = {"Default": "experiment-default"}
        self.refuse_runs_with = None
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def calls(self, method: str, path: str) -> list[dict]:
        return [request for request in self.requests if request["method"] == method and request["path"] == path]

    def answer(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False}
        if (method, path) == ("GET", f"{API}/experiments"):
            wanted = [p["stringValue"] for p in json.loads(query["filter"][0])["predicates"]]
            found = [{"experiment_id": self.experiments[name], "display_name": name}
                     for name in wanted if name in self.experiments]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/experiments"):
            experiment_id = f"experiment-{len(self.experiments)}"
            self.experiments[body["display_name"]] = experiment_id
            return 200, {"experiment_id": experiment_id, "display_name": body["display_name"]}
        if (method, path) == ("POST", f"{API}/runs"):
            if self.refuse_runs_with:
                return 400, {"error_message": self.refuse_runs_with, "code": 3}
            return 200, {"run_id": "run-1", "display_name": body["display_name"], "state": "PENDING"}
        if (method, path) == ("POST", f"{API}/recurringruns"):
            return 200, {"recurring_run_id": "recurring-1", "display_name": body["display_name"], "status": "ENABLED"}
        return 404, {"error_message": f"no route {method} {path}", "code": 5}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: RecordingKfpApi

    def _handle(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        query = urllib.parse.parse_qs(url.query)
        self.server.requests.append({"method": method, "path": url.path, "query": query, "body": body})
        status, payload = self.server.answer(method, url.path, query, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_api():
    server = RecordingKfpApi()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump({
        "pipeline": {"name": "shoes", "root": "/mnt/tlpipe"},
        "ingest": {"source": "idx:/data/shoes", "shots": {"train": 10}},
        "kubeflow": {"image": "registry.example/tlpipe:1.2"},
    }))
    return str(path)


@pytest.fixture(scope="module")
def package(tmp_path_factory, config_file):
    path = str(tmp_path_factory.mktemp("package") / "pipeline.yaml")
    assert main(["-q", "compile", "--config", config_file, "-o", path]) == 0
    return path


def test_submit_sends_the_compiled_package_with_typed_parameters(kfp_api, package, capsys):
    status = main(["-q", "submit", "--host", kfp_api.url, "--package", package, "--experiment", "nightly",
                   "--name", "try-1", "--param", "shots_per_class=25", "--param", "source_uri=idx:/data/new"])
    assert status == 0
    created = kfp_api.calls("POST", f"{API}/experiments")
    assert [call["body"]["display_name"] for call in created] == ["nightly"]
    [run] = kfp_api.calls("POST", f"{API}/runs")
    body = run["body"]
    assert body["display_name"] == "try-1"
    assert body["experiment_id"] == kfp_api.experiments["nightly"]
    with open(package) as handle:
        assert body["pipeline_spec"] == yaml.safe_load(handle)
    assert body["runtime_config"]["parameters"] == {"shots_per_class": 25, "source_uri": "idx:/data/new"}
    assert f"{kfp_api.url}/#/runs/details/run-1" in capsys.readouterr().out


def test_submit_reuses_an_existing_experiment(kfp_api, package):
    kfp_api.experiments["nightly"] = "experiment-42"
    assert main(["-q", "submit", "--host", kfp_api.url, "--package", package, "--experiment", "nightly"]) == 0
    assert kfp_api.calls("POST", f"{API}/experiments") == []
    [run] = kfp_api.calls("POST", f"{API}/runs")
    assert run["body"]["experiment_id"] == "experiment-42"
    assert run["body"]["runtime_config"].get("parameters", {}) == {}


def test_submit_without_package_compiles_the_config(kfp_api, config_file):
    assert main(["-q", "submit", "--host", kfp_api.url, "--config", config_file,
                 "--set", "kubeflow.image=registry.example/tlpipe:2.0"]) == 0
    [run] = kfp_api.calls("POST", f"{API}/runs")
    spec = run["body"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "shoes"
    images = {executor["container"]["image"] for executor in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/tlpipe:2.0"}
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["hub_handle"]["defaultValue"] == "efficientnet_lite0"
    assert [call["body"]["display_name"] for call in kfp_api.calls("POST", f"{API}/experiments")] == ["tlpipe"]


def test_schedule_creates_a_recurring_run_without_overlap_or_catchup(kfp_api, package, capsys):
    status = main(["-q", "schedule", "--host", kfp_api.url, "--package", package, "--cron", " 0 0 3 * *  mon-fri",
                   "--param", "span=4", "--name", "nightly-retrain"])
    assert status == 0
    [recurring] = kfp_api.calls("POST", f"{API}/recurringruns")
    body = recurring["body"]
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * mon-fri"
    assert int(body["max_concurrency"]) == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["display_name"] == "nightly-retrain"
    assert body["runtime_config"]["parameters"] == {"span": 4}
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "shoes"
    assert body["experiment_id"] == kfp_api.experiments["tlpipe"]
    assert kfp_api.calls("POST", f"{API}/runs") == []
    assert f"{kfp_api.url}/#/recurringrun/details/recurring-1" in capsys.readouterr().out


def test_schedule_catchup_on_request(kfp_api, package):
    assert main(["-q", "schedule", "--host", kfp_api.url, "--package", package, "--cron", "@daily", "--catchup"]) == 0
    [recurring] = kfp_api.calls("POST", f"{API}/recurringruns")
    assert recurring["body"]["no_catchup"] is False
    assert recurring["body"]["trigger"]["cron_schedule"]["cron"] == "@daily"


@pytest.mark.parametrize("arguments, message", [
    (["schedule", "--cron", "0 0 25 * * *"], "field 3 (hours) received '25'"),
    (["schedule", "--cron", "0 3 * * *"], "has 5 field(s)"),
    (["submit", "--param", "shots_per_class=many"], "--param shots_per_class='many': allowed: an integer"),
    (["submit", "--param", "epochs=3"], "run-time inputs (hub_handle, shots_per_class, source_uri, span)"),
])
def test_bad_input_fails_before_anything_is_sent(kfp_api, package, capsys, arguments, message):
    command, *rest = arguments
    assert main([command, "--host", kfp_api.url, "--package", package, *rest]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert kfp_api.requests == []


def test_missing_package_file(kfp_api, tmp_path, capsys):
    missing = str(tmp_path / "none.yaml")
    assert main(["submit", "--host", kfp_api.url, "--package", missing]) == 1
    assert f"--package {missing!r}: no such file" in capsys.readouterr().err
    assert kfp_api.requests == []


def test_unreachable_host(package, capsys):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["submit", "--host", f"http://127.0.0.1:{port}", "--package", package]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Kubeflow Pipelines at 'http://127.0.0.1:{port}'" in err and "Traceback" not in err


def test_api_refusal_is_reported_with_the_servers_message(kfp_api, package, capsys):
    kfp_api.refuse_runs_with = "Invalid input error: pipeline spec is not valid"
    assert main(["submit", "--host", kfp_api.url, "--package", package]) == 1
    err = capsys.readouterr().err
    assert "refused the request: HTTP 400" in err and "pipeline spec is not valid" in err
    assert "Traceback" not in err


def test_schedule_without_host_prints_a_local_crontab_line(config_file, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["schedule", "--cron", "0 30 2 * * 1-5", "--config", config_file, "--set", "trainer.seed=3"]) == 0
    line = [text for text in capsys.readouterr().out.splitlines() if not text.startswith("#")][0]
    assert line.startswith("30 2 * * 1-5 cd ")
    assert f"cd {tmp_path} && " in line
    assert f" run --config {os.path.abspath(config_file)} --set trainer.seed=3 " in line
    assert line.split(" && ")[1].split()[0].endswith("tlpipe") or "-m tlpipe.pipeline.cli" in line
    assert line.endswith(f">> {tmp_path / 'tlpipe-cron.log'} 2>&1")


def test_local_schedule_explains_what_a_crontab_cannot_do(capsys):
    assert main(["schedule", "--cron", "*/30 0 * * * *"]) == 1
    assert "field 1 (seconds) asks for 2 runs a minute" in capsys.readouterr().err
    assert main(["schedule", "--cron", "0 0 3 * * *", "--param", "span=2"]) == 1
    assert "--param: only for Kubeflow runs" in capsys.readouterr().err
