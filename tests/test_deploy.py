"""The container and the Kubernetes deployment: schemas, linters, security scan, and agreement with the app."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import dask
import jsonschema
import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

import gateway_dask_zarr
from gateway_dask_zarr.cluster.backends import DASK_CONFIG
from gateway_dask_zarr.settings import KNOWN_ENV, Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy_gateway.yaml"
VALUES = ROOT / "dask_gateway_config.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET_EXAMPLE = ROOT / "deploy" / "awsconfig.env.example"
# The dask-gateway chart's values.yaml and values.schema.yaml, vendored with their licence.
CHART_REFERENCE = ROOT / "deploy" / "reference" / "dask-gateway-chart"
VENV_BIN = Path(sys.executable).parent
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
# The dask-gateway chart's minimum (its Chart.yaml kubeVersion) and the newest bundled schema.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# The Helm release name docs/deploying.md installs the dask-gateway chart as.
RELEASE = "dask-gateway"
SECRET = "awsconfig"
# Variables the deployment may set beyond the app's own (KNOWN_ENV): those botocore and dask
# read (AWS_*, DASK_*), Python's own, and the homes of what writes under $HOME.
ALLOWED_PREFIXES = ("AWS_", "DASK_", "PYTHON")
RUNTIME_ENV = frozenset({"HOME", "MPLCONFIGDIR"})


def manifests() -> list[dict[str, Any]]:
    """The documents of deploy_gateway.yaml."""
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def one(kind: str) -> dict[str, Any]:
    """The one manifest of a kind."""
    found = [doc for doc in manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    """The app's container in the Deployment."""
    (app,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return app


def secret_example() -> dict[str, str]:
    """The example env file's variables, read as `kubectl --from-env-file` does."""
    pairs = {}
    for line in SECRET_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    """The ENV the image sets."""
    env = {}
    for keyword, rest in dockerfile():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def app_env() -> dict[str, str]:
    """The environment the app's container gets: image ENV, then ConfigMap, Secret, and env."""
    env = dict(dockerfile_env())
    env.update(one("ConfigMap")["data"])
    env.update(secret_example())
    env.update({item["name"]: item["value"] for item in container().get("env", [])})
    return env


def helm_merge(defaults: Any, override: Any) -> Any:
    """Merge values as Helm does: maps key by key, a null deletes the key, anything else replaces."""
    if not (isinstance(defaults, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    merged = copy.deepcopy(defaults)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = helm_merge(merged.get(key), value)
    return merged


def merged_values() -> dict[str, Any]:
    """The chart's defaults merged with dask_gateway_config.yaml."""
    defaults = yaml.safe_load((CHART_REFERENCE / "values.yaml").read_text())
    return helm_merge(defaults, yaml.safe_load(VALUES.read_text()))


def chart_schema_errors(values: dict[str, Any]) -> list[str]:
    """What the chart's values.schema says is wrong with the merged values."""
    schema = yaml.safe_load((CHART_REFERENCE / "values.schema.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """gunicorn.conf.py's settings as gunicorn reads them in the container's environment (in a child process)."""
    code = (
        "import json, runpy; s = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({k: s[k] for k in ('bind', 'timeout', 'graceful_timeout')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- deploy_gateway.yaml: schema, security, probes ------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_pass_strict_kubernetes_schema_validation(version: str) -> None:
    kinds = []
    for doc in manifests():
        used = kubernetes_validate.validate(doc, version, strict=True)
        assert used == version.rsplit(".", 1)[0]
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service"]


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_labels_selectors_and_image() -> None:
    deployment, service, policy = one("Deployment"), one("Service"), one("NetworkPolicy")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert all(key.startswith("app.kubernetes.io/") for key in selector)
    # The selector is immutable: it must not hold what changes between releases.
    assert "app.kubernetes.io/version" not in selector
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    for doc in manifests():
        assert doc["metadata"]["labels"]["app.kubernetes.io/version"] == gateway_dask_zarr.__version__
    image = container()["image"]
    assert image.rsplit(":", 1)[1] == gateway_dask_zarr.__version__
    assert service["spec"]["ports"][0]["targetPort"] == container()["ports"][0]["name"]


def test_two_replicas_roll_one_at_a_time_and_a_drain_leaves_one() -> None:
    deployment, budget = one("Deployment"), one("PodDisruptionBudget")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_pod_is_non_root_read_only_and_bounded() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    app = container()
    uid = int(dict(dockerfile())["USER"].split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = app["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # Everything the app writes goes to the emptyDir at /tmp.
    (mount,) = app["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    env = app_env()
    assert env["HOME"].startswith("/tmp") and env["MPLCONFIGDIR"].startswith("/tmp/")
    for bound in ("requests", "limits"):
        assert set(app["resources"][bound]) == {"cpu", "memory"}


def test_probes_cover_a_cluster_start_and_shutdown_outlasts_gunicorn() -> None:
    app = container()
    env = app_env()
    settings = Settings.from_env(env)
    gunicorn = gunicorn_settings(env)
    port = {p["name"]: p["containerPort"] for p in app["ports"]}
    assert port["http"] == int(env["PORT"]) == 8000
    assert gunicorn["bind"] == [f"0.0.0.0:{env['PORT']}"]
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    startup = app["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    # The app answers only once its cluster is up; gunicorn gives the worker `timeout`
    # (CLUSTER_START_TIMEOUT_S + 60 s) to boot. The startup probe must wait at least as long.
    window = startup["periodSeconds"] * startup["failureThreshold"]
    assert window >= gunicorn["timeout"] >= settings.cluster_start_timeout_s + 60
    grace = one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > gunicorn["graceful_timeout"]


# -- the app's settings: known, complete, valid -----------------------------------------------


def test_every_variable_the_deployment_sets_is_one_the_app_or_its_libraries_read() -> None:
    values = merged_values()
    names = (
        set(dockerfile_env())
        | set(one("ConfigMap")["data"])
        | {item["name"] for item in container().get("env", [])}
        | set(secret_example())
        | set(values["gateway"]["backend"]["environment"])
    )
    unknown = sorted(
        n for n in names if n not in KNOWN_ENV and n not in RUNTIME_ENV and not n.startswith(ALLOWED_PREFIXES)
    )
    assert unknown == []


def test_every_production_setting_is_set() -> None:
    data = one("ConfigMap")["data"]
    assert data["CLUSTER"] == "gateway"
    assert data["STORE_URL"].startswith("s3://")
    assert data["DASK_GATEWAY__ADDRESS"].startswith("http")
    assert data["DASK_GATEWAY__PROXY_ADDRESS"].startswith("gateway://")
    assert data["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    # gunicorn binds 127.0.0.1 by default, where the kubelet's probes cannot reach it.
    assert data["HOST"] == dockerfile_env()["HOST"] == "0.0.0.0"
    assert container()["envFrom"] == [
        {"configMapRef": {"name": one("ConfigMap")["metadata"]["name"]}},
        {"secretRef": {"name": SECRET}},
    ]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "JUPYTERHUB_API_TOKEN"} <= set(secret_example())


def test_the_configmap_is_valid_settings_for_the_app() -> None:
    settings = Settings.from_env(app_env())
    assert settings.cluster == "gateway"
    assert settings.n_workers == 3
    assert settings.store_url == one("ConfigMap")["data"]["STORE_URL"]
    assert not settings.embedded_s3
    assert settings.auth == "jupyterhub"
    assert settings.log_format == "json"


def test_the_hub_values_register_the_app_as_the_configmaps_service() -> None:
    """deploy/jupyterhub_values.yaml: the hub proxies the app's Service, and users may reach it."""
    hub = yaml.safe_load((ROOT / "deploy" / "jupyterhub_values.yaml").read_text())["hub"]
    settings = Settings.from_env(app_env())
    name = settings.service_name
    assert name and settings.service_prefix == f"/services/{name}/"
    service = hub["services"][name]
    web = one("Service")
    assert service["url"] == f"http://{web['metadata']['name']}.{web['metadata']['namespace']}.svc.cluster.local:80"
    assert web["spec"]["ports"][0]["port"] == 80
    assert service["oauth_no_confirm"] is True
    access = f"access:services!service={name}"
    assert access in hub["loadRoles"]["user"]["scopes"]
    assert access in hub["loadRoles"]["server"]["scopes"]
    # The app's token may use dask-gateway, the hub's service that dask_gateway_config.yaml names.
    gateway = merged_values()["gateway"]["auth"]["jupyterhub"]["jupyterhubServiceName"]
    assert gateway in hub["services"]
    assert hub["loadRoles"][name] == {"services": [name], "scopes": [f"access:services!service={gateway}"]}


def test_the_secret_example_holds_placeholders_only() -> None:
    for name, value in secret_example().items():
        if name != "AWS_DEFAULT_REGION":
            assert value.startswith("REPLACE_WITH_"), name


def test_dask_gateway_reads_its_address_and_auth_from_the_configmap() -> None:
    """dask-gateway's own client, configured by nothing but the pod's environment."""
    code = (
        "import json; from dask_gateway import Gateway; g = Gateway(); "
        "print(json.dumps([g.address, g.proxy_address, type(g.auth).__name__])); g.close()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.update(app_env())
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    address, proxy, auth = json.loads(out.stdout.strip().splitlines()[-1])
    data = one("ConfigMap")["data"]
    assert address == data["DASK_GATEWAY__ADDRESS"]
    assert proxy == data["DASK_GATEWAY__PROXY_ADDRESS"]
    assert auth == "JupyterHubAuth"


def test_gateway_addresses_name_the_charts_traefik_service() -> None:
    values = merged_values()
    namespace = one("Deployment")["metadata"]["namespace"]
    # The chart's naming (_helpers.tpl): fullname is the release name when it contains the
    # chart name, else <release>-dask-gateway; Traefik's Service is traefik-<fullname>.
    fullname = RELEASE if "dask-gateway" in RELEASE else f"{RELEASE}-dask-gateway"
    host = f"traefik-{fullname}.{namespace}.svc.cluster.local"
    ports = values["traefik"]["service"]["ports"]
    web = ports["web"]["port"]
    tcp = web if ports["tcp"]["port"] == "web" else ports["tcp"]["port"]
    data = one("ConfigMap")["data"]
    assert data["DASK_GATEWAY__ADDRESS"] == f"http://{host}:{web}"
    assert data["DASK_GATEWAY__PROXY_ADDRESS"] == f"gateway://{host}:{tcp}"
    assert data["JUPYTERHUB_API_URL"] == values["gateway"]["auth"]["jupyterhub"]["apiUrl"]
    assert f".{namespace}." in data["JUPYTERHUB_API_URL"]
    assert {doc["metadata"]["namespace"] for doc in manifests()} == {namespace}


# -- dask_gateway_config.yaml: the chart's schema, the image, the secret, the commands -------


def test_helm_values_validate_against_the_charts_schema() -> None:
    assert chart_schema_errors(merged_values()) == []


def test_the_charts_schema_rejects_bad_values() -> None:
    values = merged_values()
    values["gateway"]["auth"]["type"] = "token"
    values["gateway"]["backend"]["worker"]["cpus"] = 1
    errors = chart_schema_errors(values)
    assert any(e.startswith("gateway.auth.type:") for e in errors), errors
    assert any("cpus" in e for e in errors), errors


def test_helm_merge_merges_maps_and_replaces_the_rest() -> None:
    defaults = {"a": {"b": 1, "c": [1, 2], "d": 4}, "e": "x"}
    assert helm_merge(defaults, {"a": {"c": [3], "d": None}, "f": {}}) == {"a": {"b": 1, "c": [3]}, "e": "x", "f": {}}


def test_values_run_the_apps_image_with_the_secret() -> None:
    backend = merged_values()["gateway"]["backend"]
    assert f"{backend['image']['name']}:{backend['image']['tag']}" == container()["image"]
    for role in ("scheduler", "worker"):
        assert {"secretRef": {"name": SECRET}} in backend[role]["extraContainerConfig"]["envFrom"]
        assert backend[role]["extraPodConfig"]["securityContext"]["runAsNonRoot"] is True
        assert backend[role]["cores"]["limit"] and backend[role]["memory"]["limit"]
    assert merged_values()["gateway"]["auth"]["type"] == "jupyterhub"


def test_extra_config_sets_the_commands_and_an_idle_timeout() -> None:
    from dask_gateway_server.backends.base import ClusterConfig

    c = Config()
    for _key, code in sorted(merged_values()["gateway"]["extraConfig"].items()):
        exec(code, {"c": c})  # as the chart's dask_gateway_config.py runs it
    assert set(c.ClusterConfig) <= set(ClusterConfig.class_trait_names())
    config = ClusterConfig(config=c)
    assert config.scheduler_cmd == ["dask", "scheduler"]
    assert config.worker_cmd == ["dask", "worker"]
    assert config.idle_timeout > 0
    # The same Dask settings as the local cluster's, as dask reads them from the environment.
    with dask.config.set(DASK_CONFIG):
        expected = {key: dask.config.get(key) for key in DASK_CONFIG}
    read = dask.config.collect_env({k: str(v) for k, v in config.environment.items()})
    assert {key: dask.config.get(key, config=read) for key in DASK_CONFIG} == expected
    # Those commands exist with the pinned distributed (the image's).
    for command in (config.scheduler_cmd, config.worker_cmd):
        argv = [str(VENV_BIN / command[0]), *command[1:], "--help"]
        subprocess.run(argv, capture_output=True, timeout=120, check=True)


def test_the_gateways_caps_are_the_deployments_workers_max() -> None:
    """dask_gateway_config.yaml caps a cluster at the ConfigMap's WORKERS_MAX, in workers, cores and memory alike."""
    from dask_gateway_server.backends.base import ClusterConfig
    from traitlets import Float

    class KubeCores(ClusterConfig):  # type: ignore[misc]
        """KubeClusterConfig's fractional cores (its module needs kubernetes_asyncio, which is not installed)."""

        scheduler_cores = Float(1, min=0.0, config=True)
        worker_cores = Float(1, min=0.0, config=True)

    settings = Settings.from_env(app_env())
    values = merged_values()["gateway"]
    c = Config()
    # As the chart's gateway config does: each role's cores and memory requests are what it asks for.
    for role in ("scheduler", "worker"):
        setattr(c.ClusterConfig, f"{role}_cores", values["backend"][role]["cores"]["request"])
        setattr(c.ClusterConfig, f"{role}_memory", values["backend"][role]["memory"]["request"])
    for _key, code in sorted(values["extraConfig"].items()):
        exec(code, {"c": c})
    config = KubeCores(config=c)
    assert (config.scheduler_cores, config.worker_memory) == (0.5, 2 * 2**30)  # the requests were read
    assert settings.workers_min < settings.workers_max  # the deployment adapts
    assert config.cluster_max_workers == settings.workers_max
    # Neither the cores nor the memory cap is lower (the gateway takes the lowest of the three).
    assert config._worker_limit_from_resources() == settings.workers_max


# -- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_pins_its_base_runs_as_non_root_under_tini() -> None:
    instructions = dockerfile()
    keywords = dict(instructions)
    base = re.fullmatch(r"python:(\d+)\.(\d+)\.\d+-slim-\w+", keywords["FROM"])
    assert base, keywords["FROM"]
    assert (int(base[1]), int(base[2])) == sys.version_info[:2]
    assert keywords["USER"].split(":")[0] not in ("0", "root")
    assert json.loads(keywords["ENTRYPOINT"]) == ["tini", "--"]
    assert json.loads(keywords["CMD"]) == ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
    assert dockerfile_env()["PYTHONUNBUFFERED"] == "1"
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert "pip install --no-cache-dir -r requirements.txt" in runs
    copied = {src for keyword, rest in instructions if keyword == "COPY" for src in rest.split()[:-1]}
    assert {"requirements.txt", "app.py", "gunicorn.conf.py", "gateway_dask_zarr/"} <= copied


def test_dockerfile_smoke_check_passes_with_the_pinned_requirements() -> None:
    """The build's import check, run here on the same pins (no docker engine on this machine)."""
    (smoke,) = [rest for keyword, rest in dockerfile() if keyword == "RUN" and "import" in rest]
    env = {**os.environ, **dockerfile_env(), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("STORE_URL", None)
    argv = ["bash", "-euo", "pipefail", "-c", smoke]
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_dockerfile_passes_hadolint_with_no_finding() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD gunicorn app:app\n")
    argv = [str(VENV_BIN / "hadolint"), "--no-color", str(bad)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", out.stdout))


def dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching pattern wins; parents count)."""
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_image_copies_and_no_secret() -> None:
    kept = (
        "requirements.txt",
        "app.py",
        "gunicorn.conf.py",
        "gateway_dask_zarr/__init__.py",
        "gateway_dask_zarr/worker/blocks.py",
    )
    left_out = (
        "deploy/awsconfig.env",
        ".venv/bin/python",
        ".venv-tools/bin/checkov",
        ".git/config",
        "tests/test_api.py",
        "gateway_dask_zarr/__pycache__/config.cpython-311.pyc",
    )
    assert [path for path in kept if dockerignored(path)] == []
    assert [path for path in left_out if not dockerignored(path)] == []


# -- checkov: every failed check fixed or skipped with a reason -------------------------------


def test_checkov_finds_no_unaddressed_issue() -> None:
    assert CHECKOV.exists(), "checkov's venv is missing: run `make install-test`"
    out = subprocess.run(
        [
            str(CHECKOV),
            "--skip-download",
            "--framework",
            "kubernetes",
            "dockerfile",
            "--output",
            "json",
            "--file",
            str(MANIFEST),
            "--file",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    for report in reports:
        failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
        assert failed == [], report["check_type"]
        assert report["summary"]["parsing_errors"] == 0
        assert report["summary"]["passed"] > 20
        for skipped in report["results"]["skipped_checks"]:
            assert len(skipped["check_result"]["suppress_comment"]) > 20, skipped["check_id"]
    assert out.returncode == 0, out.stderr


def test_the_deploying_walkthrough_uses_these_files_and_names() -> None:
    readme = (ROOT / "docs" / "deploying.md").read_text()
    assert "kubectl create secret generic awsconfig --from-env-file=deploy/awsconfig.env" in readme
    assert f"helm upgrade --install {RELEASE} dask/dask-gateway" in readme
    assert "--values dask_gateway_config.yaml" in readme
    assert "kubectl create -f deploy_gateway.yaml" in readme
    assert f"docker build -t {container()['image']} ." in readme
